"""An export in parts: a request that chose a part size gets several complete zips, the report and
the manifest in the first saying which part holds what, each zip downloadable through its own link."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tracemalloc
import zipfile
from urllib.parse import urlparse

import pytest
from django.core.files.storage import default_storage
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from connectors.base import Identity
from dsar import exports
from dsar.models import ConnectorTask, Export, Request
from estate.loader import estate_load, estate_parse

from ...factories import request_make
from ...support.flows import approve, download, file_request, subject_view, wait_until_final
from ...support.listed import listed  # noqa: F401 (a fixture)
from ...support.s3 import S3_BACKEND, s3_bucket_create, s3_endpoint, s3_options  # noqa: F401 (s3_endpoint: a fixture)
from ..test_refusals import _mailed_by_worker

pytestmark = pytest.mark.django_db(transaction=True)

A, B, C = b"a" * 2000, b"b" * 2000, b"c" * 5000
# Part size 3000: a.bin fills part 1 (2000 bytes and its headers), b.bin cannot join it and starts
# part 2, c.bin is larger than a part and has part 3 to itself, the data files share part 4.
PART_SIZE = 3000


@pytest.fixture(params=["local", "s3"])
def storage(request, settings) -> str:
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": S3_BACKEND, "OPTIONS": s3_options(endpoint, s3_bucket_create(endpoint, "parts"))}}
    return request.param


def _built(listed, email: str, *, part_size: int | None) -> tuple[object, exports.Archive]:
    request = request_make(status="processing", email=email)
    request.categories, request.part_size = ["content"], part_size
    request.save(update_fields=["categories", "part_size"])
    connectors = listed(docs={"files": {"a.bin": A, "b.bin": B, "c.bin": C}})
    tasks = [ConnectorTask(request=request, connector=name, output=exports.stage_gather(
        connector, Identity(email=email), frozenset(["content"]), request_id=request.id, attempt=1).as_json())
        for name, connector in connectors.items()]
    return request, exports.archive_build(request, tasks)


def _opened(path: str) -> zipfile.ZipFile:
    with default_storage.open(path, "rb") as handle:
        return zipfile.ZipFile(io.BytesIO(handle.read()))


def test_an_export_with_a_part_size_is_written_as_complete_zips_each_holding_these_members(listed, storage):
    _, archive = _built(listed, f"parts-{storage}@example.com", part_size=PART_SIZE)

    zips = [_opened(path) for path in archive.paths]
    assert [z.namelist() for z in zips] == [
        ["files/docs/a.bin", "index.html", "manifest.json"],
        ["files/docs/b.bin"],
        ["files/docs/c.bin"],
        ["data/content.json", "data/content.csv"],
    ]
    assert all(z.testzip() is None for z in zips)  # each opens and reads whole on its own
    assert (zips[0].read("files/docs/a.bin"), zips[1].read("files/docs/b.bin"), zips[2].read("files/docs/c.bin")) == (A, B, C)
    rows = zips[3].read("data/content.csv").decode().splitlines()
    assert rows[1:] == ["docs,docs,provided,,,,files/docs/a.bin,2000", "docs,docs,provided,,,,files/docs/b.bin,2000",
                        "docs,docs,provided,,,,files/docs/c.bin,5000"]


def test_the_first_parts_manifest_says_which_part_holds_what_and_checks_every_member_of_every_part(listed, storage):
    _, archive = _built(listed, f"manifest-{storage}@example.com", part_size=PART_SIZE)
    zips = [_opened(path) for path in archive.paths]
    manifest = json.loads(zips[0].read("manifest.json"))

    assert manifest["parts"] == [
        {"part": 1, "members": ["files/docs/a.bin", "index.html", "manifest.json"]},
        {"part": 2, "members": ["files/docs/b.bin"]},
        {"part": 3, "members": ["files/docs/c.bin"]},
        {"part": 4, "members": ["data/content.json", "data/content.csv"]},
    ]
    held = {name: z.read(name) for z in zips for name in z.namelist() if name != "manifest.json"}
    assert sorted(entry["path"] for entry in manifest["files"]) == sorted(held)
    for entry in manifest["files"]:
        assert (entry["bytes"], entry["sha256"]) == (len(held[entry["path"]]), hashlib.sha256(held[entry["path"]]).hexdigest())
    assert held["files/docs/c.bin"] == C


def test_the_report_in_the_first_part_says_in_words_what_each_part_holds(listed):
    _, archive = _built(listed, "report-parts@example.com", part_size=PART_SIZE)
    report = _opened(archive.path).read("index.html").decode()

    assert "This archive comes in 4 parts" in report
    assert "<strong>Part 1</strong>: this report and the list of contents, and 1 stored file</li>" in report
    assert "<strong>Part 3</strong>: 1 stored file</li>" in report
    assert "<strong>Part 4</strong>: your data in: Your files and messages</li>" in report


def test_an_export_without_a_part_size_is_one_zip_whose_manifest_names_no_parts(listed):
    _, archive = _built(listed, "whole@example.com", part_size=None)

    assert archive.parts == ()
    opened = _opened(archive.path)
    assert opened.namelist() == ["files/docs/a.bin", "files/docs/b.bin", "files/docs/c.bin", "data/content.json", "data/content.csv",
                                 "index.html", "manifest.json"]
    assert "parts" not in json.loads(opened.read("manifest.json"))
    assert "comes in" not in opened.read("index.html").decode()


def test_each_part_downloads_through_its_own_signed_link_and_no_link_reaches_a_part_that_is_not_there(listed, api):
    request, archive = _built(listed, "download-parts@example.com", part_size=PART_SIZE)
    now = timezone.now()
    export = Export.objects.create(request=request, path=archive.path, bytes=archive.bytes, sha256=archive.sha256, created_at=now,
                                   expires_at=now + timezone.timedelta(days=7), released_at=now, parts=exports.export_parts_as_json(archive))

    links = exports.download_urls(export)
    assert [part.number for part, _ in links] == [1, 2, 3, 4]
    for (part, url), path in zip(links, archive.paths, strict=True):
        answer = api.get(urlparse(url).path)
        with default_storage.open(path, "rb") as handle:
            stored = handle.read()
        assert answer.status_code == 200
        assert b"".join(answer.streaming_content) == stored
        assert answer["Content-Disposition"] == f'attachment; filename="data-{request.id}-part-{part.number}-of-4.zip"'
    assert api.get(urlparse(exports.download_url(export, 5)).path).status_code == 404


def test_a_request_filed_with_a_part_size_ends_in_parts_each_listed_by_the_api_the_email_and_the_status_page(
        api, reviewer, mailoutbox, unique_email, worker, client):
    email = unique_email("parts")
    files = [{"path": "one.bin", "size_bytes": 40_000, "category": "content"}, {"path": "two.bin", "size_bytes": 40_000, "category": "content"}]
    estate_load(estate_parse({"subjects": [{"email": email, "accounts": {"name": "Pia Parts"}, "content": {"files": files}}]}))
    request_id, token = file_request(api, mailoutbox, type="access", email=email, part_size="1GB")
    assert Request.objects.get(pk=request_id).part_size == 1_000_000_000
    Request.objects.filter(pk=request_id).update(part_size=50_000)  # tiny: the two files of 40 kB cannot share a part
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"

    view = subject_view(api, request_id, token)
    parts = view["download_parts"]
    assert [part["part"] for part in parts] == list(range(1, len(parts) + 1)) and len(parts) >= 2
    assert parts[0]["download_url"] == view["download_url"]
    zips = [download(api, part["download_url"]) for part in parts]
    assert all(z.testzip() is None for z in zips)
    manifest = json.loads(zips[0].read("manifest.json"))
    assert [entry["members"] for entry in manifest["parts"]] == [z.namelist() for z in zips]
    held = {name: number for number, z in enumerate(zips, start=1) for name in z.namelist()}
    assert {held["index.html"], held["manifest.json"]} == {1}
    assert (held["files/content/one.bin"], held["files/content/two.bin"]) == (1, 2)
    assert view["result"]["bytes"] == sum(part["bytes"] for part in parts)

    for part in parts:  # each zip comes with its SHA-256, for the person's program to check what it saved
        answer = api.get(part["download_url"])
        digest = base64.b64encode(hashlib.sha256(b"".join(answer.streaming_content)).digest()).decode()
        assert answer["Repr-Digest"] == f"sha-256=:{digest}:"

    mailed = _mailed_by_worker(worker, email, "Example Company: Your request is complete")
    assert f"Your data comes in {len(parts)} parts." in mailed
    links = re.findall(r"^- Part (\d+) \(([^)]+)\): (\S+)$", mailed, re.MULTILINE)
    assert [(int(number), size) for number, size, _ in links] == [(part["part"], filesizeformat(part["bytes"])) for part in parts]
    assert all(f"/api/v1/requests/{request_id}/download/" in url for _, _, url in links)
    status_url = re.search(r"on its page:\n(\S+)", mailed).group(1)
    link = urlparse(status_url)
    page = client.get(f"{link.path}?{link.query}", follow=True).content.decode()  # the emailed link opens the page in this browser
    assert f"Your data comes in {len(parts)} parts" in page
    for part in parts:
        assert f'<a href="{part["download_url"]}" download>Part {part["part"]} of {len(parts)}</a>' in page


def test_writing_a_large_export_in_parts_holds_only_a_few_mebibytes_of_it_in_memory(listed):
    large = 24 * 1024 * 1024
    request = request_make(status="processing", email="large-parts@example.com")
    request.categories, request.part_size = ["content"], 16 * 1024 * 1024
    request.save(update_fields=["categories", "part_size"])
    connectors = listed(docs={"files": {"one.wav": bytes(large), "two.wav": bytes(large)}})
    tasks = [ConnectorTask(request=request, connector=name, output=exports.stage_gather(
        connector, Identity(email=request.email), frozenset(["content"]), request_id=request.id, attempt=1).as_json())
        for name, connector in connectors.items()]
    tracemalloc.start()
    try:
        archive = exports.archive_build(request, tasks)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 16 * 1024 * 1024, f"{peak / 2**20:.0f} MiB held at once"
    assert [_opened(path).namelist() for path in archive.paths] == [
        ["files/docs/one.wav", "index.html", "manifest.json"], ["files/docs/two.wav"], ["data/content.json", "data/content.csv"]]
    assert [default_storage.size(path) > large for path in archive.paths] == [True, True, False]
