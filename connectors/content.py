"""The content store: files a person stores (documents, photos, voice, video, ink and typing samples).

The store is reached only through Django's storage API, so a local directory and S3 (django-storages)
are both configuration: the connector's `backend` option names the Storage class and
`storage_options` are its keyword arguments. Each subject's files live under an opaque key,
`subjects/<sha256 of the normalised email>/<category>/<the path the person gave>`, so no email ever
appears in an object name. Listing walks one directory at a time and yields as it goes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, Storage
from django.utils.module_loading import import_string

from .base import PROVIDED, Connector, ErasureReceipt, FileItem, Identity, PermanentError, Period, TransientError

ROOT = "subjects"
CATEGORIES = frozenset({"content", "images", "voice", "video_recordings", "text_inking_typing"})
DEFAULT_BACKEND = "django.core.files.storage.FileSystemStorage"
READ_CHUNK = 1024 * 1024
# S3Storage copies an object into a SpooledTemporaryFile before the first read; its default limit
# (0) never spills to disk, which would hold a 1 GiB video in memory while it is exported.
S3_SPOOL_BYTES = 16 * 1024 * 1024

# Error codes an S3-compatible store answers when it is busy rather than refusing.
_BUSY_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
    }
)


def subject_prefix(email: str) -> str:
    """The key under which one subject's files live: `subjects/<sha256 hex of the normalised email>`."""
    return f"{ROOT}/{hashlib.sha256(email.strip().lower().encode()).hexdigest()}"


def content_category_known(category: str) -> bool:
    """Whether the content store keeps this category (one of CATEGORIES, or a dotted child of one)."""
    return category.split(".", 1)[0] in CATEGORIES


def content_key(email: str, category: str, path: str) -> str:
    """The storage key of one of the subject's files. ValueError for a category this store does not
    keep, or a path that is empty or climbs out of its directory."""
    if not content_category_known(category):
        raise ValueError(f"{category!r} is not a category of the content store")
    parts = [part for part in path.replace("\\", "/").split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise ValueError(f"{path!r} is not a usable file path")
    return f"{subject_prefix(email)}/{category}/{'/'.join(parts)}"


def content_storage_from_options(backend: str | None = None, storage_options: dict[str, Any] | None = None) -> Storage:
    """The Storage the connector and the demo-estate loader both use, built from the connector's options.

    FileSystemStorage without a `location` (or with an empty one) uses `<DATA_DIR>/estate/content`.
    """
    storage_class = import_string(backend or DEFAULT_BACKEND)
    options = dict(storage_options or {})
    if issubclass(storage_class, FileSystemStorage) and not options.get("location"):
        from django.conf import settings

        options["location"] = str(settings.DATA_DIR / "estate" / "content")
    storage = storage_class(**options)
    if "max_memory_size" not in options and getattr(storage, "max_memory_size", None) == 0:
        storage.max_memory_size = S3_SPOOL_BYTES
    return storage


def _wanted(category: str, categories: frozenset[str] | None) -> bool:
    return categories is None or category in categories or category.split(".", 1)[0] in categories


def _walk(storage: Storage, top: str) -> Iterator[str]:
    """Keys of every file under `top`, listing one directory at a time (depth first, sorted)."""
    pending = [top]
    while pending:
        directory = pending.pop()
        try:
            directories, files = storage.listdir(directory)
        except FileNotFoundError:  # a local directory that was never written or is already gone
            continue
        for name in sorted(files):
            yield f"{directory}/{name}"
        pending.extend(f"{directory}/{name}" for name in sorted(directories, reverse=True))


def subject_files(storage: Storage, email: str, categories: frozenset[str] | None = None) -> Iterator[tuple[str, str, str]]:
    """(key, category, path) of each of the subject's files, in `categories` (None: all), as a stream."""
    prefix = subject_prefix(email)
    try:
        category_dirs, _ = storage.listdir(prefix)
    except FileNotFoundError:
        return
    for category in sorted(category_dirs):
        if not content_category_known(category) or not _wanted(category, categories):
            continue
        top = f"{prefix}/{category}"
        for key in _walk(storage, top):
            yield key, category, key[len(top) + 1 :]


def storage_is_local(storage: Storage) -> bool:
    """Whether a storage is a local disk (real directories, files that can be renamed) rather than
    an object store whose directories are implied by key names."""
    try:
        storage.path("")
    except NotImplementedError:
        return False
    return True


def _prune(storage: Storage, directory: str) -> None:
    """Remove the empty directories under `directory`, and it too if it ends up empty: an erased
    subject leaves no trace, and files still kept keep their directories."""
    try:
        directories, files = storage.listdir(directory)
    except FileNotFoundError:
        return
    for name in directories:
        _prune(storage, f"{directory}/{name}")
    if not files and not storage.listdir(directory)[0]:
        storage.delete(directory)


def subject_files_delete(storage: Storage, email: str, categories: frozenset[str] | None = None) -> dict[str, int]:
    """Make sure the subject has no files in `categories` (None: all); returns the files deleted per
    category. Safe to repeat: a second run deletes nothing and returns {}."""
    deleted: dict[str, int] = {}
    for key, category, _ in subject_files(storage, email, categories):
        storage.delete(key)
        deleted[category] = deleted.get(category, 0) + 1
    if storage_is_local(storage):
        _prune(storage, subject_prefix(email))
    return deleted


@contextlib.contextmanager
def _storage_faults(system: str) -> Iterator[None]:
    """Storage and S3 faults as connector errors: busy or unreachable is transient, refused is permanent."""
    try:
        yield
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError) as error:
        raise TransientError(f"{system}: the store is unreachable: {error}") from error
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in _BUSY_CODES or status == 429 or status >= 500:
            raise TransientError(f"{system}: the store is busy: {code or status}") from error
        raise PermanentError(f"{system}: the store refused the request: {code or status}: {error}") from error
    except NoCredentialsError as error:
        raise PermanentError(f"{system}: no credentials for the store") from error
    except PermissionError as error:
        raise PermanentError(f"{system}: access denied: {error}") from error
    except FileNotFoundError as error:
        raise PermanentError(f"{system}: no such file: {error}") from error
    except OSError as error:
        raise TransientError(f"{system}: the disk failed: {error}") from error


