"""Write one subject's stored files into the demo estate's content store (contract §7, `content.files`).

A file is given either whole (`base64`) or by size (`size_bytes`): then its bytes are generated,
deterministically from its path, one chunk at a time, so a 1 GiB load-test file never sits in memory.
A file may say when it was stored (`at`): the store then dates it so, as the connector reads it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import posixpath
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.files.base import ContentFile, File
from django.core.files.storage import Storage

from connectors.content import content_key, storage_is_local, subject_files_delete

CHUNK = 1024 * 1024


def content_bytes(path: str, size: int) -> Iterator[bytes]:
    """`size` bytes for a generated file: a 1 MiB pattern seeded from its path, repeated, in chunks.

    SHAKE's shorter outputs are prefixes of its longer ones, so a small file asks for its own size
    only (the same bytes): a 1 MiB digest for a 2 KiB file was a quarter of generating an estate.
    """
    pattern = hashlib.shake_256(f"dsar-estate-content:{path}".encode()).digest(min(size, CHUNK))
    whole, rest = divmod(size, CHUNK)
    for _ in range(whole):
        yield pattern
    if rest:
        yield pattern[:rest]


class _ChunkStream(io.RawIOBase):
    """A read-only, unseekable stream over an iterator of byte chunks.

    Each read is filled completely until the end: an S3 upload takes a short first read for a small
    file and sends the rest in one request, read whole into memory, and sizes its parts by one read.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if not self._pending:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._pending = memoryview(chunk)
            taken = min(len(view) - filled, len(self._pending))
            view[filled : filled + taken] = self._pending[:taken]
            self._pending = self._pending[taken:]
            filled += taken
        return filled


def content_load(*, storage: Storage, subject_email: str, files: list[dict[str, Any]]) -> int:
    """Replace the subject's stored files with `files` (each `path`, `category`, `base64` or
    `size_bytes`, and optionally `at`, a time); returns the bytes written. ValueError, before
    anything is changed, for a category the store does not keep, an unusable path, two files at the
    same place, or a time for a store that cannot be given one (an object store dates a file by its
    upload)."""
    keys = [content_key(subject_email, spec["category"], spec["path"]) for spec in files]
    if any(spec.get("at") for spec in files) and not storage_is_local(storage):
        raise ValueError("a file's `at` needs a store on a local disk: an object store dates a file when it is uploaded")
    seen: set[str] = set()
    for spec, key in zip(files, keys, strict=True):
        if key in seen:
            raise ValueError(f"{spec['path']!r} ({spec['category']}) is given twice")
        seen.add(key)
    subject_files_delete(storage, subject_email)
    written = 0
    for spec, key in zip(files, keys, strict=True):
        if spec.get("base64") is not None:
            data = base64.b64decode(spec["base64"], validate=True)
            saved = storage.save(key, ContentFile(data))
            written += len(data)
        else:
            saved = storage.save(key, File(_ChunkStream(content_bytes(spec["path"], spec["size_bytes"])), name=posixpath.basename(key)))
            written += spec["size_bytes"]
        if spec.get("at"):
            stamp = spec["at"].timestamp()
            os.utime(storage.path(saved), (stamp, stamp))
    return written
