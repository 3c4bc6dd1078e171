"""Gathered records on their way to the person: staging, the export archive, receipts, downloads.

A connector task streams its records into per-category JSON-lines files in the work area
(`work/<request>/<connector>/<attempt>/`), written to local temporary files and moved into the
storage, so a crashed attempt leaves nothing the final step would read. The final step streams
those files, and the content files read straight from their connectors, into one zip written
through Django's storage API; a manifest with every member's SHA-256 is added last. Nothing holds
a whole subject in memory.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import itertools
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import import_module
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.storage import default_storage
from django.template.loader import get_template, render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.text import slugify
from zipstream import ZIP_DEFLATED, ZIP_STORED, ZipStream

from connectors.base import Cell, Connector, ErasureReceipt, FileItem, Identity, PermanentError, Record, RecordRun
from connectors.content import storage_is_local
from connectors.registry import connector_get
from connectors.taxonomy import category_ids, category_info, category_known, category_root, taxonomy

from .models import ConnectorTask, Export, Request

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
ZIP64_FROM = 1 << 30  # a member that may pass this size is written with Zip64 sizes from the start
FRAGMENT_FROM = 32 * 1024 * 1024  # a task's files past this size go into the archive from the task
PREFETCH_FROM = 8 * 1024 * 1024  # a streamed archive past this size is built and written by two threads
INDEX_PREVIEW_RECORDS = 50
# A data member smaller than this is stored, not deflated: setting up a compressor costs six times
# what storing such a member does, to save a few KiB of download (a typical subject has fifty).
DEFLATE_FROM = 16 * 1024
INLINE_BYTES = 256 * 1024  # a connector's output up to this size travels in its task row
FILES = "__files__.jsonl"  # the staged stream listing content files
DOWNLOAD_SALT = "dsar.download"
FIXED_CSV_COLUMNS = ["connector", "system", "source_type", "source_name", "source_kind", "collected_at"]


# --- Staging: a connector task's output --------------------------------------------------------------


class _TempFile(File):
    """A finished local temporary file; FileSystemStorage moves it into place instead of copying."""

    def temporary_file_path(self) -> str:
        return self.file.name


@dataclass
class _CategoryStage:
    """One category of one connector's output: its records staged twice, as JSON lines and as CSV
    rows, so the final step copies bytes instead of re-reading a million records."""

    json_name: str
    csv_name: str
    records: int = 0
    columns: dict[str, int] = field(default_factory=dict)  # flattened field -> CSV position, in order of appearance
    rectangular: bool = True  # every CSV row has every column (none was first seen after a row was written)
    sources: dict[tuple, dict] = field(default_factory=dict)
    csv: io.StringIO = field(default_factory=io.StringIO)
    lines: list[bytes] = field(default_factory=list)  # JSON lines not yet handed to the spool

    def __post_init__(self) -> None:
        self.writer = csv.writer(self.csv)

    def widen(self, names: Iterable[str]) -> None:
        """Add the columns not seen yet; rows already written then lack them."""
        for name in names:
            if name not in self.columns:
                if self.records:
                    self.rectangular = False
                self.columns[name] = len(self.columns)

    def flush_lines(self, spool: _Spool) -> None:
        if self.lines:
            spool.write(self.json_name, b"".join(self.lines))
            self.lines.clear()

    def flush_csv(self, spool: _Spool) -> None:
        if self.csv.tell():
            spool.write(self.csv_name, self.csv.getvalue().encode("utf-8"))
            self.csv.seek(0)
            self.csv.truncate()


class _Spool:
    """A connector's staged streams (per category, JSON lines and CSV, and the list of files). A
    typical subject's stay in memory and go into the task row; past INLINE_BYTES everything spills
    to local files, which are moved into the storage's work area, so memory stays bounded at any size."""

    def __init__(self) -> None:
        self.lines: dict[str, list[bytes]] = {}
        self.size = 0
        self.tmpdir: Path | None = None
        self.handles: dict[str, Any] = {}

    def write(self, stream: str, data: bytes) -> None:
        if self.tmpdir is None:
            self.lines.setdefault(stream, []).append(data)
            self.size += len(data)
            if self.size > INLINE_BYTES:
                self._spill()
        else:
            self._handle(stream).write(data)

    def _handle(self, stream: str):
        if stream not in self.handles:
            self.handles[stream] = (self.tmpdir / stream).open("wb")
        return self.handles[stream]

    def _spill(self) -> None:
        self.tmpdir = Path(tempfile.mkdtemp(prefix="dsar-stage-", dir=_local_tmp()))
        for stream, lines in self.lines.items():
            self._handle(stream).writelines(lines)
        self.lines = {}

    def finish(self, prefix: str) -> dict[str, list[str]] | None:
        """Inline texts per stream, or None once they were moved to `prefix` in the storage."""
        if self.tmpdir is None:
            return {stream: [data.decode("utf-8") for data in lines] for stream, lines in self.lines.items()}
        for stream, handle in self.handles.items():
            handle.close()
            with (self.tmpdir / stream).open("rb") as local:
                target = f"{prefix}/{stream}"
                storage_delete(target)
                default_storage.save(target, _TempFile(local, name=stream))
        return None

    def close(self) -> None:
        if self.tmpdir is not None:
            for handle in self.handles.values():
                handle.close()
            shutil.rmtree(self.tmpdir, ignore_errors=True)


