"""The export archive (CONTRACT.md §6), built by the final step from what the tasks staged.

Members, in order: the content files (files/<connector>/...), each category's data/<id>.json and
data/<id>.csv, index.html, and last manifest.json with every other member's size and SHA-256.

One writer per kind of storage, behind the same two calls (`add`, then `finish`):

- on a local disk, `LocalArchive`: zipfile writing into the file in place. When a task copied its
  files into a zip of its own (staging.py), the largest such zip is moved into place and the rest is
  appended to it, so big files are never copied again in this step;
- on an object store (S3), where nothing can be appended to, `StreamedArchive`: zipstream-ng
  streaming the whole archive through Django's storage API, the files read from their connectors.

Either way every member streams through in chunks: memory stays constant at any size, and a member
that may pass 1 GiB is written with Zip64 sizes from the start.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import orjson
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.utils import timezone
from zipstream import ZIP_DEFLATED, ZIP_STORED, ZipStream

from connectors.base import Source
from connectors.registry import connector_get

from ..models import ConnectorTask, Request
from .report import ReportRecipient, ReportWithheld, Right, report_category, report_render, report_rights
from .retention import retention_finding
from .staging import CSV_FIXED_COLUMNS, CSV_FLUSH, Staged, StagedFile, csv_cell, csv_stream, json_stream
from .storage import CHUNK, ZIP64_FROM, Tally, file_chunks, member_info, on_local_disk, storage_delete

# A data member smaller than this is stored, not deflated: setting up a compressor costs several
# times what storing such a member does, to save a few KiB of download (a typical subject has fifty).
DEFLATE_FROM = 16 * 1024
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Archive:
    """A finished export archive in the storage, the records it holds per category, how many of its
    records and files may be other people's data (staff review those before release), and what of
    them is past the retention its category promises (None: nothing; retention.py)."""

    path: str
    bytes: int
    sha256: str
    categories: dict[str, int]
    others: int = 0
    retention_finding: list[dict] | None = None


@dataclass(frozen=True)
class Member:
    """One member on its way into the archive. `size`, when known ahead, decides Zip64."""

    name: str
    chunks: Iterable[bytes]
    compressed: bool
    size: int | None = None


@dataclass(frozen=True)
class MemberDigest:
    """A member as the manifest lists it."""

    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ManifestCategory:
    label: str
    records: int
    connectors: list[str]
    sources: list[Source]
    recipients: list[ReportRecipient]
    automated_decisions: dict | None


@dataclass(frozen=True)
class Manifest:
    """manifest.json (CONTRACT.md §6), and what the report says beside the records (GDPR Art. 15):
    each category's recipients and automated decisions, the authority, the person's rights."""

    format_version: int
    request_id: str
    subject_email: str
    generated_at: str
    categories: dict[str, ManifestCategory]
    files: list[MemberDigest]
    supervisory_authority: dict[str, str]
    rights: list[Right]

    def as_bytes(self) -> bytes:
        """The manifest as json.dumps(indent=2, ensure_ascii=False) writes it (orjson writes dataclasses
        as objects of their fields, in order)."""
        return orjson.dumps(self, option=orjson.OPT_INDENT_2)


@dataclass
class ExportCategory:
    """One requested category across the connectors' staged output."""

    id: str
    records: int = 0
    connectors: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    staged: list[Staged] = field(default_factory=list)  # each connector's output holding some of it

    def lines(self) -> Iterator[str]:
        """The category's staged JSON lines, connector after connector."""
        for output in self.staged:
            yield from output.lines(json_stream(self.id))


def archive_build(request: Request, tasks: list[ConnectorTask]) -> Archive:
    """Write the export archive of an access request whose connector tasks all succeeded."""
    return archive_write(request, {task.connector: Staged.from_json(task.output) for task in tasks if task.output})


