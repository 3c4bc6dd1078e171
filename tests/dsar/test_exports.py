"""The archive comes out the same whichever way its parts were staged: records inline in the task
row or spilled to the work area, one connector or several per category, fields that appear only
in later records, nested fields; files written into the archive by their tasks, or streamed in by
the final step."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile

import pytest
from django.core.files.storage import default_storage

from connectors.base import OBSERVED, Connector, FileItem, Identity, Record, Source
from dsar import exports
from dsar.models import ConnectorTask

from ..factories import request_make

pytestmark = pytest.mark.django_db(transaction=True)
AT = dt.datetime(2026, 11, 30, 9, 15, 0, 123456, tzinfo=dt.UTC)
BROKER = Source("third_party", "Acme Data Ltd", "data_broker")


class Listed(Connector):
    """Yields the records it was given."""

    def __init__(self, name: str, records: list[Record]) -> None:
        super().__init__(name=name)
        self.records = records

    def gather(self, identity):
        yield from self.records


def _searches(count: int) -> list[Record]:
    # The 'lang' field first appears after some records were staged, and is absent again later.
    return [
        Record(category="searches_commands", system="accounts.searches", source=OBSERVED, collected_at=AT + dt.timedelta(seconds=n),
               fields={"query": f"query \"{n}\",\nsecond line", **({"lang": "en"} if 3 <= n < count - 2 else {})})
        for n in range(count)
    ]


def _bought(count: int) -> list[Record]:
    return [Record(category="searches_commands", system="third_party.records", source=BROKER, collected_at=None,
                   fields={"query": f"bought {n}", "meta": {"score": n, "tags": ["a", "b"]}}) for n in range(count)]


def _expected(connector: str, records: list[Record]) -> list[dict]:
    return [{"connector": connector, "system": r.system, "source": r.source.as_dict(),
             "collected_at": r.collected_at.isoformat() if r.collected_at else None, "fields": json.loads(json.dumps(r.fields))}
            for r in records]


def _archive(request, staged: dict[str, tuple[Connector, list[Record]]]) -> zipfile.ZipFile:
    tasks = []
    for connector, _records in staged.values():
        output = exports.stage_gather(connector, Identity(email=request.email), frozenset(request.categories),
                                      request_id=request.id, attempt=1)
        tasks.append(ConnectorTask(request=request, connector=connector.name, output=output))
    archive = exports.archive_build(request, tasks)
    with default_storage.open(archive.path, "rb") as handle:
        return zipfile.ZipFile(io.BytesIO(handle.read()))


@pytest.mark.parametrize("count", [12, 4000], ids=["inline", "spilled"])
def test_json_and_csv_members_hold_every_record_of_every_connector(count):
    request = request_make(status="processing", email=f"staged-{count}@example.com")
    searches, bought = _searches(count), _bought(count // 3)
    archive = _archive(request, {"accounts": (Listed("accounts", searches), searches),
                                 "third_party": (Listed("third_party", bought), bought)})

    expected = _expected("accounts", searches) + _expected("third_party", bought)
    assert json.loads(archive.read("data/searches_commands.json")) == expected

    rows = list(csv.DictReader(io.StringIO(archive.read("data/searches_commands.csv").decode())))
    assert list(rows[0]) == [*exports.FIXED_CSV_COLUMNS, "query", "lang", "meta.score", "meta.tags"]
    flattened = [
        {"connector": e["connector"], "system": e["system"], "source_type": e["source"]["type"], "source_name": e["source"]["name"] or "",
         "source_kind": e["source"]["kind"] or "", "collected_at": e["collected_at"] or "",
         **{name: "" for name in ("query", "lang", "meta.score", "meta.tags")},
         **{name: str(value) if not isinstance(value, list) else json.dumps(value) for name, value in exports.flatten(e["fields"])}}
        for e in expected
    ]
    assert rows == flattened
    assert all(len(row) == len(rows[0]) and None not in row for row in rows)  # every row has every column, no extra cells


def test_one_connector_with_steady_fields_has_its_staged_rows_copied_as_they_are():
    request = request_make(status="processing", email="steady@example.com")
    records = [Record(category="searches_commands", system="accounts.searches", source=OBSERVED, fields={"query": f"q{n}"})
               for n in range(5)]
    output = exports.stage_gather(Listed("accounts", records), Identity(email=request.email), frozenset(request.categories),
                                  request_id=request.id, attempt=1)
    staged = output["categories"]["searches_commands"]
    assert staged["rectangular"] and staged["columns"] == ["query"]
    archive = exports.archive_build(request, [ConnectorTask(request=request, connector="accounts", output=output)])
    with default_storage.open(archive.path, "rb") as handle:
        text = zipfile.ZipFile(io.BytesIO(handle.read())).read("data/searches_commands.csv").decode()
    header = ",".join([*exports.FIXED_CSV_COLUMNS, "query"])
    assert text.splitlines() == [header] + [f"accounts,accounts.searches,observed,,,,q{n}" for n in range(5)]


class Stored(Connector):
    """Yields files held in memory."""

    def __init__(self, name: str, files: dict[str, bytes]) -> None:
        super().__init__(name=name)
        self.files = files

    def gather(self, identity):
        for path, data in self.files.items():
            yield FileItem(category="content", path=path, ref=path, size=len(data))

    def open_file(self, ref):
        return io.BytesIO(self.files[ref])


def _members(archive: zipfile.ZipFile) -> dict[str, bytes]:
    return {name: archive.read(name) for name in archive.namelist() if name != "manifest.json"}


def test_files_written_by_their_tasks_make_the_same_archive_as_files_streamed_in_the_final_step(monkeypatch):
    request = request_make(status="processing", email="files@example.com")
    photos = {"a/photo.jpg": b"\xff\xd8" + bytes(range(256)) * 4000, "b.txt": "caf\u00e9\n".encode()}
    notes = {"notes/one.md": b"# one\n" * 1000}
    videos = {"clip.mp4": bytes(range(255, -1, -1)) * 8000}
    connectors = {c.name: c for c in (Stored("photos", photos), Stored("notes", notes), Stored("videos", videos),
                                      Listed("accounts", _searches(5)))}
    monkeypatch.setattr(exports, "connector_get", connectors.__getitem__)
    monkeypatch.setattr(exports, "FRAGMENT_FROM", 100_000)  # photos and videos are worth a zip of their own, the notes are not
    tasks = [ConnectorTask(request=request, connector=name, output=exports.stage_gather(
        connector, Identity(email=request.email), frozenset(request.categories), request_id=request.id, attempt=1))
        for name, connector in connectors.items()]
    photos_zip, notes_zip, videos_zip = (task.output["fragment"] for task in tasks[:3])
    assert default_storage.exists(photos_zip) and notes_zip is None and default_storage.exists(videos_zip)

    def built() -> tuple[zipfile.ZipFile, dict]:
        archive = exports.archive_build(request, tasks)
        with default_storage.open(archive.path, "rb") as handle:
            data = handle.read()
        assert len(data) == archive.bytes and hashlib.sha256(data).hexdigest() == archive.sha256
        opened = zipfile.ZipFile(io.BytesIO(data))
        assert opened.testzip() is None
        return opened, json.loads(opened.read("manifest.json"))

    appended, appended_manifest = built()
    assert not default_storage.exists(videos_zip) and default_storage.exists(photos_zip)  # the larger became the archive
    streamed, streamed_manifest = built()  # run again: that zip is gone, so everything is streamed

    assert set(_members(appended)) == set(_members(streamed))
    assert {n: d for n, d in _members(appended).items() if n != "index.html"} == {n: d for n, d in _members(streamed).items() if n != "index.html"}
    assert {f"files/photos/{p}": d for p, d in photos.items()}.items() <= _members(appended).items()
    assert {f"files/notes/{p}": d for p, d in notes.items()}.items() <= _members(appended).items()
    assert {f"files/videos/{p}": d for p, d in videos.items()}.items() <= _members(appended).items()
    for manifest, archive in ((appended_manifest, appended), (streamed_manifest, streamed)):
        listed = {entry["path"]: entry for entry in manifest["files"]}
        assert set(listed) == set(_members(archive))
        for name, data in _members(archive).items():
            assert listed[name]["bytes"] == len(data) and listed[name]["sha256"] == hashlib.sha256(data).hexdigest()


def test_the_manifest_is_written_as_pythons_json_encoder_writes_it_indented(monkeypatch):
    request = request_make(status="processing", email="ünïcode+\"quoted\"@example.com")
    broker = Source("third_party", "Åcme \"Data\" Ltd\t\u2028\x7f\U0001f600", "data_broker")
    records = [Record(category="searches_commands", system="third_party.records", source=broker, fields={"q": "x"})]
    files = {"naïve \"quotes\"\\back\u2029slash.txt": b"a", "\x01control\t.bin": b"bc", "😀.png": b""}
    connectors = {"third_party": Listed("third_party", records), "docs": Stored("docs", files)}
    monkeypatch.setattr(exports, "connector_get", connectors.__getitem__)
    archive = _archive(request, {name: (connector, []) for name, connector in connectors.items()})
    written = archive.read("manifest.json")
    assert written == json.dumps(json.loads(written), indent=2, ensure_ascii=False).encode()
    manifest = json.loads(written)
    assert {f["path"] for f in manifest["files"]} >= {f"files/docs/{path}" for path in files}
    assert manifest["categories"]["searches_commands"]["sources"] == [broker.as_dict()]


@pytest.mark.parametrize("appended", [False, True], ids=["streamed", "appended"])
def test_small_data_members_are_stored_and_large_ones_deflated(monkeypatch, appended):
    request = request_make(status="processing", email=f"compression-{appended}@example.com")
    connectors = {"few": Listed("few", [Record(category="voice", system="a", source=OBSERVED, fields={"n": 1})]),
                  "many": Listed("many", _searches(2000)), "docs": Stored("docs", {"big.bin": bytes(200_000)})}
    monkeypatch.setattr(exports, "connector_get", connectors.__getitem__)
    monkeypatch.setattr(exports, "FRAGMENT_FROM", 100_000 if appended else 10**9)
    tasks = [ConnectorTask(request=request, connector=name, output=exports.stage_gather(
        connector, Identity(email=request.email), frozenset(request.categories), request_id=request.id, attempt=1))
        for name, connector in connectors.items()]
    assert bool(tasks[2].output["fragment"]) == appended
    with default_storage.open(exports.archive_build(request, tasks).path, "rb") as handle:
        archive = zipfile.ZipFile(io.BytesIO(handle.read()))
    kinds = {info.filename: info.compress_type for info in archive.infolist()}
    assert kinds["data/voice.json"] == kinds["data/voice.csv"] == zipfile.ZIP_STORED
    assert kinds["data/searches_commands.json"] == kinds["data/searches_commands.csv"] == zipfile.ZIP_DEFLATED
    assert archive.getinfo("data/searches_commands.json").file_size >= exports.DEFLATE_FROM
    assert archive.testzip() is None