class _FilesFragment:
    """One task's content files, written into a zip of their own (stored, as the archive keeps
    them) while they are gathered, each with its SHA-256. On a local disk the final step makes
    this zip the start of the archive and appends the rest: the files are read and written once,
    in the connector's task, while the other connectors gather. A few small files are not worth
    a zip of their own: they are listed, and the final step streams them in."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self.path: str | None = None
        self.zip: zipfile.ZipFile | None = None
        self.pending: list[dict] = []
        self.pending_bytes = 0
        self.members = _Members()

    def offer(self, listed: dict) -> list[dict]:
        """Take one listed file; return the files now ready to stage (copied in, with their SHA-256)."""
        if self.zip is None:
            self.pending.append(listed)
            self.pending_bytes += listed["bytes"] or 0
            if self.pending_bytes <= FRAGMENT_FROM:
                return []
            ready, self.pending = self.pending, []
        else:
            ready = [listed]
        for entry in ready:
            entry["bytes"], entry["sha256"] = self.add(entry["path"], entry["ref"], entry["bytes"])
        return ready

    def rest(self) -> list[dict]:
        """The files still held back: too small together for a zip of their own."""
        ready, self.pending = self.pending, []
        return ready

    def add(self, arcname: str, ref: str, size: int | None) -> tuple[int, str]:
        """Copy one file in; return its size and SHA-256 as copied."""
        if self.zip is None:
            handle, self.path = tempfile.mkstemp(prefix="dsar-files-", suffix=".zip", dir=_local_tmp())
            os.close(handle)
            self.zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        with self.zip.open(_member(arcname, zipfile.ZIP_STORED), "w", force_zip64=size is None or size > ZIP64_FROM) as target:
            for chunk in self.members.hashed(arcname, _file_chunks(self.connector, ref)):
                target.write(chunk)
        copied = self.members.files[-1]
        return copied["bytes"], copied["sha256"]

    def finish(self, target: str) -> str | None:
        """Move the finished zip to `target` in the storage; its path there, or None without files."""
        if self.zip is None:
            return None
        self.zip.close()
        with open(self.path, "rb") as local:
            storage_delete(target)
            saved = default_storage.save(target, _TempFile(local, name="files.zip"))
        self.path = None
        return saved

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()
        if self.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


def on_local_disk() -> bool:
    """Whether the export storage is a local disk (files can be renamed and appended to)."""
    return storage_is_local(default_storage)


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    # orjson writes a datetime or date exactly as isoformat() does, at a quarter of its cost.
    return orjson.dumps(value)[1:-1].decode() if value is not None else None


def flatten(fields: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested dictionaries become dotted column names; lists stay whole, as JSON."""
    for key, value in fields.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from flatten(value, f"{name}.")
        elif isinstance(value, (list, dict)):
            yield name, json.dumps(value, ensure_ascii=False, default=str)
        else:
            yield name, value


