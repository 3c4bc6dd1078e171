"""The export archive: its members and manifest for a subject, the data files' bytes, and the files
read from a task's own zip or from their connector, on a local disk and on S3."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import struct
import zipfile
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from connectors.base import OBSERVED, PROVIDED, Identity, PermanentError, Record, Source
from dsar import exports
from dsar.models import ConnectorTask

from ...factories import request_make
from ...support.listed import listed  # noqa: F401 (a fixture)
from ...support.s3 import S3_BACKEND, s3_bucket_create, s3_client, s3_endpoint, s3_options  # noqa: F401 (s3_endpoint: a fixture)

pytestmark = pytest.mark.django_db(transaction=True)
MIB = 1024 * 1024
BROKER = Source("third_party", "Acme Data Ltd", "data_broker")
HEADER = "connector,system,source_type,source_name,source_kind,collected_at"


@pytest.fixture(params=["local", "s3"])
def storage(request, settings) -> str:
    """The export storage: the local disk the settings name, or a new bucket on S3."""
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": S3_BACKEND, "OPTIONS": s3_options(endpoint, s3_bucket_create(endpoint, "exports"))}}
    return request.param


def _requested(email: str, categories: list[str]):
    request = request_make(status="processing", email=email)
    request.categories = categories
    request.save(update_fields=["categories"])
    return request


def _built(request, connectors: dict) -> tuple[exports.Archive, zipfile.ZipFile, bytes]:
    tasks = [ConnectorTask(request=request, connector=name, output=exports.stage_gather(
        connector, Identity(email=request.email), frozenset(request.categories), request_id=request.id, attempt=1).as_json())
        for name, connector in connectors.items()]
    archive = exports.archive_build(request, tasks)
    with default_storage.open(archive.path, "rb") as handle:
        data = handle.read()
    return archive, zipfile.ZipFile(io.BytesIO(data)), data


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_small_subjects_archive_holds_these_members_and_this_manifest(listed, storage, settings):
    settings.DSAR_PUBLIC_URL, settings.DEFAULT_FROM_EMAIL = "https://privacy.example.com", "privacy@example.com"
    request = _requested(f"small-{storage}@example.com", ["searches_commands", "content"])
    connectors = listed(
        docs={"files": {"notes/a.txt": b"hello\n"}},
        accounts={"records": [Record("searches_commands", {"query": "one"}, "accounts.searches", OBSERVED, dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))]},
    )
    archive, opened, data = _built(request, connectors)

    expected = {
        "files/docs/notes/a.txt": b"hello\n",
        "data/searches_commands.json": b'[\n{"connector":"accounts","system":"accounts.searches","source":{"type":"observed","name":null,"kind":null},'
                                       b'"collected_at":"2026-01-02T03:04:05+00:00","fields":{"query":"one"}}\n]\n',
        "data/searches_commands.csv": f"{HEADER},query\r\naccounts,accounts.searches,observed,,,2026-01-02T03:04:05+00:00,one\r\n".encode(),
        "data/content.json": b'[\n{"connector":"docs","system":"docs","source":{"type":"provided","name":null,"kind":null},'
                             b'"collected_at":null,"fields":{"file":"files/docs/notes/a.txt","bytes":6}}\n]\n',
        "data/content.csv": f"{HEADER},file,bytes\r\ndocs,docs,provided,,,,files/docs/notes/a.txt,6\r\n".encode(),
    }
    assert opened.namelist() == [*expected, "index.html", "manifest.json"]
    assert {name: opened.read(name) for name in expected} == expected
    manifest = json.loads(opened.read("manifest.json"))
    assert dt.datetime.fromisoformat(manifest.pop("generated_at")) > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    report = opened.read("index.html")
    assert manifest == {
        "format_version": 1,
        "request_id": str(request.id),
        "subject_email": f"small-{storage}@example.com",
        "categories": {
            "searches_commands": {"label": "Searches and commands", "records": 1, "connectors": ["accounts"],
                                  "sources": [{"type": "observed", "name": None, "kind": None}],
                                  "recipients": [], "automated_decisions": None},
            "content": {"label": "Your files and messages", "records": 1, "connectors": ["docs"],
                        "sources": [{"type": "provided", "name": None, "kind": None}], "recipients": [], "automated_decisions": None},
        },
        "files": [*({"path": name, "bytes": len(body), "sha256": _digest(body)} for name, body in expected.items()),
                  {"path": "index.html", "bytes": len(report), "sha256": _digest(report)}],
        "supervisory_authority": {"name": "The data protection authority of the country where you live or work",
                                  "website": "https://www.edpb.europa.eu/about-edpb/about-edpb/members_en"},
        "rights": [
            {"id": "access", "how": "portal", "url": "https://privacy.example.com/request/"},
            {"id": "rectification", "how": "privacy_contact", "url": "mailto:privacy@example.com"},
            {"id": "erasure", "how": "portal", "url": "https://privacy.example.com/request/"},
            {"id": "restriction", "how": "privacy_contact", "url": "mailto:privacy@example.com"},
            {"id": "objection", "how": "privacy_contact", "url": "mailto:privacy@example.com"},
            {"id": "portability", "how": "portal", "url": "https://privacy.example.com/request/"},
            {"id": "automated_decisions", "how": "privacy_contact", "url": "mailto:privacy@example.com"},
            {"id": "withdraw_consent", "how": "privacy_contact", "url": "mailto:privacy@example.com"},
            {"id": "complain", "how": "supervisory_authority", "url": "https://www.edpb.europa.eu/about-edpb/about-edpb/members_en"},
        ],
    }
    assert (archive.bytes, archive.sha256, archive.categories) == (len(data), _digest(data), {"searches_commands": 1, "content": 1})
    assert archive.path.startswith(f"exports/{request.id}/") and archive.path.endswith(".zip")


AWKWARD = ["plain", "", " spaced ", "comma, here", 'quote " here', "line\nbreak", "crlf\r\nhere", "unicode é 日本 🙂", None, 12, True]


def test_the_csv_quotes_awkward_values_as_pythons_csv_module_does_and_reads_back_as_they_were(listed):
    request = _requested("awkward@example.com", ["interests"])
    connectors = listed(crm={"records": [Record("interests", {"value": value}, "crm.notes", PROVIDED) for value in AWKWARD]})
    _, opened, _ = _built(request, connectors)
    text = opened.read("data/interests.csv").decode()
    assert text == (
        f"{HEADER},value\r\n"
        "crm,crm.notes,provided,,,,plain\r\n"
        "crm,crm.notes,provided,,,,\r\n"
        "crm,crm.notes,provided,,,, spaced \r\n"
        'crm,crm.notes,provided,,,,"comma, here"\r\n'
        'crm,crm.notes,provided,,,,"quote "" here"\r\n'
        'crm,crm.notes,provided,,,,"line\nbreak"\r\n'
        'crm,crm.notes,provided,,,,"crlf\r\nhere"\r\n'
        "crm,crm.notes,provided,,,,unicode é 日本 🙂\r\n"
        "crm,crm.notes,provided,,,,\r\n"
        "crm,crm.notes,provided,,,,12\r\n"
        "crm,crm.notes,provided,,,,True\r\n"
    )
    cells = [row[-1] for row in csv.reader(io.StringIO(text, newline=""))][1:]
    assert cells == ["plain", "", " spaced ", "comma, here", 'quote " here', "line\nbreak", "crlf\r\nhere", "unicode é 日本 🙂", "", "12", "True"]
    assert [record["fields"]["value"] for record in json.loads(opened.read("data/interests.json"))] == AWKWARD


def test_one_categorys_csv_has_every_connectors_columns_and_each_row_its_own_cells(listed):
    request = _requested("columns@example.com", ["searches_commands"])
    connectors = listed(
        accounts={"records": [Record("searches_commands", {"query": "a"}, "accounts.searches", OBSERVED),
                              Record("searches_commands", {"query": "b", "lang": "en"}, "accounts.searches", OBSERVED)]},
        broker={"records": [Record("searches_commands", {"meta": {"score": 2}, "query": "c"}, "broker.records", BROKER)]},
    )
    _, opened, _ = _built(request, connectors)
    assert opened.read("data/searches_commands.csv").decode() == (
        f"{HEADER},query,lang,meta.score\r\n"
        "accounts,accounts.searches,observed,,,,a,,\r\n"
        "accounts,accounts.searches,observed,,,,b,en,\r\n"
        "broker,broker.records,third_party,Acme Data Ltd,data_broker,,c,,2\r\n"
    )
    assert [(r["connector"], r["fields"]) for r in json.loads(opened.read("data/searches_commands.json"))] == [
        ("accounts", {"query": "a"}), ("accounts", {"query": "b", "lang": "en"}), ("broker", {"meta": {"score": 2}, "query": "c"})]


def test_text_that_starts_like_a_formula_gets_a_leading_quote_in_the_csv_and_stays_as_it_was_in_the_json(listed):
    request = _requested("formulas@example.com", ["interests"])
    crm = [{"value": '=HYPERLINK("https://evil.example","x")'}, {"value": "+1+1", "@note": "-2+3"}, {"value": "@SUM(A1)"},
           {"value": "\tcmd"}, {"value": "\rcmd"}, {"value": -5}, {"value": "-5"}]
    broker = [{"value": "=1+1", "@note": "x"}]
    connectors = listed(crm={"records": [Record("interests", fields, "crm.notes", PROVIDED) for fields in crm]},
                        broker={"records": [Record("interests", fields, "broker.records", BROKER) for fields in broker]})
    _, opened, _ = _built(request, connectors)
    # crm's rows are re-laid (a column appeared late) and broker's copied: the quote is there once either way.
    assert opened.read("data/interests.csv").decode() == (
        f"{HEADER},value,'@note\r\n"
        'crm,crm.notes,provided,,,,"\'=HYPERLINK(""https://evil.example"",""x"")",\r\n'
        "crm,crm.notes,provided,,,,'+1+1,'-2+3\r\n"
        "crm,crm.notes,provided,,,,'@SUM(A1),\r\n"
        "crm,crm.notes,provided,,,,'\tcmd,\r\n"
        'crm,crm.notes,provided,,,,"\'\rcmd",\r\n'
        "crm,crm.notes,provided,,,,-5,\r\n"
        "crm,crm.notes,provided,,,,'-5,\r\n"
        "broker,broker.records,third_party,Acme Data Ltd,data_broker,,'=1+1,x\r\n"
    )
    assert [record["fields"] for record in json.loads(opened.read("data/interests.json"))] == [
        {"value": '=HYPERLINK("https://evil.example","x")'}, {"value": "+1+1", "@note": "-2+3"}, {"value": "@SUM(A1)"},
        {"value": "\tcmd"}, {"value": "\rcmd"}, {"value": -5}, {"value": "-5"}, {"value": "=1+1", "@note": "x"}]


def test_big_files_come_from_their_tasks_zip_and_from_their_connector_once_that_zip_is_gone(listed):
    photos = {"a.bin": bytes(range(256)) * (17 * MIB // 256), "b.bin": b"\x01" * (17 * MIB)}
    videos = {"clip.mp4": bytes(range(255, -1, -1)) * (36 * MIB // 256)}
    docs = {"small.txt": "café\n".encode()}
    request = _requested("files@example.com", ["content"])
    connectors = listed(photos={"files": photos}, videos={"files": videos}, docs={"files": docs})
    tasks = [ConnectorTask(request=request, connector=name, output=exports.stage_gather(
        connector, Identity(email=request.email), frozenset(request.categories), request_id=request.id, attempt=1).as_json())
        for name, connector in connectors.items()]
    zips = [task.output["files_zip"] for task in tasks]
    assert zips[2] is None and all(default_storage.exists(path) for path in zips[:2])
    expected = {**{f"files/photos/{p}": d for p, d in photos.items()}, **{f"files/videos/{p}": d for p, d in videos.items()},
                **{f"files/docs/{p}": d for p, d in docs.items()}}
    for run in ("videos' zip is the archive's start", "photos' zip is", "both read from their connectors"):
        archive = exports.archive_build(request, tasks)
        with default_storage.open(archive.path, "rb") as handle:
            data = handle.read()
        opened = zipfile.ZipFile(io.BytesIO(data))
        assert opened.testzip() is None, run
        assert {name: opened.read(name) for name in expected} == expected, run
        listed_files = {entry["path"]: entry for entry in json.loads(opened.read("manifest.json"))["files"]}
        assert set(listed_files) == set(opened.namelist()) - {"manifest.json"}, run
        assert all(listed_files[name] == {"path": name, "bytes": len(body), "sha256": _digest(body)} for name, body in expected.items()), run
        assert (archive.bytes, archive.sha256) == (len(data), _digest(data)), run
        assert [default_storage.exists(path) for path in zips[:2]] == {"videos' zip is the archive's start": [True, False],
                                                                      "photos' zip is": [False, False],
                                                                      "both read from their connectors": [False, False]}[run], run


@pytest.mark.parametrize("storage", ["local", "s3"], indirect=True)
def test_small_data_files_are_stored_and_large_ones_deflated(listed, storage):
    request = _requested(f"compression-{storage}@example.com", ["voice", "searches_commands"])
    connectors = listed(
        few={"records": [Record("voice", {"n": 1}, "a", OBSERVED)]},
        many={"records": [Record("searches_commands", {"query": f"query {n}"}, "b", OBSERVED) for n in range(2000)]},
    )
    _, opened, _ = _built(request, connectors)
    kinds = {info.filename: info.compress_type for info in opened.infolist()}
    assert kinds["data/voice.json"] == kinds["data/voice.csv"] == zipfile.ZIP_STORED
    assert kinds["data/searches_commands.json"] == kinds["data/searches_commands.csv"] == zipfile.ZIP_DEFLATED
    assert kinds["index.html"] == kinds["manifest.json"] == zipfile.ZIP_DEFLATED


def _local_header_extra_ids(data: bytes, info: zipfile.ZipInfo) -> list[int]:
    """The ids of the extra fields in a member's local header (APPNOTE 4.3.7)."""
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    extra = data[info.header_offset + 30 + name_length:info.header_offset + 30 + name_length + extra_length]
    ids = []
    while extra:
        field_id, size = struct.unpack("<HH", extra[:4])
        ids.append(field_id)
        extra = extra[4 + size:]
    return ids


