"""Download links: signed, for one request, and dead once the export expires; and the download
encrypted with a passphrase."""

from __future__ import annotations

import datetime as dt
import io
import tracemalloc
import zipfile
from urllib.parse import urlparse

import pytest
import time_machine
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from dsar import exports
from dsar.models import Export

from ...factories import request_make
from ...support.flows import approve, file_request, subject_view, wait_until_final

pytestmark = pytest.mark.django_db(transaction=True)
ARCHIVE = b"PK\x05\x06" + b"\x00" * 18  # an empty zip


def _export(email: str, *, released: bool = True, expires_in: dt.timedelta = dt.timedelta(days=7), deleted: bool = False,
            archive: bytes = ARCHIVE) -> Export:
    request = request_make(status="completed", email=email)
    now = timezone.now()
    path = default_storage.save(f"exports/{request.pk}/test.zip", ContentFile(archive))
    return Export.objects.create(request=request, path=path, bytes=len(archive), sha256="0" * 64, created_at=now, expires_at=now + expires_in,
                                 released_at=now if released else None, deleted_at=now if deleted else None)


def _path(export: Export) -> str:
    return urlparse(exports.download_url(export)).path


def test_a_released_unexpired_export_downloads_through_its_link(api):
    export = _export("released@example.com")
    answer = api.get(_path(export))
    assert answer.status_code == 200 and answer["Content-Length"] == str(len(ARCHIVE))
    assert b"".join(answer.streaming_content) == ARCHIVE


def test_an_export_not_yet_released_after_review_does_not_download(api):
    export = _export("unreleased@example.com", released=False)
    assert api.get(_path(export)).status_code == 404
    Export.objects.filter(pk=export.pk).update(released_at=timezone.now())
    assert api.get(_path(export)).status_code == 200


def test_an_email_lists_each_zip_of_an_export_in_two_parts_and_none_of_an_export_in_one(api):
    whole, halves = _export("whole@example.com"), _export("halves@example.com")
    second = default_storage.save(f"exports/{halves.request_id}/part-2.zip", ContentFile(ARCHIVE + b"2"))
    Export.objects.filter(pk=halves.pk).update(parts=[{"path": second, "bytes": len(ARCHIVE) + 1, "sha256": "1" * 64}])
    halves.refresh_from_db()

    assert exports.download_links(whole)["download_parts"] == []
    links = exports.download_links(halves)
    assert [(part["number"], part["bytes"]) for part in links["download_parts"]] == [(1, 22), (2, 23)]
    assert links["download_parts"][0]["url"] == links["download_url"]
    assert b"".join(api.get(urlparse(links["download_parts"][1]["url"]).path).streaming_content) == ARCHIVE + b"2"


def test_a_deleted_export_does_not_download(api):
    assert api.get(_path(_export("deleted@example.com", deleted=True))).status_code == 404


def test_a_link_works_up_to_the_microsecond_before_its_export_expires_and_not_at_that_moment(api):
    export = _export("on-the-dot@example.com")
    with time_machine.travel(export.expires_at - dt.timedelta(microseconds=1), tick=False):
        assert api.get(_path(export)).status_code == 200
    with time_machine.travel(export.expires_at, tick=False):
        assert api.get(_path(export)).status_code == 404