class _StoredFile(io.RawIOBase):
    """A stored file opened for reading, whose read faults surface as connector errors.

    Backends may fetch lazily (S3Storage downloads on the first read), so a fault can come after open.
    """

    def __init__(self, handle: BinaryIO, system: str) -> None:
        super().__init__()
        self._handle = handle
        self._system = system

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with _storage_faults(self._system):
            return self._handle.readinto(buffer)  # straight into the reader's buffer: a gibibyte is not copied twice

    def close(self) -> None:
        if not self.closed:
            self._handle.close()
        super().close()


class ContentStorageConnector(Connector):
    """Reads and erases the files a subject stored, in any store Django's storage API reaches."""

    name = "content"
    categories = CATEGORIES

    def __init__(
        self,
        *,
        name: str | None = None,
        backend: str | None = None,
        storage_options: dict[str, Any] | None = None,
        others: Iterable[str] = (),
        **options: Any,
    ) -> None:
        super().__init__(name=name, **options)
        self._backend = backend
        self._storage_options = dict(storage_options or {})
        self._storage: Storage | None = None
        self.others = frozenset(others)  # the categories whose files may show or let be heard other people

    @property
    def storage(self) -> Storage:
        """The configured store, built on first use."""
        if self._storage is None:
            try:
                self._storage = content_storage_from_options(self._backend, self._storage_options)
            except (ImportError, ImproperlyConfigured, TypeError) as error:
                raise PermanentError(f"{self.name}: the store is misconfigured: {error}") from error
        return self._storage

    def close(self) -> None:
        """Drop the store; S3Storage's clients (one per thread) go with it."""
        self._storage = None

    def gather(self, identity: Identity) -> Iterator[FileItem]:
        """Yield one FileItem per stored file of the subject; `ref` is its storage key, and it was
        collected when it was last written to the store. A file of a category in `others` (or a
        dotted child of one) is flagged as maybe other people's data."""
        with _storage_faults(self.name):
            for key, category, path in subject_files(self.storage, identity.email):
                try:
                    size, stored_at = self.storage.size(key), self.storage.get_modified_time(key)
                except FileNotFoundError:  # erased since it was listed
                    continue
                yield FileItem(category=category, path=path, ref=key, size=size, source=PROVIDED, collected_at=stored_at,
                               others=category in self.others or category.split(".", 1)[0] in self.others)

    def gather_period(self, identity: Identity, period: Period) -> Iterator[FileItem]:
        """What `gather` yields, of only the files stored within `period`: every file has that date."""
        return (item for item in self.gather(identity) if period.holds(item.collected_at))

    def period_undated(self, categories: frozenset[str]) -> list[str]:
        """None: every stored file is dated by when it was stored."""
        return []

    def open_file(self, ref: str) -> BinaryIO:
        """Open a file `gather` yielded; refs outside the subjects' area are refused."""
        parts = ref.split("/")
        if parts[0] != ROOT or len(parts) < 4 or "\\" in ref or any(part in ("", ".", "..") for part in parts):
            raise PermanentError(f"{self.name}: {ref!r} is not a subject's file")
        with _storage_faults(self.name):
            return io.BufferedReader(_StoredFile(self.storage.open(ref, "rb"), self.name), READ_CHUNK)

    def erase(self, identity: Identity, categories: frozenset[str] | None = None) -> ErasureReceipt:
        """Delete the subject's files in `categories` (None: all) and say how many per category."""
        receipt = ErasureReceipt()
        with _storage_faults(self.name):
            deleted = subject_files_delete(self.storage, identity.email, categories)
        for category, count in deleted.items():
            receipt.add_erased(category, count)
        return receipt
