"""Staging: a connector task's records and files, written out where the final step will find them.

Each record is written twice, as a JSON line (for the archive's data/<category>.json) and as a CSV
row (for its .csv), here, in the connector's task, so that the final step copies bytes instead of
going through a million records again. A typical subject's streams are small and ride in the task
row; past INLINE_BYTES they spill to local files that are moved into the storage's work area
(`work/<request>/<connector>/<attempt>/`), so memory stays bounded at any size and a crashed
attempt leaves nothing the final step would read.

On a local disk a task whose files pass FILES_ZIP_FROM in total also copies them into a zip of its
own while it gathers, each with its SHA-256; the final step builds the archive on that zip
(archive.py), so big files are read and written once, while the other connectors gather.

Each record is also checked here, as it passes, against the retention its category promises
(retention.py); what is past it is counted in the staged manifest.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import os
import re
import shutil
import tempfile
import zipfile
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from django.core.files.storage import default_storage
from django.utils import timezone

from connectors.base import Connector, FileItem, Identity, PermanentError, Period, Record, Source
from connectors.sql_rendered import RenderedRecords, RenderedSqlConnector
from connectors.taxonomy import category_known, category_root

from .. import formats
from ..models import Request
from .retention import RetentionCheck
from .storage import CHUNK, ZIP64_FROM, Tally, file_chunks, local_tmp, member_info, on_local_disk, storage_delete_tree, storage_save

INLINE_BYTES = 256 * 1024  # a task's staged streams up to this size travel in its task row
FILES_ZIP_FROM = 32 * 1024 * 1024  # a task's files past this size go into a zip of its own
FILES_STREAM = "__files__.jsonl"  # the staged stream listing content files (no category has this id)
OTHERS_STREAM = "__others__.jsonl"  # the staged stream listing what may be other people's data (exports/review.py)
CSV_FIXED_COLUMNS = ["connector", "system", "source_type", "source_name", "source_kind", "collected_at"]
CSV_FLUSH = 64 * 1024
# A spreadsheet reads a cell starting with one of these as a formula (OWASP's CSV injection list).
CSV_FORMULA_STARTS = frozenset("=+-@\t\r")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # no place in an archive's member names
LINES_FLUSH = 512  # JSON lines handed to the spool together


# --- What a task staged, as its task row keeps it -----------------------------------------------------


@dataclass
class StagedCategory:
    """One category of one connector's output. `columns` are its flattened fields in the order they
    first appeared; `rectangular` says every staged CSV row has every column (none appeared late)."""

    records: int = 0
    columns: list[str] = field(default_factory=list)
    rectangular: bool = True
    sources: list[Source] = field(default_factory=list)


@dataclass(frozen=True)
class StagedFile:
    """A content file: its name in the archive, what its connector opens it by, its size if known,
    and its SHA-256 once it was copied into the task's zip of files."""

    path: str
    ref: str
    bytes: int | None
    sha256: str | None = None


