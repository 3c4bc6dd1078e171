"""Seeing an export in the browser, without downloading it: the person proves the address again with
a fresh code, and the portal then reads the report's parts from the stored archive as they ask
for them, a category's records a page at a time, and its files one by one, never unzipping it.

The code is the verification's own (verification.py), issued on the request's row as a code at
filing is, and with the same limits: the attempts a request allows, its time to live, a minute
between codes. It is only ever sent for a completed request whose export can be downloaded.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from .. import locks, verification
from ..errors import InvalidInput, Locked, NotFound, TooSoon
from ..lifecycle import audit_record
from ..models import Export, Request, Status
from ..notifications import email_enqueue, email_new
from .report import ReportWithheld
from .review import Decision, ReviewItem, review_withheld
from .storage import CHUNK

SUBJECT = "subject"
VIEW_CODE_EMAIL = "export_view_code"
# Why a request whose wrong codes used up its attempts refuses to show or send anything more.
LOCKED = gettext_lazy("Too many wrong codes: you can no longer see your data here. Use the download link we emailed you.")


class Unviewable(NotFound):
    """The request has no export to see: not ready, not released, expired or deleted (`why`)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def export_viewable(*, request: Request) -> Export:
    """The request's export the person may see; Unviewable says why not (`pending`: not made or not
    released yet; `expired`: past its time, deleted, or of a person whose data was erased since)."""
    export = Export.objects.filter(request=request).first()
    if request.status == Status.EXPIRED or (export is not None and (export.deleted_at is not None or export.expires_at <= timezone.now())):
        raise Unviewable("expired")
    if request.status != Status.COMPLETED or export is None or export.released_at is None:
        raise Unviewable("pending")
    if not Export.objects.filter(pk=export.pk).not_erased().exists():
        raise Unviewable("expired")
    return export


def export_view_code_send(*, request_id) -> Request:
    """Email a fresh code to the request's address, to see its export in the browser; at most one a
    minute (TooSoon), and none once the request's wrong attempts locked it (Locked)."""
    with transaction.atomic():
        request = _locked(request_id)
        export_viewable(request=request)
        if request.code_attempts >= settings.DSAR_CODE_MAX_ATTEMPTS:
            raise Locked(LOCKED)
        if request.code_sent_at is not None:
            left = (request.code_sent_at + dt.timedelta(seconds=settings.DSAR_CODE_RESEND_SECONDS) - timezone.now()).total_seconds()
            if left > 0:
                seconds = math.ceil(left)
                raise TooSoon(ngettext("A code was sent moments ago. You can ask for another in %(seconds)d second.",
                                       "A code was sent moments ago. You can ask for another in %(seconds)d seconds.", seconds)
                              % {"seconds": seconds}, code="resend_cooldown")
        verification.code_issue(request, timezone.now())
        request.save(update_fields=["code_hash", "code_sent_at", "code_expires_at", "updated_at"])
        audit_record(request, actor=SUBJECT, action="view_code_sent")
        email_enqueue(email_new(request, VIEW_CODE_EMAIL, issued=request.code_sent_at))
    return request


def export_view_code_check(*, request_id, code: str) -> Request:
    """Check a code sent by export_view_code_send. A wrong one counts an attempt, committed though
    the call fails, as at filing; a right one is used up."""
    failure: Exception | None = None
    with transaction.atomic():
        request = _locked(request_id)
        export_viewable(request=request)
        if request.code_attempts >= settings.DSAR_CODE_MAX_ATTEMPTS:
            raise Locked(LOCKED)
        if not request.code_hash or request.code_expires_at is None or request.code_expires_at <= timezone.now():
            raise InvalidInput(_("This code has expired. Ask for a new one."), code="code_expired")
        if verification.code_matches(code, request.code_hash):
            request.code_hash = ""
            request.save(update_fields=["code_hash", "updated_at"])
            audit_record(request, actor=SUBJECT, action="export_viewed")
        else:
            request.code_attempts += 1
            request.save(update_fields=["code_attempts", "updated_at"])
            audit_record(request, actor=SUBJECT, action="view_code_rejected", note=f"attempt {request.code_attempts}")
            left = settings.DSAR_CODE_MAX_ATTEMPTS - request.code_attempts
            if left <= 0:
                failure = Locked(LOCKED)
            else:
                failure = InvalidInput(ngettext("That code is not right. %(left)d attempt left.",
                                                "That code is not right. %(left)d attempts left.", left) % {"left": left},
                                       code="invalid_code")
    if failure is not None:
        raise failure
    return request


def _locked(request_id) -> Request:
    try:
        return locks.request_lock(request_id)
    except Request.DoesNotExist:
        raise NotFound(_("No such request.")) from None


# --- Reading the stored archive ---------------------------------------------------------------------


@dataclass(frozen=True)
class StoredCategory:
    """A category as the archive's manifest lists it."""

    id: str
    records: int
    connectors: list[str]
    sources: list[dict[str, Any]]


@contextmanager
def archive_open(export: Export) -> Iterator[zipfile.ZipFile]:
    """The stored archive, read in place (a local file, or S3 by ranges through the storage)."""
    with default_storage.open(export.path, "rb") as handle, zipfile.ZipFile(handle) as archive:
        yield archive


def archive_categories(archive: zipfile.ZipFile) -> tuple[list[StoredCategory], dict | None]:
    """The archive's categories, from its manifest, in its order; and the period the request asked
    its data from, with the systems that could not keep to it (None: all of it)."""
    manifest = json.loads(archive.read("manifest.json"))
    return ([StoredCategory(category, entry["records"], entry["connectors"], entry["sources"])
             for category, entry in manifest["categories"].items()], manifest.get("date_range"))


def archive_lines(archive: zipfile.ZipFile, category: str, *, skip: int, take: int) -> list[str]:
    """`take` of a category's JSON lines (data/<id>.json holds one record a line), past the first `skip`."""
    lines = []
    with archive.open(f"data/{category}.json") as member:
        seen = 0
        for raw in member:
            line = raw.decode("utf-8").rstrip("\n").rstrip(",")
            if line in ("[", "]", ""):
                continue
            seen += 1
            if seen > skip:
                lines.append(line)
                if len(lines) == take:
                    break
    return lines


def export_withheld(export: Export) -> list[ReportWithheld]:
    """What the review of other people's data left out of the export or hid, per category, as its
    report says it: from the decisions the export keeps (an item's id is `connector:category:index`)."""
    decisions = [Decision(d["item"], d["action"], tuple(d.get("fields", ())), d.get("reason", ""), d.get("reason_text", ""))
                 for d in (export.review or {}).get("decisions", [])]
    items = []
    for decision in decisions:
        connector, category, index = decision.item.rsplit(":", 2)
        items.append(ReviewItem(decision.item, connector, category, int(index), "", {}, None))
    return review_withheld(items, decisions)


def archive_file(archive: zipfile.ZipFile, path: str) -> zipfile.ZipInfo | None:
    """A stored file of the archive (under files/), or None."""
    if not path.startswith("files/"):
        return None
    try:
        return archive.getinfo(path)
    except KeyError:
        return None


def archive_file_chunks(export: Export, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """A stored file's bytes as they come out of the archive, in chunks, opened and closed here."""
    with archive_open(export) as archive, archive.open(info) as member:
        while chunk := member.read(CHUNK):
            yield chunk
