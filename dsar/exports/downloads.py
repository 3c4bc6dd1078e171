"""Downloads: signed links that work for one request until its export expires, and the archive
re-packed with a passphrase on the way out."""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from ..models import Export
from .storage import CHUNK

DOWNLOAD_SALT = "dsar.download"


@dataclass(frozen=True)
class ExportPart:
    """One zip of an export: the only one, or part `number` of `count` (the first holds the report
    and the manifest)."""

    request_id: Any
    number: int
    count: int
    path: str
    bytes: int
    sha256: str

    @property
    def filename(self) -> str:
        """What the person's browser saves it as."""
        return f"data-{self.request_id}.zip" if self.count == 1 else f"data-{self.request_id}-part-{self.number}-of-{self.count}.zip"


def export_parts(export: Export) -> list[ExportPart]:
    """The export's zips in order: one, unless the person chose a part size."""
    zips = [{"path": export.path, "bytes": export.bytes, "sha256": export.sha256}, *export.parts]
    return [ExportPart(export.request_id, number, len(zips), part["path"], part["bytes"], part["sha256"])
            for number, part in enumerate(zips, start=1)]


def export_paths(export: Export) -> list[str]:
    """Where each of the export's zips is in the storage."""
    return [part.path for part in export_parts(export)]


def export_parts_as_json(archive) -> list[dict]:
    """An archive's zips after the first, as `Export.parts` keeps them."""
    return [{"path": part.path, "bytes": part.bytes, "sha256": part.sha256} for part in archive.parts]


def download_url(export: Export, part: int = 1) -> str:
    """An absolute, signed link to one export (to its part `part`, when it comes in parts); it stops
    working when the export expires."""
    payload = {"r": str(export.request_id), "e": export.pk, **({"p": part} if part != 1 else {})}
    token = signing.dumps(payload, salt=DOWNLOAD_SALT, compress=True)
    path = reverse("request-download", kwargs={"request_id": export.request_id, "signature": token})
    return f"{settings.DSAR_PUBLIC_URL}{path}"


def download_urls(export: Export) -> list[tuple[ExportPart, str]]:
    """Each of the export's zips with its own signed link."""
    return [(part, download_url(export, part.number)) for part in export_parts(export)]


def download_links(export: Export) -> dict[str, Any]:
    """What an email about the export links to: `download_url`, the first (or only) zip's, and
    `download_parts`, each zip's number, size and link when there are several (else empty)."""
    links = download_urls(export)
    parts = [{"number": part.number, "bytes": part.bytes, "url": url} for part, url in links] if len(links) > 1 else []
    return {"download_url": links[0][1], "download_parts": parts}


def export_for_download(*, request_id, signature: str) -> Export | None:
    """The export a signed link points to, if the link is genuine, for this request, and the export
    is released, not deleted, not expired, and not of a person whose data was erased since."""
    found = _signed_for(request_id, signature)
    return found[0] if found else None


def export_part_for_download(*, request_id, signature: str) -> ExportPart | None:
    """The zip of an export a signed link points to (its only one, or the part the link names), on
    the terms of `export_for_download`; None for a part the export does not have."""
    found = _signed_for(request_id, signature)
    if found is None:
        return None
    export, number = found
    parts = export_parts(export)
    return parts[number - 1] if isinstance(number, int) and 1 <= number <= len(parts) else None


def _signed_for(request_id, signature: str) -> tuple[Export, Any] | None:
    """The export a genuine link to it points to, while it can be downloaded, and the part it names."""
    try:
        payload = signing.loads(signature, salt=DOWNLOAD_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or payload.get("r") != str(request_id):
        return None
    export = Export.objects.filter(pk=payload.get("e"), request_id=request_id, deleted_at__isnull=True, released_at__isnull=False
                                   ).not_erased().first()
    if export is None or export.expires_at <= timezone.now():
        return None
    return export, payload.get("p", 1)


def archive_encrypted(export: ExportPart, passphrase: str) -> Iterator[bytes]:
    """The stored zip re-packed as it streams out, every member encrypted with AES-256
    (WinZip AE-2) under the person's passphrase. The passphrase serves this one response and is
    never stored, so a downloaded file stays protected wherever it is copied."""
    from stream_zip import ZIP_64, stream_zip

    with default_storage.open(export.path, "rb") as handle, zipfile.ZipFile(handle) as archive:

        def member_chunks(info: zipfile.ZipInfo) -> Iterator[bytes]:
            with archive.open(info) as member:
                while chunk := member.read(CHUNK):
                    yield chunk

        members = ((info.filename, dt.datetime(*info.date_time), 0o600, ZIP_64, member_chunks(info))
                   for info in archive.infolist() if not info.is_dir())
        yield from stream_zip(members, password=passphrase)