@dataclass
class Staged:
    """What one connector task staged: written to its task row as JSON (the staged manifest, in
    format `formats.STAGED`) and read back by the final step.

    `inline` holds the streams' texts when they were small enough for the row; otherwise they are
    files under `prefix` in the storage. `files_zip` is the task's zip of files, if it made one.
    `others` counts the records and files that may be other people's data (`OthersItem`).
    `retention` lists the records past what their category's retention promises (retention.py).
    """

    prefix: str
    inline: dict[str, str] | None
    categories: dict[str, StagedCategory]
    files: int = 0
    file_bytes: int = 0
    files_zip: str | None = None
    others: int = 0
    retention: list[dict[str, Any]] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Records per category."""
        return {category: staged.records for category, staged in self.categories.items()}

    def as_json(self) -> dict[str, Any]:
        """The task row's JSON."""
        return {
            "format": formats.STAGED,
            "prefix": self.prefix,
            "inline": self.inline,
            "categories": {
                category: {"records": s.records, "columns": s.columns, "rectangular": s.rectangular,
                           "sources": [source.as_dict() for source in s.sources]}
                for category, s in self.categories.items()
            },
            "files": self.files,
            "file_bytes": self.file_bytes,
            "files_zip": self.files_zip,
            "others": self.others,
            "retention": self.retention,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Staged:
        """What `as_json` wrote, in any format this release reads (FormatUnknown otherwise): the
        release before format versions wrote none, format 1, and format 2, which adds `others`. Output
        staged by a release without the retention check has no `retention`: it found nothing (an
        added key, which such a release ignores in turn)."""
        formats.format_check("staged work", data.get("format"), formats.STAGED_READS)
        return cls(
            prefix=data["prefix"],
            inline=data["inline"],
            categories={
                category: StagedCategory(records=s["records"], columns=s["columns"], rectangular=s["rectangular"],
                                         sources=[Source(**source) for source in s["sources"]])
                for category, s in data["categories"].items()
            },
            files=data["files"],
            file_bytes=data["file_bytes"],
            files_zip=data["files_zip"],
            others=data.get("others", 0),
            retention=data.get("retention", []),
        )

    def size(self, stream: str) -> int:
        """How many bytes one staged stream holds (about, for an inline one: its characters)."""
        if self.inline is not None:
            return len(self.inline.get(stream, ""))
        path = f"{self.prefix}/{stream}"
        return default_storage.size(path) if default_storage.exists(path) else 0

    def blocks(self, stream: str) -> Iterator[bytes]:
        """The bytes of one staged stream, in blocks of about CHUNK."""
        if self.inline is not None:
            if text := self.inline.get(stream):
                yield text.encode("utf-8")
            return
        path = f"{self.prefix}/{stream}"
        if default_storage.exists(path):
            with default_storage.open(path, "rb") as handle:
                while block := handle.read(CHUNK):
                    yield block

    def lines(self, stream: str) -> Iterator[str]:
        """The lines of one staged stream, without their newline."""
        if self.inline is not None:
            yield from self.inline.get(stream, "").split("\n")[:-1]  # not splitlines(): a value may hold U+2028
            return
        path = f"{self.prefix}/{stream}"
        if default_storage.exists(path):
            with default_storage.open(path, "rb") as handle:
                for raw in handle:
                    yield raw.decode("utf-8").rstrip("\n")

    def staged_files(self) -> Iterator[StagedFile]:
        """The content files the task found, in order."""
        for line in self.lines(FILES_STREAM):
            yield StagedFile(**json.loads(line))

    def others_items(self) -> Iterator[OthersItem]:
        """The records (and files) the task found that may be other people's data, in order."""
        for line in self.lines(OTHERS_STREAM):
            yield OthersItem(**json.loads(line))


@dataclass(frozen=True)
class OthersItem:
    """A staged record that may be other people's data: the `index`th of its category's stream, and
    the member name of its file when the record stands for one."""

    category: str
    index: int
    file: str | None = None


def json_stream(category: str) -> str:
    """The staged stream of a category's JSON lines."""
    return f"{category}.jsonl"


def csv_stream(category: str) -> str:
    """The staged stream of a category's CSV rows (without the header)."""
    return f"{category}.csv"


# --- Staging a gather ----------------------------------------------------------------------------------


def request_period(request: Request) -> Period | None:
    """The period an access request asked its data from, in the person's time zone; None: all of it."""
    if request.date_from is None and request.date_to is None:
        return None
    return Period.of_days(request.date_from, request.date_to, zoneinfo.ZoneInfo(request.time_zone or "UTC"))


def stage_gather(connector: Connector, identity: Identity, categories: frozenset[str], *, request_id, attempt: int,
                 period: Period | None = None) -> Staged:
    """Run a connector's gather into the work area, keeping the requested categories (and, given a
    `period`, what the system can tell is from it); return what was staged, for the task row. A
    record in a category the taxonomy lacks, or whose fields are not a mapping, fails the task with
    its reason: never a category silently missing."""
    stage = _Stage(connector, categories, prefix=f"work/{request_id}/{connector.name}/{attempt}", now=timezone.now())
    # The one fast path (connectors/sql_rendered.py): PostgreSQL writes a long table's lines and rows.
    if isinstance(connector, RenderedSqlConnector):
        gathered = connector.gather_rendered(identity, period)
    else:
        gathered = connector.gather_period(identity, period) if period is not None else connector.gather(identity)
    try:
        for item in gathered:
            if isinstance(item, Record):
                stage.add_record(item)
            elif isinstance(item, FileItem):
                stage.add_file(item)
            elif isinstance(item, RenderedRecords):
                stage.add_rendered(item)
            else:
                raise PermanentError(f"{connector.name} yielded {type(item).__name__}, not a Record or FileItem")
        return stage.finish()
    finally:
        stage.close()


def stage_edited(staged: Staged, *, connector: str, prefix: str, changes: Mapping[str, Mapping[int, Mapping[str, Any] | None]],
                 files_left_out: frozenset[str]) -> Staged:
    """A copy of one task's staged work under `prefix`, changed after a review: `changes` maps a
    category to the records to change, by their place in its stream, each to its new fields (None:
    left out); the files named in `files_left_out` are left out. A category without changes is
    copied as it is, its lines and rows unread. The copy names no zip of files (the archive reads
    each file it keeps from its connector) and nothing more to review."""
    spool = _Spool()
    categories: dict[str, StagedCategory] = {}
    try:
        for category, part in staged.categories.items():
            changed = changes.get(category)
            if not changed:
                for stream in (json_stream(category), csv_stream(category)):
                    for block in staged.blocks(stream):
                        spool.write(stream, block)
                categories[category] = part
                continue
            writer = _CategoryWriter(category, connector, spool, now=dt.datetime.now(dt.UTC))
            for index, line in enumerate(staged.lines(json_stream(category))):
                record = orjson.loads(line)
                fields = changed[index] if index in changed else record["fields"]
                if fields is not None:
                    at = record["collected_at"]
                    writer.add(Record(category, fields, record["system"], Source(**record["source"]),
                                      dt.datetime.fromisoformat(at) if at is not None else None))
            categories[category] = writer.finish()
        kept = [file for file in staged.staged_files() if file.path not in files_left_out]
        for file in kept:
            spool.write(FILES_STREAM, json_line(asdict(file)))
        inline = spool.finish(prefix)
    finally:
        spool.close()
    # What the staged data showed past its promises stays found: the request's finding was made from it.
    return Staged(prefix=prefix, inline=inline, categories=categories, files=len(kept), file_bytes=sum(file.bytes or 0 for file in kept),
                  retention=staged.retention)


def stage_discard(request_id) -> None:
    """Remove a request's work area (all connectors, all attempts)."""
    storage_delete_tree(f"work/{request_id}")


def flatten(fields: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """A record's fields as CSV columns: nested mappings become dotted names; lists stay whole, as JSON."""
    for key, value in fields.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from flatten(value, f"{name}.")
        elif isinstance(value, (list, dict)):
            yield name, json.dumps(value, ensure_ascii=False, default=str)
        else:
            yield name, value


def csv_cell(value: Any) -> Any:
    """A value as the CSV writes it: text that a spreadsheet would take for a formula (it starts with
    one of CSV_FORMULA_STARTS) gets a leading single quote, as OWASP recommends; a number, negative or
    not, stays a number, and None an empty cell. The JSON keeps the value as it is."""
    if type(value) is str:  # most cells: no slower checks
        return "'" + value if value[:1] in CSV_FORMULA_STARTS else value
    if value is None or isinstance(value, (int, float, Decimal)):
        return value
    text = str(value)  # what the csv module would write for it
    return "'" + text if text[:1] in CSV_FORMULA_STARTS else text


def json_line(value: Any) -> bytes:
    """A value as one line of JSON. orjson, because a subject can have millions of records and the
    standard encoder costs several times as much per record; the standard one takes what orjson
    refuses (integers past 64 bits, keys that are not text)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return (json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":")) + "\n").encode("utf-8")


def iso_time(value: dt.datetime | dt.date) -> str:
    """A time (or date) in ISO 8601, exactly as its isoformat() writes it: orjson writes the same
    text at a third of the cost, and a subject can have millions of records."""
    return orjson.dumps(value)[1:-1].decode()


class _Spool:
    """A task's staged streams, in memory while they are small, else in local files."""

    def __init__(self) -> None:
        self.texts: dict[str, list[bytes]] = {}
        self.size = 0
        self.directory: Path | None = None
        self.handles: dict[str, Any] = {}

    def write(self, stream: str, data: bytes) -> None:
        if self.directory is None:
            self.texts.setdefault(stream, []).append(data)
            self.size += len(data)
            if self.size > INLINE_BYTES:
                self._spill()
        else:
            self._handle(stream).write(data)

    def _handle(self, stream: str) -> Any:
        if stream not in self.handles:
            self.handles[stream] = (self.directory / stream).open("wb")
        return self.handles[stream]

    def _spill(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="dsar-stage-", dir=local_tmp()))
        for stream, texts in self.texts.items():
            self._handle(stream).writelines(texts)
        self.texts = {}

    def finish(self, prefix: str) -> dict[str, str] | None:
        """The streams' texts, or None once they were moved to `prefix` in the storage."""
        if self.directory is None:
            return {stream: b"".join(texts).decode("utf-8") for stream, texts in self.texts.items()}
        for stream, handle in self.handles.items():
            handle.close()
            storage_save(f"{prefix}/{stream}", self.directory / stream)
        return None

    def close(self) -> None:
        if self.directory is not None:
            for handle in self.handles.values():
                handle.close()
            shutil.rmtree(self.directory, ignore_errors=True)


class _CategoryWriter:
    """One category's JSON lines and CSV rows, as its records arrive, and its retention check."""

    def __init__(self, category: str, connector: str, spool: _Spool, *, now: dt.datetime) -> None:
        self.json_name, self.csv_name = json_stream(category), csv_stream(category)
        self.connector, self.spool = connector, spool
        self.staged = StagedCategory()
        self.retention = RetentionCheck(category, now=now)
        self.limited = self.retention.kept_from is not None  # the category promises a fixed age
        self.columns: dict[str, None] = {}  # the flattened fields seen so far, in order
        self.heads: dict[tuple[str, Source], tuple[dict, str]] = {}
        self.last: tuple[str | None, Source | None, tuple[dict, str] | None] = (None, None, None)  # system, source, head
        self.lines: list[bytes] = []
        self.csv = io.StringIO()
        self.writer = csv.writer(self.csv)

    def add(self, record: Record, *, file: bool = False) -> None:
        system, source, head = self.last
        if record.system is not system or record.source is not source:  # records come in runs: no hashing for most
            head = self._head(record.system, record.source)
        at = iso_time(record.collected_at) if record.collected_at is not None else None
        self.lines.append(json_line({"connector": self.connector, "system": record.system, "source": head[0],
                                     "collected_at": at, "fields": record.fields}))
        if len(self.lines) == LINES_FLUSH:
            self.flush_lines()
        flat = _flat(record.fields)
        if not flat.keys() <= self.columns.keys():
            self._widen(flat)
        self.csv.write(head[1])
        self.writer.writerow([at, *map(csv_cell, map(flat.get, self.columns, _BLANKS))])
        self.staged.records += 1
        if self.csv.tell() > CSV_FLUSH:
            self.flush_csv()
        if self.limited or record.retained_until is not None:
            self.retention.check(record, file=file)

    def add_rendered(self, rendered: RenderedRecords) -> None:
        """Records PostgreSQL writes out: the very lines and rows `add` would write for them."""
        head = self._head(rendered.system, rendered.source)
        if rendered.field not in self.columns:
            self._widen({rendered.field: None})
        self.flush_lines()  # what is staged so far goes first, so the streams keep the connector's order
        self.flush_csv()
        line_start = orjson.dumps({"connector": self.connector, "system": rendered.system, "source": head[0]})[:-1].decode()
        fields_start = orjson.dumps({rendered.field: None})[:-len(b"null}")].decode()
        position = list(self.columns).index(rendered.field)
        for lines, rows, count, older in rendered.texts(
                line_start=f'{line_start},"collected_at":', fields_start=f',"fields":{fields_start}', row_start=head[1],
                cells_before=position, cells_after=len(self.columns) - position - 1, kept_from=self.retention.kept_from):
            self.spool.write(self.json_name, lines.encode("utf-8"))
            self.spool.write(self.csv_name, rows.encode("utf-8"))
            self.staged.records += count
            self.retention.count_older(rendered.system, older)

    def _head(self, system: str, source: Source) -> tuple[dict, str]:
        """A run of records' source as JSON, and the CSV cells each of its rows starts with (up to
        the comma before collected_at): worked out once per system and source."""
        head = self.heads.get((system, source))
        if head is None:
            cells = io.StringIO()
            csv.writer(cells).writerow([*map(csv_cell, [self.connector, system, source.type, source.name, source.kind]), ""])
            head = self.heads[(system, source)] = (source.as_dict(), cells.getvalue().removesuffix("\r\n"))
            if source not in self.staged.sources:
                self.staged.sources.append(source)
        self.last = (system, source, head)
        return head

    def _widen(self, flat: Mapping[str, Any]) -> None:
        """Add the columns not seen yet; rows already written then lack them."""
        if self.staged.records:
            self.staged.rectangular = False
        self.columns.update(dict.fromkeys(flat))

    def flush_lines(self) -> None:
        if self.lines:
            self.spool.write(self.json_name, b"".join(self.lines))
            self.lines.clear()

    def flush_csv(self) -> None:
        if self.csv.tell():
            self.spool.write(self.csv_name, self.csv.getvalue().encode("utf-8"))
            self.csv.seek(0)
            self.csv.truncate()

    def finish(self) -> StagedCategory:
        self.flush_lines()
        self.flush_csv()
        self.staged.columns = list(self.columns)
        return self.staged


_BLANKS = itertools.repeat("")  # the CSV cell of each column a record lacks


def _flat(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """The fields as CSV columns: most records are flat already, and are returned as they are."""
    for value in fields.values():
        if isinstance(value, (dict, list)):
            return dict(flatten(fields))
    return fields


class _FilesZip:
    """A task's content files copied into a zip of its own (stored, as the archive keeps them), each
    with its SHA-256, once they pass FILES_ZIP_FROM together. Until then they are only listed: a
    few small files are not worth a zip, and the final step reads them from their connector."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self.pending: list[StagedFile] = []
        self.pending_bytes = 0
        self.local: Path | None = None
        self.zip: zipfile.ZipFile | None = None

    def offer(self, file: StagedFile) -> list[StagedFile]:
        """Take one file; return the files now ready to list (copied in, with their SHA-256, or not)."""
        if self.zip is None:
            self.pending.append(file)
            self.pending_bytes += file.bytes or 0
            if self.pending_bytes <= FILES_ZIP_FROM:
                return []
            handle, name = tempfile.mkstemp(prefix="dsar-files-", suffix=".zip", dir=local_tmp())
            os.close(handle)
            self.local = Path(name)
            self.zip = zipfile.ZipFile(self.local, "w", allowZip64=True)
            ready, self.pending = self.pending, []
        else:
            ready = [file]
        return [self._copy(file) for file in ready]

    def _copy(self, file: StagedFile) -> StagedFile:
        tally = Tally()
        force_zip64 = file.bytes is None or file.bytes > ZIP64_FROM
        with self.zip.open(member_info(file.path, compressed=False), "w", force_zip64=force_zip64) as target:
            for chunk in tally.through(file_chunks(self.connector, file.ref)):
                target.write(chunk)
        return StagedFile(file.path, file.ref, tally.bytes, tally.hexdigest())

    def rest(self) -> list[StagedFile]:
        """The files still only listed."""
        ready, self.pending = self.pending, []
        return ready

    def finish(self, target: str) -> str | None:
        """Move the finished zip to `target` in the storage; its name there, or None without one."""
        if self.zip is None:
            return None
        self.zip.close()
        self.zip = None
        return storage_save(target, self.local)

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()
        if self.local is not None:
            self.local.unlink(missing_ok=True)


class _Stage:
    """One gather on its way into the work area."""

    def __init__(self, connector: Connector, categories: frozenset[str], *, prefix: str, now: dt.datetime) -> None:
        self.connector, self.categories, self.prefix, self.now = connector, categories, prefix, now
        self.spool = _Spool()
        self.writers: dict[str, _CategoryWriter] = {}
        self.roots: dict[str, str | None] = {}  # category -> its root if the request asked for it, else None
        self.files_zip = _FilesZip(connector) if on_local_disk() else None
        self.files = self.file_bytes = self.others = 0
        self.file_paths: set[str] = set()  # the archive's member names given so far

    def _root(self, category: Any) -> str | None:
        if not isinstance(category, str) or category not in self.roots:
            if not isinstance(category, str) or not category_known(category):
                raise PermanentError(f"{self.connector.name} yielded a record in {category!r}, which is not a category of the taxonomy")
            root = category_root(category)
            self.roots[category] = root if root in self.categories else None
        return self.roots[category]

    def add_record(self, record: Record, *, file: str | None = None) -> None:
        root = self._root(record.category)
        if type(record.fields) is not dict and not isinstance(record.fields, Mapping):  # most are dicts: skip the slower check
            raise PermanentError(f"{self.connector.name} yielded a {record.category} record whose fields are not a mapping")
        if root is not None:
            writer = self._writer(root)
            writer.add(record, file=file is not None)
            if record.others:
                self.spool.write(OTHERS_STREAM, json_line(asdict(OthersItem(root, writer.staged.records - 1, file))))
                self.others += 1

    def _writer(self, category: str) -> _CategoryWriter:
        writer = self.writers.get(category)
        if writer is None:
            writer = self.writers[category] = _CategoryWriter(category, self.connector.name, self.spool, now=self.now)
        return writer

    def add_rendered(self, rendered: RenderedRecords) -> None:
        root = self._root(rendered.category)
        if root is not None:
            self._writer(root).add_rendered(rendered)

    def add_file(self, item: FileItem) -> None:
        if self._root(item.category) is None:
            return
        path = self._file_path(item.path)
        file = StagedFile(path, item.ref, item.size)
        for ready in self.files_zip.offer(file) if self.files_zip is not None else [file]:
            self.spool.write(FILES_STREAM, json_line(asdict(ready)))
        self.files += 1
        self.file_bytes += item.size or 0
        # The file is also a record of its category, so the data files say it is there.
        self.add_record(Record(item.category, {"file": path, "bytes": item.size}, self.connector.name, item.source, item.collected_at,
                               item.others), file=path)

    def _file_path(self, name: str) -> str:
        """A file's member name in the archive, under its system: the parts of the name a system
        gave, without control characters, backslashes, '.' or '..' (an archive tool would act on
        them), and made unique (`a.pdf`, then `a (2).pdf`), since a zip may hold a name twice but
        unzipping keeps one."""
        parts = [CONTROL.sub("_", part) for part in name.replace("\\", "/").split("/") if part not in ("", ".", "..")]
        stem = f"files/{self.connector.name}/{'/'.join(parts) or 'file'}"
        path, number = stem, 1
        while path in self.file_paths:
            number += 1
            base, dot, suffix = stem.rpartition(".") if "." in stem.rsplit("/", 1)[-1] else (stem, "", "")
            path = f"{base} ({number}){dot}{suffix}"
        self.file_paths.add(path)
        return path

    def finish(self) -> Staged:
        categories = {category: writer.finish() for category, writer in self.writers.items()}
        for ready in self.files_zip.rest() if self.files_zip is not None else []:
            self.spool.write(FILES_STREAM, json_line(asdict(ready)))
        files_zip = self.files_zip.finish(f"{self.prefix}/files.zip") if self.files_zip is not None else None
        inline = self.spool.finish(self.prefix)
        retention = [entry for writer in self.writers.values() for entry in writer.retention.found()]
        return Staged(prefix=self.prefix, inline=inline, categories=categories, files=self.files, file_bytes=self.file_bytes,
                      files_zip=files_zip, others=self.others, retention=retention)

    def close(self) -> None:
        self.spool.close()
        if self.files_zip is not None:
            self.files_zip.close()