def test_a_link_works_until_its_export_expires_and_not_a_second_after(api):
    export = _export("expiring@example.com", expires_in=dt.timedelta(seconds=30))
    assert api.get(_path(export)).status_code == 200
    Export.objects.filter(pk=export.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert api.get(_path(export)).status_code == 404


def test_a_link_signed_for_one_request_does_not_open_another_requests_export(api):
    mine, theirs = _export("mine@example.com"), _export("theirs@example.com")
    signature = _path(mine).rsplit("/", 1)[1]
    assert api.get(f"/api/v1/requests/{theirs.request_id}/download/{signature}").status_code == 404
    forged = signing.dumps({"r": str(theirs.request_id), "e": mine.pk}, salt="dsar.download")  # right key, wrong pairing
    assert api.get(f"/api/v1/requests/{theirs.request_id}/download/{forged}").status_code == 404
    # An API client is told in the contract's words what is wrong, as for any other missing resource.
    assert api.get(f"/api/v1/requests/{theirs.request_id}/download/{forged}").json() == {"error": "not_found", "detail": "Not found."}


@pytest.fixture
def completed(api, reviewer, mailoutbox, unique_email, worker):
    request_id, token = file_request(api, mailoutbox, type="access", email=unique_email("dl"))
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"
    return request_id, urlparse(subject_view(api, request_id, token)["download_url"]).path


def test_the_signed_link_downloads_the_archive(api, completed):
    _, path = completed
    answer = api.get(path)
    assert answer.status_code == 200
    assert b"".join(answer.streaming_content)[:2] == b"PK"


def test_the_link_downloads_for_a_client_that_accepts_only_a_zip(api, completed):
    _, path = completed
    answer = api.get(path, HTTP_ACCEPT="application/zip")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/zip"
    assert b"".join(answer.streaming_content)[:2] == b"PK"


def test_a_forged_or_altered_link_fails(api, completed):
    request_id, path = completed
    signature = path.rsplit("/", 1)[1]
    forged = signing.dumps({"r": request_id, "e": 1}, key="not-the-secret", salt="dsar.download")
    for bad in (signature[:-2] + "xx", forged, "garbage"):
        assert api.get(f"/api/v1/requests/{request_id}/download/{bad}").status_code == 404


def test_an_encrypted_download_needs_the_passphrase_and_holds_the_same_files(api, completed):
    from stream_unzip import IncorrectAESPasswordError, stream_unzip

    request_id, path = completed
    plain = zipfile.ZipFile(io.BytesIO(b"".join(api.get(path).streaming_content)))
    answer = api.post(path, {"passphrase": "correct battery horse"}, format="json")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/zip"
    encrypted = b"".join(answer.streaming_content)
    assert b"manifest" not in encrypted or b"format_version" not in encrypted  # contents are not readable as they are
    unpacked = {name.decode(): b"".join(chunks) for name, _size, chunks in stream_unzip([encrypted], password="correct battery horse")}
    assert unpacked == {name: plain.read(name) for name in plain.namelist() if not name.endswith("/")}
    with pytest.raises(IncorrectAESPasswordError):
        for _name, _size, chunks in stream_unzip([encrypted], password="wrong passphrase!!"):
            b"".join(chunks)


def test_an_encrypted_download_refuses_a_short_passphrase_and_a_bad_link(api, completed):
    request_id, path = completed
    assert api.post(path, {"passphrase": "short"}, format="json").status_code == 400
    assert api.post(f"/api/v1/requests/{request_id}/download/forged", {"passphrase": "long enough passphrase"}, format="json").status_code == 404


def _zip(members: dict[str, bytes]) -> bytes:
    """A stored archive holding `members`; a name ending in / is a folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_an_encrypted_download_holds_each_file_of_the_export_readable_by_its_owner_only(api):
    from stream_unzip import stream_unzip

    export = _export("owner-only@example.com", archive=_zip({"index.html": b"<h1>Your data</h1>", "data/": b"",
                                                             "data/feedback.json": b'[{"rating": 5}]'}))
    answer = api.post(_path(export), {"passphrase": "correct battery horse"}, format="json")
    assert answer.status_code == 200
    encrypted = b"".join(answer.streaming_content)
    modes = {info.filename: info.external_attr >> 16 for info in zipfile.ZipFile(io.BytesIO(encrypted)).infolist()}
    assert modes == {"index.html": 0o600, "data/feedback.json": 0o600}  # rw------- once unpacked
    unpacked = {name.decode(): b"".join(chunks) for name, _size, chunks in stream_unzip([encrypted], password="correct battery horse")}
    assert unpacked == {"index.html": b"<h1>Your data</h1>", "data/feedback.json": b'[{"rating": 5}]'}


def test_an_encrypted_download_of_a_large_file_holds_only_a_few_mebibytes_of_it_in_memory(api):
    from stream_unzip import stream_unzip

    small = _export("small@example.com", archive=_zip({"index.html": b"<h1>Your data</h1>"}))
    b"".join(api.post(_path(small), {"passphrase": "correct battery horse"}, format="json").streaming_content)  # code loaded, caches filled
    large = 48 * 1024 * 1024
    export = _export("large@example.com", archive=_zip({"media/recording.wav": bytes(large)}))  # deflates to a few kB
    tracemalloc.start()
    try:
        answer = api.post(_path(export), {"passphrase": "correct battery horse"}, format="json")
        encrypted = b"".join(answer.streaming_content)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 200
    assert peak < 16 * 1024 * 1024, f"{peak / 2**20:.0f} MiB held at once"
    sizes = {name.decode(): sum(len(chunk) for chunk in chunks) for name, _size, chunks in stream_unzip([encrypted], password="correct battery horse")}
    assert sizes == {"media/recording.wav": large}
