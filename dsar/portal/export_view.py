"""Seeing an access request's export in the browser, without downloading or unzipping it.

The person proves the address again with a fresh emailed code (dsar/exports/viewing.py, with the
verification's limits and the filing's throttles); this browser may then see the report for
VIEW_MINUTES: the archive's own report, each category's records a page at a time, and its stored
files and pictures, read from the stored archive one at a time. The report's links to its files are
relative (`files/...`), so they reach the file view below as they reach the unzipped folder.
"""

from __future__ import annotations

import datetime as dt
import math
import mimetypes
from dataclasses import replace
from urllib.parse import quote

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from connectors.base import Source

from ..errors import InvalidInput, Locked, NotFound, ServiceError
from ..exports import report, viewing
from ..throttle import throttle_filing, throttle_verify
from ..verification import CODE_DIGITS
from . import selectors
from .errors import forms_only
from .forms import CodeForm

VIEW_MINUTES = 30  # how long a proven browser may see the export
PAGE_RECORDS = 20  # a category's records a page
GRANTED = "dsar_export_view"  # request id -> until when this browser may see its export (ISO 8601)
ASKED = "dsar_export_code"  # the requests this browser asked a code for
# Pictures a browser shows inline; any other file is downloaded, never rendered on the portal's own site.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def _granted(http_request: HttpRequest, request_id) -> bool:
    until = http_request.session.get(GRANTED, {}).get(str(request_id))
    return until is not None and dt.datetime.fromisoformat(until) > timezone.now()


def _grant(http_request: HttpRequest, request_id) -> None:
    http_request.session.cycle_key()  # as on signing in: a planted session id gains nothing
    granted = {key: until for key, until in http_request.session.get(GRANTED, {}).items()
               if dt.datetime.fromisoformat(until) > timezone.now()}
    granted[str(request_id)] = (timezone.now() + dt.timedelta(minutes=VIEW_MINUTES)).isoformat()
    http_request.session[GRANTED] = granted


def _unavailable(http_request: HttpRequest, request_id, why: str) -> HttpResponse:
    """A page saying the export cannot be seen, and why: 404 when there is none yet, 410 when it is gone."""
    return render(http_request, "portal/export_unavailable.html", {"request_id": request_id, "why": why},
                  status=410 if why == "expired" else 404)


def _unknown(http_request: HttpRequest) -> HttpResponse:
    return render(http_request, "portal/status_unknown.html", status=404)


def _prove_page(http_request: HttpRequest, request_id, *, form: CodeForm | None = None, error: ServiceError | None = None,
                status: int = 200) -> HttpResponse:
    asked = str(request_id) in http_request.session.get(ASKED, [])
    context = {"request_id": request_id, "form": form or CodeForm(), "asked": asked, "digits": CODE_DIGITS,
               "locked": isinstance(error, Locked), "error": error, "minutes": VIEW_MINUTES}
    return render(http_request, "portal/export_prove.html", context, status=status)


def _viewable(http_request: HttpRequest, request_id):
    """The request and its export, or the page to answer with instead."""
    request = selectors.request_get(request_id=request_id)
    if request is None:
        return None, _unknown(http_request)
    try:
        return (request, viewing.export_viewable(request=request)), None
    except viewing.Unviewable as unviewable:
        return None, _unavailable(http_request, request_id, unviewable.why)


@require_safe
def export_view(http_request: HttpRequest, request_id) -> HttpResponse:
    """The report, once this browser proved the address; `?category=ID&page=N` opens a category at
    a page of its records."""
    found, answer = _viewable(http_request, request_id)
    if answer is not None:
        return answer
    if not _granted(http_request, request_id):
        return _prove_page(http_request, request_id)
    request, export = found
    wanted = http_request.GET.get("category")
    page_text = http_request.GET.get("page", "1")
    if not page_text.isdigit() or int(page_text) < 1:
        return _bad_page(http_request, request_id, _("The page number must be a whole number, 1 or more."), status=400)
    page = int(page_text)
    with viewing.archive_open(export) as archive:
        stored, date_range = viewing.archive_categories(archive)
        if wanted is not None and wanted not in {category.id for category in stored}:
            return _bad_page(http_request, request_id, _("Your data has no such kind of data."), status=404)
        past = {entry.get("category") for entry in request.retention_finding or []}
        categories = []
        for category in stored:
            pages = max(1, math.ceil(category.records / PAGE_RECORDS))
            at = page if category.id == wanted else 1
            if at > pages:
                return _bad_page(http_request, request_id, _("That page is past the last page of your records."), status=404)
            lines = viewing.archive_lines(archive, category.id, skip=(at - 1) * PAGE_RECORDS, take=PAGE_RECORDS)
            shown = report.report_category(category.id, records=category.records, sources=[Source(**s) for s in category.sources],
                                           lines=lines, connectors=category.connectors, past_promise=category.id in past,
                                           first=(at - 1) * PAGE_RECORDS + 1, limit=PAGE_RECORDS)
            categories.append(replace(shown, page=at, pages=pages, open=category.id == wanted))
    body = report.report_body(request=request, categories=categories, generated_at=export.created_at, date_range=date_range,
                              withheld=viewing.export_withheld(export), page_url=lambda category, number: f"?category={category.id}&page={number}#in-{category.slug}")
    response = render(http_request, "portal/export_report.html", {"request_id": request_id, "body": body, "expires_at": export.expires_at,
                                                                  "time_zone": request.time_zone or "UTC"})
    response["Cache-Control"] = "private, no-store"
    return response