def archive_write(request: Request, staged: dict[str, Staged], *, withheld: Iterable[ReportWithheld] = ()) -> Archive:
    """Write an access request's export archive from each connector's staged work; `withheld` says
    what a review left out or redacted, for the report."""
    categories = {category: ExportCategory(category) for category in request.categories}
    for connector, output in staged.items():
        for category, part in output.categories.items():
            entry = categories[category]
            entry.records += part.records
            entry.connectors.append(connector)
            entry.sources.extend(source for source in part.sources if source not in entry.sources)
            entry.staged.append(output)
    generated_at = timezone.now()
    finding = retention_finding(output.retention for output in staged.values())
    past_promise = {entry["category"] for entry in finding or []}
    shown = [report_category(c.id, records=c.records, sources=c.sources, lines=c.lines(), connectors=c.connectors,
                             past_promise=c.id in past_promise)
             for c in categories.values()]
    report = report_render(request=request, generated_at=generated_at, categories=shown, withheld=withheld)

    def manifest(files: list[MemberDigest]) -> bytes:
        return Manifest(
            format_version=FORMAT_VERSION,
            request_id=str(request.id),
            subject_email=request.email,
            generated_at=generated_at.isoformat(),
            categories={c.id: ManifestCategory(c.info["label"], c.records, categories[c.id].connectors, c.sources, c.recipients,
                                               c.info.get("automated_decisions")) for c in shown},
            files=files,
            supervisory_authority=settings.DSAR_SUPERVISORY_AUTHORITY,
            rights=report_rights(),
        ).as_bytes()

    local = on_local_disk()
    # The tasks' zips of files still there (a run of this step that died may have taken one).
    zips = {connector: output.files_zip for connector, output in staged.items()
            if local and output.files_zip and default_storage.exists(output.files_zip)}
    # The largest becomes the archive's start (on a local disk), its files already in place.
    based_on = max(zips, key=lambda connector: default_storage.size(zips[connector]), default=None)
    path = f"exports/{request.id}/{uuid.uuid4().hex}.zip"
    with contextlib.ExitStack() as opened:
        if local:
            base, in_base = (zips[based_on], staged[based_on].staged_files()) if based_on else (None, [])
            writer: ArchiveWriter = opened.enter_context(LocalArchive(path, base=base, in_base=in_base))
        else:
            writer = opened.enter_context(StreamedArchive(path))
        for connector, output in staged.items():
            if connector == based_on:
                continue  # its files are in the archive already
            zipped = opened.enter_context(zipfile.ZipFile(default_storage.open(zips[connector], "rb"))) if connector in zips else None
            for file in output.staged_files():
                chunks = _zipped_chunks(zipped, file.path) if zipped is not None else file_chunks(connector_get(connector), file.ref)
                writer.add(Member(file.path, chunks, compressed=False, size=file.bytes))
        for category in categories.values():
            # The JSON's staged size; the CSV is smaller, so it decides for both.
            size = sum(output.size(json_stream(category.id)) for output in category.staged)
            compressed = size >= DEFLATE_FROM
            writer.add(Member(f"data/{category.id}.json", _category_json(category), compressed=compressed, size=size))
            writer.add(Member(f"data/{category.id}.csv", _category_csv(category), compressed=compressed, size=size))
        writer.add(Member("index.html", [report], compressed=True, size=len(report)))
        written = writer.finish(manifest)
    return Archive(path=written.path, bytes=written.bytes, sha256=written.sha256, categories={c.id: c.records for c in categories.values()},
                   others=sum(output.others for output in staged.values()), retention_finding=finding)


# --- The two writers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """A finished archive: its path in the storage, its size and its SHA-256."""

    path: str
    bytes: int
    sha256: str


class ArchiveWriter(Protocol):
    """Writes members into an archive at a storage path, tracking each one's size and SHA-256. As a
    context manager, it removes what it wrote when the block fails."""

    def __enter__(self) -> ArchiveWriter: ...

    def __exit__(self, kind, error, traceback) -> None: ...

    def add(self, member: Member) -> None:
        """Put one member into the archive (now, or in order when the archive is finished)."""

    def finish(self, manifest: Callable[[list[MemberDigest]], bytes]) -> Written:
        """Add manifest.json, made from every member's digest, and close the archive."""