def test_a_file_whose_size_is_not_known_ahead_is_written_with_zip64_sizes(listed, storage):
    request = _requested(f"unsized-{storage}@example.com", ["content"])
    connectors = listed(docs={"files": {"stream.bin": b"\x00" * 1000}, "unknown_size": True})
    _, opened, data = _built(request, connectors)
    assert 0x0001 in _local_header_extra_ids(data, opened.getinfo("files/docs/stream.bin"))  # the Zip64 extended information
    assert opened.read("files/docs/stream.bin") == b"\x00" * 1000


def test_an_archive_that_fails_half_way_leaves_nothing_behind(listed, storage):
    request = _requested(f"broken-{storage}@example.com", ["content"])
    connectors = listed(docs={"files": {"fine.txt": b"fine", "broken.bin": None}})
    tasks = [ConnectorTask(request=request, connector="docs", output=exports.stage_gather(
        connectors["docs"], Identity(email=request.email), frozenset(request.categories), request_id=request.id, attempt=1).as_json())]
    with pytest.raises(PermanentError, match="broken.bin cannot be read"):
        exports.archive_build(request, tasks)
    if storage == "local":
        assert [path for path in Path(default_storage.path("exports")).rglob("*") if path.is_file() and str(request.id) in str(path)] == []
    else:
        bucket = default_storage.bucket_name
        assert s3_client(default_storage.endpoint_url).list_objects_v2(Bucket=bucket, Prefix="exports/").get("KeyCount") == 0