def _bad_page(http_request: HttpRequest, request_id, message: str, *, status: int) -> HttpResponse:
    return render(http_request, "portal/export_bad_page.html", {"request_id": request_id, "message": message}, status=status)


@forms_only("portal:export-view")
def export_view_code(http_request: HttpRequest, request_id) -> HttpResponse:
    """Email a fresh code to the request's address, to see its export here."""
    found, answer = _viewable(http_request, request_id)
    if answer is not None:
        return answer
    request, _export = found
    try:
        throttle_filing(http_request, request.email)
        viewing.export_view_code_send(request_id=request_id)
    except viewing.Unviewable as unviewable:
        return _unavailable(http_request, request_id, unviewable.why)
    except NotFound:
        return _unknown(http_request)
    except ServiceError as error:
        return _prove_page(http_request, request_id, error=error, status=error.status)
    http_request.session[ASKED] = [*[i for i in http_request.session.get(ASKED, []) if i != str(request_id)], str(request_id)][-20:]
    return redirect("portal:export-view", request_id=request_id)


@forms_only("portal:export-view")
def export_view_verify(http_request: HttpRequest, request_id) -> HttpResponse:
    """Check the emailed code; the right one lets this browser see the export for VIEW_MINUTES."""
    found, answer = _viewable(http_request, request_id)
    if answer is not None:
        return answer
    form = CodeForm(http_request.POST)
    if not form.is_valid():
        return _prove_page(http_request, request_id, form=form, status=400)
    try:
        throttle_verify(http_request)
        viewing.export_view_code_check(request_id=request_id, code=form.cleaned_data["code"])
    except viewing.Unviewable as unviewable:
        return _unavailable(http_request, request_id, unviewable.why)
    except NotFound:
        return _unknown(http_request)
    except InvalidInput as error:
        form.add_error("code", error.detail)
        return _prove_page(http_request, request_id, form=form, status=400)
    except ServiceError as error:
        return _prove_page(http_request, request_id, error=error, status=error.status)
    _grant(http_request, request_id)
    return redirect("portal:export-view", request_id=request_id)


@require_safe
def export_view_file(http_request: HttpRequest, request_id, member: str) -> HttpResponse:
    """One stored file of the export, to the proven browser alone: a picture shown, anything else downloaded."""
    found, answer = _viewable(http_request, request_id)
    if answer is not None:
        return answer
    if not _granted(http_request, request_id):
        return _prove_page(http_request, request_id, status=403)
    _request, export = found
    with viewing.archive_open(export) as archive:
        info = viewing.archive_file(archive, f"files/{member}")
    if info is None:
        return _bad_page(http_request, request_id, _("Your data has no such file."), status=404)
    kind = mimetypes.guess_type(info.filename)[0]
    inline = kind in INLINE_TYPES
    response = StreamingHttpResponse(viewing.archive_file_chunks(export, info), content_type=kind if inline else "application/octet-stream")
    response["Content-Length"] = str(info.file_size)
    response["Content-Disposition"] = "inline" if inline else f"attachment; filename*=UTF-8''{quote(info.filename.rsplit('/', 1)[-1], safe='')}"
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


urlpatterns = [
    path("", export_view, name="export-view"),
    path("code", export_view_code, name="export-view-code"),
    path("verify", export_view_verify, name="export-view-verify"),
    path("files/<path:member>", export_view_file, name="export-view-file"),
]