def _flat(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """The fields as CSV columns: most records are flat already, and are returned as they are."""
    for value in fields.values():
        if isinstance(value, (dict, list)):
            return dict(flatten(fields))
    return fields


CSV_FLUSH = 64 * 1024
LINES_FLUSH = 512  # JSON lines handed to the spool together


def _json_line(line: dict) -> bytes:
    """One staged record as a line of JSON. orjson, because a subject can have millions of records
    and the standard encoder costs several times as much per record; the standard one is kept for
    what orjson refuses (integers past 64 bits)."""
    try:
        return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return (json.dumps(line, ensure_ascii=False, default=str, separators=(",", ":")) + "\n").encode("utf-8")


def json_stream(category: str) -> str:
    return f"{category}.jsonl"


def csv_stream(category: str) -> str:
    return f"{category}.csv"


_BLANKS = itertools.repeat("")  # the CSV cell of a column a record lacks


def stage_gather(connector: Connector, identity: Identity, categories: frozenset[str], *, request_id, attempt: int) -> dict:
    """Run a connector's gather into the work area; return what was staged, for the task row.

    Each record becomes a JSON line (the archive's data/<category>.json) and a CSV row (its .csv),
    written here, in the connector's task, so the final step only copies them.
    """
    prefix = f"work/{request_id}/{connector.name}/{attempt}"
    stages: dict[str, _CategoryStage] = {}
    spool = _Spool()
    roots: dict[str, str | None] = {}  # category -> its root if the request asked for it, else None
    heads: dict[tuple, tuple[dict, str]] = {}  # (category, system, source) -> the source as JSON, the row's fixed CSV cells
    last: tuple = (None, None, None, None)
    file_count = file_bytes = 0
    fragment = _FilesFragment(connector) if on_local_disk() else None
    try:
        for item in connector.gather_runs(identity):
            if not isinstance(item, (Record, FileItem, RecordRun)):
                raise PermanentError(f"{connector.name} yielded {type(item).__name__}, not a Record or FileItem")
            category = item.category
            root = roots.get(category, "") if isinstance(category, str) else ""
            if root == "":
                if not isinstance(category, str) or not category_known(category):
                    # Malformed data fails the task with its reason: never a category silently missing.
                    raise PermanentError(f"{connector.name} yielded a record in {category!r}, which is not a category of the taxonomy")
                root = roots[category] = category_root(category) if category_root(category) in categories else None
            if isinstance(item, FileItem):
                if root is None:
                    continue
                arcname = f"files/{connector.name}/{item.path.lstrip('/')}"
                listed = {"path": arcname, "ref": item.ref, "bytes": item.size}
                for ready in fragment.offer(listed) if fragment is not None else [listed]:
                    spool.write(FILES, _json_line(ready))
                file_count += 1
                file_bytes += item.size or 0
                fields = {"file": arcname, "bytes": item.size}
            elif isinstance(item, RecordRun):
                if root is None:
                    continue
                fields = None
            elif type(item.fields) is not dict and not isinstance(item.fields, Mapping):  # an ABC check is slow: most are dicts
                raise PermanentError(f"{connector.name} yielded a {category} record whose fields are not a mapping")
            elif root is None:
                continue
            else:
                fields = item.fields
            stage = stages.get(root)
            if stage is None:
                stage = stages[root] = _CategoryStage(json_stream(root), csv_stream(root))
            system = getattr(item, "system", connector.name)
            source = item.source
            if source is not last[0] or system is not last[1] or root is not last[2]:  # rows come in runs: skip the hashing
                last = (source, system, root, _head(connector, stage, heads, root, system, source))
            head = last[3]
            if fields is None:  # a RecordRun: its records are written by its system
                _stage_run(connector, item, stage, head, spool)
                continue
            line = {"connector": connector.name, "system": system, "source": head[0], "collected_at": item.collected_at, "fields": fields}
            stage.lines.append(_json_line(line))
            if len(stage.lines) == LINES_FLUSH:
                stage.flush_lines(spool)
            flat = _flat(fields)
            columns = stage.columns
            if not flat.keys() <= columns.keys():
                stage.widen(flat)
            stage.csv.write(head[1])
            stage.writer.writerow([_iso(item.collected_at), *map(flat.get, columns, _BLANKS)])
            stage.records += 1
            if stage.csv.tell() > CSV_FLUSH:
                stage.flush_csv(spool)
        for stage in stages.values():
            stage.flush_lines(spool)
            stage.flush_csv(spool)
        for ready in fragment.rest() if fragment is not None else []:
            spool.write(FILES, _json_line(ready))
        inline = spool.finish(prefix)
        fragment_path = fragment.finish(f"{prefix}/files.zip") if fragment is not None else None
    finally:
        spool.close()
        if fragment is not None:
            fragment.close()
    return {
        "prefix": prefix,
        "inline": inline,
        "fragment": fragment_path,
        "counts": {c: s.records for c, s in stages.items()},
        "categories": {
            c: {"records": s.records, "columns": list(s.columns), "rectangular": s.rectangular, "sources": list(s.sources.values())}
            for c, s in stages.items()
        },
        "files": file_count,
        "file_bytes": file_bytes,
    }


def _head(connector: Connector, stage: _CategoryStage, heads: dict, root: str, system: str, source) -> tuple[dict, str]:
    """The source of a run of records as JSON, and the CSV cells every row of the run starts with:
    the source's five and the comma before collected_at. Worked out once per run."""
    head = heads.get((root, system, source))
    if head is None:
        cells = io.StringIO()
        csv.writer(cells).writerow([connector.name, system, source.type, source.name, source.kind, ""])
        head = heads[(root, system, source)] = (source.as_dict(), cells.getvalue().removesuffix("\r\n"))
        stage.sources.setdefault(source, head[0])
    return head


def _stage_run(connector: Connector, run: RecordRun, stage: _CategoryStage, head: tuple[dict, str], spool: _Spool) -> None:
    """Stage a RecordRun: its system writes the JSON lines and CSV rows from templates of the very
    lines and rows stage_gather writes for a record, so the bytes are the same."""
    stage.widen([run.field_name])
    # What is staged so far goes first, so the streams keep the connector's order.
    stage.flush_lines(spool)
    stage.flush_csv(spool)
    source_json, csv_head = head
    line_start = orjson.dumps({"connector": connector.name, "system": run.system, "source": source_json})[:-1].decode()
    field_start = orjson.dumps({run.field_name: None})[:-len(b"null}")].decode()
    line = (f'{line_start},"collected_at":', Cell.COLLECTED_AT_JSON, f',"fields":{field_start}', Cell.VALUE_JSON, "}}\n")
    row: list[str | Cell] = [csv_head, Cell.COLLECTED_AT_CSV]
    for name in stage.columns:
        row += [",", Cell.VALUE_CSV] if name == run.field_name else [","]
    row.append("\r\n")
    for (lines, rows), count in run.render([line, row]):
        spool.write(stage.json_name, lines.encode("utf-8"))
        spool.write(stage.csv_name, rows.encode("utf-8"))
        stage.records += count


def _local_tmp() -> str:
    path = settings.DATA_DIR / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def stage_discard(request_id) -> None:
    """Remove a request's work area (all connectors, all attempts)."""
    storage_delete_tree(f"work/{request_id}")


def storage_delete(path: str) -> None:
    try:
        default_storage.delete(path)
    except FileNotFoundError:
        pass


def storage_delete_tree(prefix: str) -> None:
    """Delete everything under a storage prefix, and the local directories it leaves empty."""
    try:
        directories, files = default_storage.listdir(prefix)
    except FileNotFoundError:
        return
    for name in files:
        storage_delete(f"{prefix}/{name}")
    for name in directories:
        storage_delete_tree(f"{prefix}/{name}")
    if hasattr(default_storage, "path"):
        try:
            os.rmdir(default_storage.path(prefix))
        except OSError:
            pass


def _staged(output: dict, stream: str) -> list[str] | str:
    """Where a task staged one stream: its inline texts, or its path in the work area."""
    inline = output.get("inline")
    return inline.get(stream, []) if inline is not None else f"{output['prefix']}/{stream}"


def _lines(part: list[str] | str) -> Iterator[str]:
    """The lines of one staged JSON-lines stream, without their newline."""
    if isinstance(part, list):
        for text in part:  # each a run of whole lines
            yield from text.split("\n")[:-1]
        return
    with default_storage.open(part, "rb") as handle:
        for raw in handle:
            yield raw.decode("utf-8").rstrip("\n")


def _blocks(part: list[str] | str) -> Iterator[bytes]:
    """The bytes of one staged stream, in blocks of about CHUNK."""
    if isinstance(part, list):
        if part:
            yield "".join(part).encode("utf-8")
        return
    with default_storage.open(part, "rb") as handle:
        while block := handle.read(CHUNK):
            yield block


# --- Deletion receipts -----------------------------------------------------------------------------


def receipt_as_dict(receipt: ErasureReceipt) -> dict:
    return {
        "erased": dict(receipt.erased),
        "retained": [
            {"category": r.category, "count": r.count, "reason": r.reason, "until": _iso(r.until)} for r in receipt.retained
        ],
        "suppressed_sources": list(receipt.suppressed_sources),
    }


def receipt_merge(tasks: Iterable[ConnectorTask]) -> dict:
    """One receipt for the request: erased counts per category, and every retained item."""
    erased: dict[str, int] = {}
    retained: list[dict] = []
    sources: list[str] = []
    for task in tasks:
        receipt = task.receipt or {}
        for category, count in receipt.get("erased", {}).items():
            erased[category] = erased.get(category, 0) + count
        retained.extend({**item, "connector": task.connector} for item in receipt.get("retained", []))
        sources.extend(s for s in receipt.get("suppressed_sources", []) if s not in sources)
    result = {"erased": erased, "retained": retained}
    if sources:
        result["notify_sources"] = sources
    return result


# --- The archive --------------------------------------------------------------------------------------


@dataclass
class Archive:
    path: str
    bytes: int
    sha256: str
    categories: dict[str, int]


class _IterReader(io.RawIOBase):
    """A read-only file over an iterator of bytes, so storage.save can consume a generator."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._buffer:
            try:
                self._buffer = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]  # a view: the rest of a large chunk is not copied again
        return size


class _StreamFile(File):
    """A file over a stream of chunks. Storage.save reads it as a file (S3) or, on a local disk,
    writes its chunks as they come rather than re-cut into 64 KiB pieces."""

    def __init__(self, chunks: Iterator[bytes], name: str) -> None:
        super().__init__(_IterReader(chunks), name=name)
        self._chunks = chunks

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        yield from self._chunks


def _prefetched(chunks: Iterator[bytes], depth: int = 8) -> Iterator[bytes]:
    """The same chunks, made by a thread of their own up to `depth` chunks ahead. Building the zip
    (reading files, hashing, compressing) and writing it both spend their time with the GIL
    released, so on two cores they overlap. The builder's error is raised here."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop, end = threading.Event(), object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def build() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
            put(end)
        except BaseException as error:  # handed to the writer, which raises it
            put(error)

    builder = threading.Thread(target=build, name="archive-builder", daemon=True)
    builder.start()
    try:
        while (item := handoff.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        builder.join()


class _Members:
    """Tracks each member's size and SHA-256 while its bytes stream into the zip."""

    def __init__(self) -> None:
        self.files: list[dict] = []

    def hashed(self, path: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        digest, size = hashlib.sha256(), 0
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            yield chunk
        self.files.append({"path": path, "bytes": size, "sha256": digest.hexdigest()})


def _category_json(parts: list) -> Iterator[bytes]:
    """The JSON array of a category: its staged lines, with ',' put before each newline but the last."""
    yield b"[\n"
    pending = b""
    for part in parts:
        for block in _blocks(part):
            if pending:
                yield pending
            pending = block.replace(b"\n", b",\n")
    yield (pending[:-2] + b"\n" if pending else b"") + b"]\n"


def csv_columns(staged: list[dict]) -> list[str]:
    """A category's CSV columns: each connector's in the order it found them, the first one's first."""
    columns: dict[str, None] = {}
    for entry in staged:
        columns.update(dict.fromkeys(entry["columns"]))
    return list(columns)


def _category_csv(parts: list[tuple[list | str, dict]], columns: list[str]) -> Iterator[bytes]:
    """The CSV of a category: the header, then each connector's staged rows. Rows that already have
    the category's columns in its order are copied as they are; others are re-laid cell by cell."""
    header = io.StringIO()
    csv.writer(header).writerow(FIXED_CSV_COLUMNS + columns)
    yield header.getvalue().encode("utf-8")
    for part, entry in parts:
        if entry["rectangular"] and entry["columns"] == columns:
            yield from _blocks(part)
            continue
        fixed = len(FIXED_CSV_COLUMNS)
        where = [columns.index(name) for name in entry["columns"]]
        out = io.StringIO()
        writer = csv.writer(out)
        text = io.TextIOWrapper(io.BufferedReader(_IterReader(_blocks(part))), encoding="utf-8", newline="")
        for row in csv.reader(text):
            cells = [""] * len(columns)
            for position, value in zip(where, row[fixed:], strict=False):
                cells[position] = value
            writer.writerow(row[:fixed] + cells)
            if out.tell() > CSV_FLUSH:
                yield out.getvalue().encode("utf-8")
                out.seek(0)
                out.truncate()
        yield out.getvalue().encode("utf-8")


def _file_chunks(connector: Connector, ref: str) -> Iterator[bytes]:
    with connector.open_file(ref) as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _preview(parts: list, limit: int) -> list[dict]:
    records: list[dict] = []
    for part in parts:
        for line in _lines(part):
            if len(records) >= limit:
                return records
            record = json.loads(line)
            record["fields_flat"] = list(flatten(record["fields"]))
            records.append(record)
    return records


@dataclass(frozen=True, slots=True)
class _ReportCategory:
    """A category as the report shows it. Attributes rather than a dict's keys: Jinja2 looks
    `category.records` up as an attribute first, and on a dict each lookup raised and caught an
    AttributeError (a third of rendering the report)."""

    id: str
    slug: str
    info: dict
    about: tuple[str, str]
    records: int
    sources: list
    preview: list


def archive_build(request: Request, tasks: list[ConnectorTask]) -> Archive:
    """Write the export zip for a request whose connector tasks all succeeded.

    On a local disk, where a task wrote its files into a zip of its own, the largest such zip
    becomes the archive and the rest is appended to it. Otherwise (S3, no task with that many
    files, or a step run again after the zip was taken) the whole archive is streamed, the files
    read from their connectors.
    """
    summary: dict[str, dict] = {
        c: {"label": category_info(c)["label"], "records": 0, "connectors": [], "sources": [], "staged": [], "json": [], "csv": []}
        for c in request.categories
    }
    file_lists: list[tuple[str, list | str, str | None]] = []
    for task in tasks:
        output = task.output or {}
        for category, staged in output.get("categories", {}).items():
            entry = summary[category]
            entry["records"] += staged["records"]
            entry["connectors"].append(task.connector)
            entry["sources"].extend(s for s in staged["sources"] if s not in entry["sources"])
            entry["staged"].append(staged)
            entry["json"].append(_staged(output, json_stream(category)))
            entry["csv"].append((_staged(output, csv_stream(category)), staged))
        if output.get("files"):
            file_lists.append((task.connector, _staged(output, FILES), output.get("fragment")))
    generated_at = timezone.now()
    index_html = render_to_string(
        "exports/index.html",  # templates/jinja2/
        {
            "request": request,
            "generated_at": generated_at,
            "terms_html": _terms_html(),
            "categories": [
                _ReportCategory(id=category, slug=_category_slug(category), info=category_info(category),
                                about=_category_about(category), records=entry["records"], sources=entry["sources"],
                                preview=_preview(entry["json"], INDEX_PREVIEW_RECORDS))
                for category, entry in summary.items()
            ],
            "preview_limit": INDEX_PREVIEW_RECORDS,
        },
        using="jinja2",
    ).encode("utf-8")

    def manifest(files: list[dict]) -> bytes:
        # orjson writes what json.dumps(indent=2, ensure_ascii=False) writes, without the pure-Python
        # encoder that indenting falls back to: a seventh of streaming a typical subject's archive.
        return orjson.dumps({
            "format_version": 1,
            "request_id": str(request.id),
            "subject_email": request.email,
            "generated_at": generated_at.isoformat(),
            "categories": {
                category: {"label": entry["label"], "records": entry["records"], "connectors": entry["connectors"], "sources": entry["sources"]}
                for category, entry in summary.items()
            },
            "files": files,
        }, option=orjson.OPT_INDENT_2)

    path = f"exports/{request.id}/{uuid.uuid4().hex}.zip"
    fragments = [fragment for _, _, fragment in file_lists if fragment]
    if fragments and on_local_disk() and all(default_storage.exists(fragment) for fragment in fragments):
        size, sha256 = _archive_appended(path, summary, file_lists, index_html, manifest)
    else:
        expected = sum((task.output or {}).get("file_bytes", 0) for task in tasks)
        expected += sum(_staged_size(part) for entry in summary.values() for part in entry["json"])
        path, size, sha256 = _archive_streamed(path, summary, file_lists, index_html, manifest, big=expected > PREFETCH_FROM)
    return Archive(path=path, bytes=size, sha256=sha256, categories={category: entry["records"] for category, entry in summary.items()})


def report_prepare() -> None:
    """Compile the report's template and render its fixed parts (the terms, each category's
    words), and load the URLconf its download link is reversed with. Called in a worker's parent
    before it forks its pool, so that its children share all of it instead of each spending a
    third of a second of CPU on it at its first export."""
    import_module(settings.ROOT_URLCONF)
    get_template("exports/index.html", using="jinja2")
    _terms_html()
    for category in category_ids():
        _category_slug(category)
        _category_about(category)


# The report's words from the taxonomy are the same in every export; rendering them was most of the
# report's cost, and the report a twentieth of a worker's time.
@lru_cache(maxsize=1)
def _terms_html() -> str:
    return mark_safe(render_to_string("exports/terms.html", {"taxonomy": taxonomy()}))  # noqa: S308 (a rendered template)


@cache
def _category_slug(category: str) -> str:
    """The category's anchor in the report (Django's slugify took a thirtieth of the worker's time)."""
    return slugify(category)


@cache
def _category_about(category: str) -> tuple[str, str]:
    """A category's description, purposes and legal basis; and its retention and recipients."""
    info = category_info(category)
    return tuple(mark_safe(render_to_string("exports/category_about.html", {"info": info, "part": part}))  # noqa: S308
                 for part in ("why", "keep"))


def _data_members(summary: dict[str, dict]) -> Iterator[tuple[str, Iterator[bytes], int]]:
    """(name, bytes, about how many bytes) of each data member: every category's JSON and CSV."""
    for category, entry in summary.items():
        staged = sum(_staged_size(part) for part in entry["json"])
        yield f"data/{category}.json", _category_json(entry["json"]), staged
        yield f"data/{category}.csv", _category_csv(entry["csv"], csv_columns(entry["staged"])), staged


def _data_compression(size: int) -> int:
    """How a data member of about `size` bytes goes into the archive (see DEFLATE_FROM)."""
    return ZIP_STORED if size < DEFLATE_FROM else ZIP_DEFLATED


def _staged_size(part: list | str) -> int:
    return sum(len(text) for text in part) if isinstance(part, list) else default_storage.size(part)


def _archive_streamed(path: str, summary: dict, file_lists: list, index_html: bytes, manifest, *, big: bool) -> tuple[str, int, str]:
    """The archive as one stream through the storage API: any storage, files read from their
    connectors. A big one is built by a thread of its own while it is written."""
    members = _Members()
    zs = ZipStream(compress_type=ZIP_DEFLATED, sized=False)
    for name, chunks, size in _data_members(summary):
        zs.add(members.hashed(name, chunks), name, compress_type=_data_compression(size))
    for connector_name, listed, _fragment in file_lists:
        for line in _lines(listed):
            item = json.loads(line)
            zs.add(members.hashed(item["path"], _file_chunks(connector_get(connector_name), item["ref"])), item["path"],
                   compress_type=ZIP_STORED)
    zs.add(members.hashed("index.html", [index_html]), "index.html")

    def stream() -> Iterator[bytes]:
        yield from zs.all_files()
        zs.add(manifest(members.files), "manifest.json")
        yield from zs.finalize()

    digest, size = hashlib.sha256(), 0

    def counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
        nonlocal size
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            yield chunk

    saved = None
    try:
        saved = default_storage.save(path, _StreamFile(counted(_prefetched(stream()) if big else stream()), name="export.zip"))
    except BaseException:
        storage_delete(saved or path)
        raise
    return saved, size, digest.hexdigest()


def _archive_appended(path: str, summary: dict, file_lists: list, index_html: bytes, manifest) -> tuple[int, str]:
    """The archive on a local disk: the largest task zip of files, moved into place, with the other
    tasks' files, the data members, the report and the manifest appended (zipfile rewrites the
    central directory at the end). The task zip is taken, so a second run of this step streams."""
    local = Path(default_storage.path(path))
    local.parent.mkdir(parents=True, exist_ok=True)
    base = max((fragment for _, _, fragment in file_lists if fragment), key=default_storage.size)
    members = _Members()
    try:
        shutil.move(default_storage.path(base), local)  # a rename, on one disk
        with (
            zipfile.ZipFile(local, "a", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive,
            ThreadPoolExecutor(1, thread_name_prefix="archive-digest") as background,
        ):
            # Appending starts at the task zip's central directory (start_dir); the bytes before it
            # stay as they are, so they are hashed meanwhile, on the other core.
            kept = archive.start_dir
            head = background.submit(_digest, local, end=kept)
            for connector_name, listed, fragment in file_lists:
                if fragment == base:
                    members.files.extend({k: v for k, v in json.loads(line).items() if k != "ref"} for line in _lines(listed))
                elif fragment:  # another task's zip of files: its members copied in
                    with default_storage.open(fragment, "rb") as handle, zipfile.ZipFile(handle) as other:
                        for info in other.infolist():
                            with other.open(info) as source:
                                _member_write(archive, members, info.filename, iter(lambda: source.read(CHUNK), b""),
                                              zipfile.ZIP_STORED, force_zip64=info.file_size > ZIP64_FROM)
                else:  # a few small files, read from their connector now
                    connector = connector_get(connector_name)
                    for item in map(json.loads, _lines(listed)):
                        _member_write(archive, members, item["path"], _file_chunks(connector, item["ref"]), zipfile.ZIP_STORED)
            for name, chunks, size in _data_members(summary):
                _member_write(archive, members, name, chunks, _data_compression(size), force_zip64=size > ZIP64_FROM,
                              fast=size > PREFETCH_FROM)
            _member_write(archive, members, "index.html", [index_html], zipfile.ZIP_DEFLATED)
            archive.writestr(_member("manifest.json", zipfile.ZIP_DEFLATED), manifest(members.files))
            digest, _ = head.result()
        digest, appended = _digest(local, start=kept, digest=digest)
    except BaseException:
        local.unlink(missing_ok=True)
        raise
    return kept + appended, digest.hexdigest()


def _digest(path: Path, *, start: int = 0, end: int | None = None, digest=None) -> tuple[Any, int]:
    """Go on hashing (SHA-256 by default) a file's bytes from `start` to `end` (its end when None);
    the hash object, to go on with, and how many bytes it read."""
    digest, read = digest or hashlib.sha256(), 0
    left = float("inf") if end is None else end - start
    with path.open("rb") as handle:
        handle.seek(start)
        while read < left and (chunk := handle.read(min(CHUNK, left - read))):
            digest.update(chunk)
            read += len(chunk)
    return digest, read


def _member(name: str, compress_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = compress_type
    return info


def _member_write(archive: zipfile.ZipFile, members: _Members, name: str, chunks: Iterable[bytes], compress_type: int, *,
                  force_zip64: bool = False, fast: bool = False) -> None:
    """Write one member into `archive`, its size and SHA-256 into `members`. `force_zip64` for a
    member that may pass 2 GiB; `fast`: the quickest deflate (level 1), for one big enough to be the
    final step's wait."""
    info = _member(name, compress_type)
    if fast:
        info._compresslevel = 1  # zipfile's own per-member level (ZipFile.write/writestr take it as compresslevel)
    with archive.open(info, "w", force_zip64=force_zip64) as target:
        for chunk in members.hashed(name, chunks):
            target.write(chunk)


def archive_encrypted(export: Export, passphrase: str) -> Iterator[bytes]:
    """The stored archive re-packed as it streams out, every member encrypted with AES-256
    (WinZip AE-2) under the person's passphrase. The passphrase serves this one response and is
    never stored, so a downloaded file stays protected wherever it is copied."""
    from stream_zip import ZIP_64, stream_zip

    handle = default_storage.open(export.path, "rb")
    archive = zipfile.ZipFile(handle)

    def member_chunks(info: zipfile.ZipInfo) -> Iterator[bytes]:
        with archive.open(info) as member:
            while chunk := member.read(CHUNK):
                yield chunk

    def members():
        for info in archive.infolist():
            if not info.is_dir():
                yield info.filename, dt.datetime(*info.date_time), 0o600, ZIP_64, member_chunks(info)

    try:
        yield from stream_zip(members(), password=passphrase)
    finally:
        archive.close()
        handle.close()


# --- Downloads ------------------------------------------------------------------------------------------


def download_url(export: Export) -> str:
    """An absolute, signed link to one export; it stops working when the export expires."""
    token = signing.dumps({"r": str(export.request_id), "e": export.pk}, salt=DOWNLOAD_SALT, compress=True)
    path = reverse("request-download", kwargs={"request_id": export.request_id, "signature": token})
    return f"{settings.DSAR_PUBLIC_URL}{path}"


def export_for_download(*, request_id, signature: str) -> Export | None:
    """The export a signed link points to, if the link is genuine, for this request, and unexpired."""
    try:
        payload = signing.loads(signature, salt=DOWNLOAD_SALT)
    except signing.BadSignature:
        return None
    if payload.get("r") != str(request_id):
        return None
    export = Export.objects.filter(pk=payload.get("e"), request_id=request_id, deleted_at__isnull=True, released_at__isnull=False).first()
    if export is None or export.expires_at <= timezone.now():
        return None
    return export