class LocalArchive:
    """An archive on a local disk, written in place by zipfile; started from `base`, a task's zip
    of files (moved, not copied), whose members are `in_base`."""

    def __init__(self, path: str, *, base: str | None, in_base: Iterable[StagedFile]) -> None:
        self.path = path
        self.local = Path(default_storage.path(path))
        self.local.parent.mkdir(parents=True, exist_ok=True)
        self.digests = [MemberDigest(file.path, file.bytes, file.sha256) for file in in_base]
        if base is not None:
            shutil.move(default_storage.path(base), self.local)  # a rename, on one disk
        self.zip = zipfile.ZipFile(self.local, "a" if base is not None else "w", allowZip64=True)

    def __enter__(self) -> LocalArchive:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is not None:
            self.zip.close()
            self.local.unlink(missing_ok=True)

    def add(self, member: Member) -> None:
        tally = Tally()
        force_zip64 = member.size is None or member.size > ZIP64_FROM
        with self.zip.open(member_info(member.name, compressed=member.compressed), "w", force_zip64=force_zip64) as target:
            for chunk in tally.through(member.chunks):
                target.write(chunk)
        self.digests.append(MemberDigest(member.name, tally.bytes, tally.hexdigest()))

    def finish(self, manifest: Callable[[list[MemberDigest]], bytes]) -> Written:
        self.zip.writestr(member_info("manifest.json", compressed=True), manifest(self.digests))
        self.zip.close()
        tally = Tally()
        with self.local.open("rb") as handle:
            for _ in tally.through(iter(lambda: handle.read(CHUNK), b"")):
                pass
        return Written(self.path, tally.bytes, tally.hexdigest())


class StreamedArchive:
    """An archive streamed through the storage API by zipstream-ng: members are queued by `add`
    and read while the storage takes the stream."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stream = ZipStream(compress_type=ZIP_DEFLATED)
        self.digests: list[MemberDigest] = []

    def __enter__(self) -> StreamedArchive:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is not None:
            storage_delete(self.path)

    def add(self, member: Member) -> None:
        self.stream.add(self._digested(member), member.name, compress_type=ZIP_DEFLATED if member.compressed else ZIP_STORED)

    def _digested(self, member: Member) -> Iterator[bytes]:
        tally = Tally()
        yield from tally.through(member.chunks)
        self.digests.append(MemberDigest(member.name, tally.bytes, tally.hexdigest()))

    def finish(self, manifest: Callable[[list[MemberDigest]], bytes]) -> Written:
        def archive() -> Iterator[bytes]:
            yield from self.stream.all_files()
            self.stream.add(manifest(self.digests), "manifest.json")
            yield from self.stream.finalize()

        tally = Tally()
        saved = default_storage.save(self.path, File(io.BufferedReader(_IterReader(tally.through(archive())), CHUNK), name="export.zip"))
        return Written(saved, tally.bytes, tally.hexdigest())


class _IterReader(io.RawIOBase):
    """A read-only file over an iterator of bytes, so the storage can read a stream as a file."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self.buffer:
            try:
                self.buffer = memoryview(next(self.chunks))
            except StopIteration:
                return 0
        size = min(len(target), len(self.buffer))
        target[:size] = self.buffer[:size]
        self.buffer = self.buffer[size:]  # a view: the rest of a large chunk is not copied again
        return size


# --- The members' bytes ---------------------------------------------------------------------------------


def _zipped_chunks(archive: zipfile.ZipFile, name: str) -> Iterator[bytes]:
    with archive.open(name) as member:
        while chunk := member.read(CHUNK):
            yield chunk


def _category_json(category: ExportCategory) -> Iterator[bytes]:
    """data/<id>.json: a JSON array of the staged lines, ',' put before each newline but the last."""
    yield b"[\n"
    pending = b""
    for output in category.staged:
        for block in output.blocks(json_stream(category.id)):
            if pending:
                yield pending
            pending = block.replace(b"\n", b",\n")
    yield (pending[:-2] + b"\n" if pending else b"") + b"]\n"


def _category_csv(category: ExportCategory) -> Iterator[bytes]:
    """data/<id>.csv: the header, then each connector's staged rows. Rows that already have the
    category's columns in its order are copied as they are; others are re-laid cell by cell, each
    cell as staged (a formula's leading quote is there already: it is not added twice)."""
    parts = [(output, output.categories[category.id]) for output in category.staged]
    columns = list(dict.fromkeys(name for _, part in parts for name in part.columns))
    header = io.StringIO()
    csv.writer(header).writerow(map(csv_cell, CSV_FIXED_COLUMNS + columns))
    yield header.getvalue().encode("utf-8")
    for output, part in parts:
        blocks = output.blocks(csv_stream(category.id))
        if part.rectangular and part.columns == columns:
            yield from blocks
            continue
        fixed = len(CSV_FIXED_COLUMNS)
        where = [columns.index(name) for name in part.columns]
        out = io.StringIO()
        writer = csv.writer(out)
        text = io.TextIOWrapper(io.BufferedReader(_IterReader(blocks)), encoding="utf-8", newline="")
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
