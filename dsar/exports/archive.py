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

A request that chose a part size gets its archive as several complete zips (`archive_parts_plan`):
the members, in the same order, fill part after part up to that size by their known sizes (a file
larger than it has a part of its own), and the first part also holds index.html and manifest.json,
which say which part holds what; it is finished last, when every other member's digest is known.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
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
class Written:
    """A finished zip: its path in the storage, its size and its SHA-256."""

    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Archive:
    """A finished export archive in the storage (its first zip, and the `parts` after it when it
    comes in parts), the records it holds per category, how many of its records and files may be
    other people's data (staff review those before release), and what of them is past the retention
    its category promises (None: nothing; retention.py)."""

    path: str
    bytes: int
    sha256: str
    categories: dict[str, int]
    others: int = 0
    retention_finding: list[dict] | None = None
    parts: tuple[Written, ...] = ()

    @property
    def total_bytes(self) -> int:
        """The size of all its zips together."""
        return self.bytes + sum(part.bytes for part in self.parts)

    @property
    def paths(self) -> list[str]:
        """Every zip's path in the storage."""
        return [self.path, *(part.path for part in self.parts)]


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
class ManifestPart:
    """One zip of an archive in parts, and the members it holds (the first: with this manifest)."""

    part: int
    members: list[str]


@dataclass(frozen=True)
class Manifest:
    """manifest.json (CONTRACT.md §6), and what the report says beside the records (GDPR Art. 15):
    each category's recipients and automated decisions, the authority, the person's rights; the
    period the person asked their data from, and the parts the archive comes in, when they did."""

    format_version: int
    request_id: str
    subject_email: str
    generated_at: str
    categories: dict[str, ManifestCategory]
    files: list[MemberDigest]
    supervisory_authority: dict[str, str]
    rights: list[Right]
    date_range: dict | None = None
    parts: list[ManifestPart] | None = None

    def as_bytes(self) -> bytes:
        """The manifest as json.dumps(indent=2, ensure_ascii=False) writes it (orjson writes dataclasses
        as objects of their fields, in order); `date_range` and `parts` only when there are some."""
        keys = {key: getattr(self, key) for key in self.__dataclass_fields__}
        return orjson.dumps({key: value for key, value in keys.items() if value is not None or key not in ("date_range", "parts")},
                            option=orjson.OPT_INDENT_2)


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
    """Write an access request's export archive from each connector's staged work, in parts when the
    request chose a part size; `withheld` says what a review left out or redacted, for the report."""
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
    date_range = archive_date_range(request, staged)

    def manifest(files: list[MemberDigest], parts: list[ManifestPart] | None) -> bytes:
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
            date_range=date_range,
            parts=parts,
        ).as_bytes()

    local = on_local_disk()
    # The tasks' zips of files still there (a run of this step that died may have taken one).
    zips = {connector: output.files_zip for connector, output in staged.items()
            if local and output.files_zip and default_storage.exists(output.files_zip)}
    # The largest becomes the archive's start (on a local disk, for an archive in one zip), its files already in place.
    based_on = None if request.part_size else max(zips, key=lambda connector: default_storage.size(zips[connector]), default=None)
    stamp = uuid.uuid4().hex
    with contextlib.ExitStack() as opened:

        def members() -> Iterator[Member]:
            """Every member but index.html, in order; each one's bytes read only when they are written."""
            for connector, output in staged.items():
                if connector == based_on:
                    continue  # its files are in the archive already
                zipped = opened.enter_context(zipfile.ZipFile(default_storage.open(zips[connector], "rb"))) if connector in zips else None
                for file in output.staged_files():
                    chunks = _zipped_chunks(zipped, file.path) if zipped is not None else file_chunks(connector_get(connector), file.ref)
                    yield Member(file.path, chunks, compressed=False, size=file.bytes)
            for category in categories.values():
                # The JSON's staged size; the CSV is smaller, so it decides for both.
                size = sum(output.size(json_stream(category.id)) for output in category.staged)
                compressed = size >= DEFLATE_FROM
                yield Member(f"data/{category.id}.json", _category_json(category), compressed=compressed, size=size)
                yield Member(f"data/{category.id}.csv", _category_csv(category), compressed=compressed, size=size)

        plan = archive_parts_plan([(m.name, m.size) for m in members()], request.part_size) if request.part_size else None
        parts = _manifest_parts(plan) if plan and plan[-1][1] > 1 else None
        report = report_render(request=request, generated_at=generated_at, categories=shown, withheld=withheld, date_range=date_range,
                               parts=_parts_held(parts) if parts else None)
        if local:
            base, in_base = (zips[based_on], staged[based_on].staged_files()) if based_on else (None, [])
            writer: ArchiveWriter = opened.enter_context(LocalArchive(f"exports/{request.id}/{stamp}.zip", base=base, in_base=in_base))
        else:
            writer = opened.enter_context(StreamedArchive(f"exports/{request.id}/{stamp}.zip"))
        further = _FurtherParts(f"exports/{request.id}/{stamp}", local=local, opened=opened)
        for member, number in zip(members(), (number for _, number in plan) if plan else itertools.repeat(1), strict=False):
            if number == 1:
                writer.add(member)
            else:
                further.add(number, member)
        further.finish()
        writer.add(Member("index.html", [report], compressed=True, size=len(report)))
        written = writer.finish(lambda own: manifest(own + further.digests, parts))
    return Archive(path=written.path, bytes=written.bytes, sha256=written.sha256, categories={c.id: c.records for c in categories.values()},
                   others=sum(output.others for output in staged.values()), retention_finding=finding, parts=tuple(further.written))


