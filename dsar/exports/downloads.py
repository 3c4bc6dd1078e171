"""Downloads: signed links that work for one request until its export expires, and the archive
re-packed with a passphrase on the way out."""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Iterator

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from ..models import Export
from .storage import CHUNK

DOWNLOAD_SALT = "dsar.download"


def download_url(export: Export) -> str:
    """An absolute, signed link to one export; it stops working when the export expires."""
    token = signing.dumps({"r": str(export.request_id), "e": export.pk}, salt=DOWNLOAD_SALT, compress=True)
    path = reverse("request-download", kwargs={"request_id": export.request_id, "signature": token})
    return f"{settings.DSAR_PUBLIC_URL}{path}"


def export_for_download(*, request_id, signature: str) -> Export | None:
    """The export a signed link points to, if the link is genuine, for this request, and the export
    is released, not deleted, not expired, and not of a person whose data was erased since."""
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
    return export


def archive_encrypted(export: Export, passphrase: str) -> Iterator[bytes]:
    """The stored archive re-packed as it streams out, every member encrypted with AES-256
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
