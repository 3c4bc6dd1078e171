"""Gathered records on their way to the person: staging, the export archive, receipts, downloads.

A connector task streams its records into per-category JSON-lines files in the work area
(`work/<request>/<connector>/<attempt>/`), written to local temporary files and moved into the
storage, so a crashed attempt leaves nothing the final step would read. The final step streams
those files, and the content files read straight from their connectors, into one zip written
through Django's storage API; a manifest with every member's SHA-256 is added last. Nothing holds
a whole subject in memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.storage import default_storage
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from zipstream import ZIP_DEFLATED, ZIP_STORED, ZipStream

from connectors.base import Connector, ErasureReceipt, FileItem, Identity, PermanentError, Record
from connectors.registry import connector_get
from connectors.taxonomy import category_info, category_known, category_root, taxonomy

from .models import ConnectorTask, Export, Request

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
INDEX_PREVIEW_RECORDS = 50
INLINE_BYTES = 256 * 1024  # a connector's output up to this size travels in its task row
FILES = "__files__"  # the staged stream listing content files
DOWNLOAD_SALT = "dsar.download"
FIXED_CSV_COLUMNS = ["connector", "system", "source_type", "source_name", "source_kind", "collected_at"]


# --- Staging: a connector task's output --------------------------------------------------------------


class _TempFile(File):
    """A finished local temporary file; FileSystemStorage moves it into place instead of copying."""

    def temporary_file_path(self) -> str:
        return self.file.name


@dataclass
class _CategoryStage:
    records: int = 0
    columns: set[str] = field(default_factory=set)
    sources: dict[tuple, dict] = field(default_factory=dict)


class _Spool:
    """A connector's staged lines, one stream per category plus one for files. A typical subject's
    stay in memory and go into the task row; past INLINE_BYTES everything spills to local files,
    which are moved into the storage's work area, so memory stays bounded at any size."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {}
        self.size = 0
        self.tmpdir: Path | None = None
        self.handles: dict[str, Any] = {}

    def write(self, stream: str, line: str) -> None:
        if self.tmpdir is None:
            self.lines.setdefault(stream, []).append(line)
            self.size += len(line)
            if self.size > INLINE_BYTES:
                self._spill()
        else:
            self._handle(stream).write(line)

    def _handle(self, stream: str):
        if stream not in self.handles:
            self.handles[stream] = (self.tmpdir / f"{stream}.jsonl").open("w", encoding="utf-8")
        return self.handles[stream]

    def _spill(self) -> None:
        self.tmpdir = Path(tempfile.mkdtemp(prefix="dsar-stage-", dir=_local_tmp()))
        for stream, lines in self.lines.items():
            self._handle(stream).writelines(lines)
        self.lines = {}

    def finish(self, prefix: str) -> dict[str, list[str]] | None:
        """Inline lines per stream, or None once they were moved to `prefix` in the storage."""
        if self.tmpdir is None:
            return self.lines
        for stream, handle in self.handles.items():
            handle.close()
            with (self.tmpdir / f"{stream}.jsonl").open("rb") as local:
                target = f"{prefix}/{stream}.jsonl"
                storage_delete(target)
                default_storage.save(target, _TempFile(local, name=f"{stream}.jsonl"))
        return None

    def close(self) -> None:
        if self.tmpdir is not None:
            for handle in self.handles.values():
                handle.close()
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


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


def stage_gather(connector: Connector, identity: Identity, categories: frozenset[str], *, request_id, attempt: int) -> dict:
    """Run a connector's gather into the work area; return what was staged, for the task row."""
    prefix = f"work/{request_id}/{connector.name}/{attempt}"
    stages: dict[str, _CategoryStage] = {}
    spool = _Spool()
    file_count = file_bytes = 0
    try:
        for item in connector.gather(identity):
            if not isinstance(item, (Record, FileItem)):
                raise PermanentError(f"{connector.name} yielded {type(item).__name__}, not a Record or FileItem")
            if not category_known(item.category):
                # Malformed data fails the task with its reason: never a category silently missing.
                raise PermanentError(f"{connector.name} yielded a record in {item.category!r}, which is not a category of the taxonomy")
            if not isinstance(item, FileItem) and not isinstance(item.fields, Mapping):
                raise PermanentError(f"{connector.name} yielded a {item.category} record whose fields are not a mapping")
            root = category_root(item.category)
            if root not in categories:
                continue
            stage = stages.setdefault(root, _CategoryStage())
            if isinstance(item, FileItem):
                arcname = f"files/{connector.name}/{item.path.lstrip('/')}"
                spool.write(FILES, json.dumps({"path": arcname, "ref": item.ref, "bytes": item.size}) + "\n")
                file_count += 1
                file_bytes += item.size or 0
                fields = {"file": arcname, "bytes": item.size}
            else:
                fields = dict(item.fields)
            source = item.source.as_dict()
            line = {
                "connector": connector.name,
                "system": getattr(item, "system", connector.name),
                "source": source,
                "collected_at": _iso(item.collected_at),
                "fields": fields,
            }
            spool.write(root, json.dumps(line, ensure_ascii=False, default=str) + "\n")
            stage.records += 1
            stage.columns.update(name for name, _ in flatten(fields))
            stage.sources.setdefault((source["type"], source["name"], source["kind"]), source)
        inline = spool.finish(prefix)
    finally:
        spool.close()
    return {
        "prefix": prefix,
        "inline": inline,
        "counts": {c: s.records for c, s in stages.items()},
        "categories": {
            c: {"records": s.records, "columns": sorted(s.columns), "sources": list(s.sources.values())} for c, s in stages.items()
        },
        "files": file_count,
        "file_bytes": file_bytes,
    }


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
    """Where a task staged one stream: its inline lines, or its path in the work area."""
    inline = output.get("inline")
    return inline.get(stream, []) if inline is not None else f"{output['prefix']}/{stream}.jsonl"