def test_the_manifest_is_written_as_pythons_json_encoder_writes_it_indented(listed):
    request = _requested('ünïcode+"quoted"@example.com', ["searches_commands", "content"])
    broker = Source("third_party", 'Åcme "Data" Ltd\t\u2028\x7f\U0001f600', "data_broker")
    connectors = listed(
        third_party={"records": [Record("searches_commands", {"q": "x"}, "third_party.records", broker)]},
        docs={"files": {'naïve "quotes"\\back\u2029slash.txt': b"a", "\x01control\t.bin": b"bc", "😀.png": b""}},
    )
    _, opened, _ = _built(request, connectors)
    written = opened.read("manifest.json")
    assert written == json.dumps(json.loads(written), indent=2, ensure_ascii=False).encode()
    manifest = json.loads(written)
    # Member names as cleaned for the archive (a backslash is a folder, control characters are gone).
    assert [f["path"] for f in manifest["files"]][:3] == ['files/docs/naïve "quotes"/back\u2029slash.txt', "files/docs/_control_.bin",
                                                          "files/docs/😀.png"]
    assert manifest["categories"]["searches_commands"]["sources"] == [
        {"type": "third_party", "name": 'Åcme "Data" Ltd\t\u2028\x7f\U0001f600', "kind": "data_broker"}]