def archive_parts_plan(members: Iterable[tuple[str, int | None]], part_size: int) -> list[tuple[str, int]]:
    """Which part (1, 2, …) holds each member, members named with their size (None: unknown, counted
    as nothing), in order: each part takes the next members while they fit in `part_size`, and a
    member larger than that has a part of its own. Part 1 holds index.html and manifest.json too,
    beyond the size."""
    plan, number, used = [], 1, 0
    for name, size in members:
        size = (size or 0) + MEMBER_OVERHEAD + 2 * len(name.encode("utf-8"))
        if used and used + size > part_size:
            number, used = number + 1, 0
        plan.append((name, number))
        used += size
    return plan


# A member's bytes in a zip beside its own: its local header, its Zip64 extra field and its entry in
# the central directory, besides its name twice.
MEMBER_OVERHEAD = 128


def archive_date_range(request: Request, staged: Mapping[str, Staged]) -> dict | None:
    """The period the request asked its data from, as the manifest keeps it, with the systems that
    could not limit some of what they hold to it (their tables or lists with no date, as
    `Connector.period_undated` names them); None when it asked for all of it."""
    if request.date_from is None and request.date_to is None:
        return None
    asked = frozenset(request.categories)
    not_applied = [{"system": connector, "where": where} for connector in sorted(staged)
                   if (where := connector_get(connector).period_undated(asked))]
    return {"from": request.date_from and request.date_from.isoformat(), "to": request.date_to and request.date_to.isoformat(),
            "time_zone": request.time_zone, "not_applied": not_applied}


def _manifest_parts(plan: list[tuple[str, int]]) -> list[ManifestPart]:
    parts = [ManifestPart(number, []) for number in range(1, plan[-1][1] + 1)]
    for name, number in plan:
        parts[number - 1].members.append(name)
    parts[0].members.extend(["index.html", "manifest.json"])
    return parts


def _parts_held(parts: list[ManifestPart]) -> list[dict]:
    """What each part holds, as the report says it: how many files, and the data of which categories
    (by id: the report names them in its own language)."""
    said = []
    for part in parts:
        data = [name.removeprefix("data/").removesuffix(".json") for name in part.members if name.startswith("data/") and name.endswith(".json")]
        said.append({"number": part.part, "files": sum(name.startswith("files/") for name in part.members),
                     "categories": data})
    return said


class _FurtherParts:
    """The zips after the first of an archive in parts, written one after the other as their members
    come; each writer entered into `opened`, so that all of them are removed if the archive fails."""

    def __init__(self, prefix: str, *, local: bool, opened: contextlib.ExitStack) -> None:
        self.prefix, self.local, self.opened = prefix, local, opened
        self.number, self.writer = 1, None
        self.written: list[Written] = []
        self.digests: list[MemberDigest] = []

    def add(self, number: int, member: Member) -> None:
        """Put a member into part `number`, the part being written or the next."""
        if number != self.number:
            self.finish()
            path = f"{self.prefix}-part-{number}.zip"
            self.writer = self.opened.enter_context(LocalArchive(path, base=None, in_base=()) if self.local else StreamedArchive(path))
            self.number = number
        self.writer.add(member)

    def finish(self) -> None:
        """Finish the part being written, if any."""
        if self.writer is not None:
            self.written.append(self.writer.finish(None))
            self.digests.extend(self.writer.digests)
            self.writer = None


# --- The two writers ------------------------------------------------------------------------------------


class ArchiveWriter(Protocol):
    """Writes members into an archive at a storage path, tracking each one's size and SHA-256 in
    `digests`. As a context manager, it removes what it wrote when the block fails."""

    digests: list[MemberDigest]

    def __enter__(self) -> ArchiveWriter: ...

    def __exit__(self, kind, error, traceback) -> None: ...

    def add(self, member: Member) -> None:
        """Put one member into the archive (now, or in order when the archive is finished)."""

    def finish(self, manifest: Callable[[list[MemberDigest]], bytes] | None) -> Written:
        """Add manifest.json, made from every member's digest (unless None: a part after the
        first), and close the archive."""


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

    def finish(self, manifest: Callable[[list[MemberDigest]], bytes] | None) -> Written:
        if manifest is not None:
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

    def finish(self, manifest: Callable[[list[MemberDigest]], bytes] | None) -> Written:
        def archive() -> Iterator[bytes]:
            yield from self.stream.all_files()
            if manifest is not None:
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