def _lines(part: list[str] | str) -> Iterator[str]:
    """The lines of one staged stream, without their newline."""
    if isinstance(part, list):
        for line in part:
            yield line.rstrip("\n")
        return
    with default_storage.open(part, "rb") as handle:
        for raw in handle:
            yield raw.decode("utf-8").rstrip("\n")


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
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


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


def _buffered(pieces: Iterable[str], size: int = 256 * 1024) -> Iterator[bytes]:
    """Join small text pieces into chunks of about `size` bytes."""
    batch: list[str] = []
    length = 0
    for piece in pieces:
        batch.append(piece)
        length += len(piece)
        if length >= size:
            yield "".join(batch).encode("utf-8")
            batch, length = [], 0
    if batch:
        yield "".join(batch).encode("utf-8")


def _category_json(paths: list[str]) -> Iterator[str]:
    yield "["
    first = True
    for path in paths:
        for line in _lines(path):
            yield ("\n" if first else ",\n") + line
            first = False
    yield "\n]\n"


def _category_csv(paths: list[str], columns: list[str]) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIXED_CSV_COLUMNS + columns)
    for path in paths:
        for line in _lines(path):
            record = json.loads(line)
            source = record["source"]
            flat = dict(flatten(record["fields"]))
            writer.writerow(
                [record["connector"], record["system"], source["type"], source["name"], source["kind"], record["collected_at"]]
                + [flat.get(column, "") for column in columns]
            )
            if out.tell() > 64 * 1024:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
    yield out.getvalue()


def _file_chunks(connector_name: str, ref: str) -> Iterator[bytes]:
    with connector_get(connector_name).open_file(ref) as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _preview(paths: list[str], limit: int) -> list[dict]:
    records: list[dict] = []
    for path in paths:
        for line in _lines(path):
            if len(records) >= limit:
                return records
            record = json.loads(line)
            record["fields_flat"] = list(flatten(record["fields"]))
            records.append(record)
    return records


def archive_build(request: Request, tasks: list[ConnectorTask]) -> Archive:
    """Write the export zip for a request whose connector tasks all succeeded."""
    summary: dict[str, dict] = {
        c: {"label": category_info(c)["label"], "records": 0, "connectors": [], "sources": [], "columns": set(), "paths": []}
        for c in request.categories
    }
    file_lists: list[tuple[str, str]] = []
    for task in tasks:
        output = task.output or {}
        for category, staged in output.get("categories", {}).items():
            entry = summary[category]
            entry["records"] += staged["records"]
            entry["connectors"].append(task.connector)
            entry["sources"].extend(s for s in staged["sources"] if s not in entry["sources"])
            entry["columns"].update(staged["columns"])
            entry["paths"].append(_staged(output, category))
        if output.get("files"):
            file_lists.append((task.connector, _staged(output, FILES)))

    members = _Members()
    zs = ZipStream(compress_type=ZIP_DEFLATED, sized=False)
    for category, entry in summary.items():
        columns = sorted(entry["columns"])
        zs.add(members.hashed(f"data/{category}.json", _buffered(_category_json(entry["paths"]))), f"data/{category}.json")
        zs.add(members.hashed(f"data/{category}.csv", _buffered(_category_csv(entry["paths"], columns))), f"data/{category}.csv")
    for connector_name, list_path in file_lists:
        for line in _lines(list_path):
            item = json.loads(line)
            zs.add(
                members.hashed(item["path"], _file_chunks(connector_name, item["ref"])),
                item["path"],
                compress_type=ZIP_STORED,
            )
    generated_at = timezone.now()
    index_html = render_to_string(
        "exports/index.html",
        {
            "request": request,
            "generated_at": generated_at,
            "taxonomy": taxonomy(),
            "categories": [
                {
                    "id": category,
                    "info": category_info(category),
                    "records": entry["records"],
                    "sources": entry["sources"],
                    "preview": _preview(entry["paths"], INDEX_PREVIEW_RECORDS),
                }
                for category, entry in summary.items()
            ],
            "preview_limit": INDEX_PREVIEW_RECORDS,
        },
    ).encode("utf-8")
    zs.add(members.hashed("index.html", [index_html]), "index.html")

    def stream() -> Iterator[bytes]:
        yield from zs.all_files()
        manifest = {
            "format_version": 1,
            "request_id": str(request.id),
            "subject_email": request.email,
            "generated_at": generated_at.isoformat(),
            "categories": {
                category: {
                    "label": entry["label"],
                    "records": entry["records"],
                    "connectors": entry["connectors"],
                    "sources": entry["sources"],
                }
                for category, entry in summary.items()
            },
            "files": members.files,
        }
        zs.add(json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"), "manifest.json")
        yield from zs.finalize()

    digest, size = hashlib.sha256(), 0

    def counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
        nonlocal size
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            yield chunk

    path = f"exports/{request.id}/{uuid.uuid4().hex}.zip"
    saved = None
    try:
        saved = default_storage.save(path, File(_IterReader(counted(stream())), name="export.zip"))
    except BaseException:
        storage_delete(saved or path)
        raise
    return Archive(
        path=saved,
        bytes=size,
        sha256=digest.hexdigest(),
        categories={category: entry["records"] for category, entry in summary.items()},
    )


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
