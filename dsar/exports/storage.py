"""Where exports and the work area live (Django's default storage, a local disk or an object
store), and how bytes move there: in chunks, counted and hashed, into zip members."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from connectors.base import Connector
from connectors.content import storage_is_local

CHUNK = 1024 * 1024
ZIP64_FROM = 1 << 30  # a member that may pass this size is written with Zip64 sizes from the start


def on_local_disk() -> bool:
    """Whether the export storage is a local disk (files can be renamed and appended to)."""
    return storage_is_local(default_storage)


def local_tmp() -> Path:
    """A directory for this host's temporary files, on the data volume rather than in /tmp."""
    path = settings.DATA_DIR / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


class FinishedFile(File):
    """A finished local temporary file: FileSystemStorage moves it into place instead of copying
    (Django moves any file that has a `temporary_file_path`), other storages upload it."""

    def temporary_file_path(self) -> str:
        """The file's local path."""
        return self.file.name


def storage_save(path: str, local: Path) -> str:
    """Put a finished local file at `path` in the storage, replacing what is there; its name there."""
    storage_delete(path)
    with local.open("rb") as handle:
        return default_storage.save(path, FinishedFile(handle, name=local.name))


def storage_save_bytes(path: str, data: bytes) -> str:
    """Put `data` at `path` in the storage, replacing what is there; its name there."""
    storage_delete(path)
    return default_storage.save(path, ContentFile(data))


def storage_delete(path: str) -> None:
    """Delete one file from the storage; one already gone is fine."""
    with contextlib.suppress(FileNotFoundError):
        default_storage.delete(path)


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
    if on_local_disk():
        with contextlib.suppress(OSError):
            os.rmdir(default_storage.path(prefix))


def member_info(name: str, *, compressed: bool) -> zipfile.ZipInfo:
    """A new archive member, dated now."""
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    return info


def file_chunks(connector: Connector, ref: str) -> Iterator[bytes]:
    """The bytes of one of a connector's files, read as they are needed."""
    with connector.open_file(ref) as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


class Tally:
    """The size and SHA-256 of bytes as they pass."""

    def __init__(self) -> None:
        self.bytes = 0
        self.digest = hashlib.sha256()

    def through(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The same chunks, counted and hashed."""
        for chunk in chunks:
            self.digest.update(chunk)
            self.bytes += len(chunk)
            yield chunk

    def hexdigest(self) -> str:
        """The SHA-256 so far, in hex."""
        return self.digest.hexdigest()
