"""Every API error is JSON: {"error": code, "detail": ...}, with a 4xx status (contract §4)."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..errors import ServiceError
from ..services import MANUAL_UPLOAD_BODY_MAX_BYTES

_CODES = {
    exceptions.ParseError: "malformed_json",
    exceptions.ValidationError: "invalid",
    exceptions.NotFound: "not_found",
    Http404: "not_found",  # Django's, raised by views and get_object_or_404; DRF answers it as its NotFound
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "not_authenticated",
    exceptions.PermissionDenied: "forbidden",
    PermissionDenied: "forbidden",  # Django's, likewise
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.Throttled: "throttled",
}


def exception_handler(exc, context):
    """DRF's handler, reshaped to the contract; service errors mapped to their status."""
    if isinstance(exc, ServiceError):
        return Response({"error": exc.code, "detail": exc.detail}, status=exc.status)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((code for kind, code in _CODES.items() if isinstance(exc, kind)), "error")
    detail = response.data if isinstance(exc, exceptions.ValidationError) else response.data.get("detail", response.data)
    response.data = {"error": code, "detail": detail}
    return response


# Where a person answers a staff question, with a file: the portal's form and the subject API.
ANSWER_PATH = re.compile(r"^(/api/v1)?/requests/[0-9a-f-]+/answer$")


class BodySizeLimitMiddleware:
    """Refuse any body over DSAR_MAX_BODY_BYTES with 413 before anything reads it; the console's
    manual-task page, where staff upload the records and scans found, takes up to
    MANUAL_UPLOAD_BODY_MAX_BYTES (its view reads no body before it knows the user is staff); a
    person's answer to a question takes its file (DSAR_ANSWER_FILE_MAX_BYTES) on top of the usual
    body (its view reads no body before it knows the person may see the request)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.upload_prefix = reverse("console:manual-tasks") + "/"

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _refusal(request, "invalid", 400, gettext_lazy("Content-Length is not a number."))
        if request.path.startswith(self.upload_prefix):
            limit = MANUAL_UPLOAD_BODY_MAX_BYTES
        elif ANSWER_PATH.match(request.path):
            limit = settings.DSAR_ANSWER_FILE_MAX_BYTES + settings.DSAR_MAX_BODY_BYTES
        else:
            limit = settings.DSAR_MAX_BODY_BYTES
        if length > limit:
            return _refusal(request, "body_too_large", 413, gettext_lazy("The body may be at most %(limit)d bytes."),
                            {"limit": limit})
        return self.get_response(request)


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def _refusal(request, code: str, status: int, message, values: dict | None = None) -> JsonResponse:
    """The API's error answer for a request refused outside any view, its `message` (filled in with
    `values`) in the caller's language, chosen here: a body too large is refused before
    LocaleMiddleware has chosen it, and a Host not served may be."""
    with translation.override(translation.get_language_from_request(request)):
        detail = message % values if values else str(message)
    return JsonResponse({"error": code, "detail": detail}, status=status)


def bad_request(request, exception=None):
    """400 for a request refused before any view (a Host not served): JSON under /api/."""
    if _is_api(request):
        return _refusal(request, "bad_request", 400, gettext_lazy("The request is malformed."))
    from django.views.defaults import bad_request as page

    return page(request, exception)


def not_found(request, exception=None):
    """404 for any unknown URL: JSON under /api/, Django's page elsewhere."""
    if _is_api(request):
        return _refusal(request, "not_found", 404, gettext_lazy("No such resource."))
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request):
    """A last resort that still answers in the API's shape; the traceback goes to the log."""
    if _is_api(request):
        return _refusal(request, "server_error", 500, gettext_lazy("Something went wrong on our side."))
    from django.views.defaults import server_error as page

    return page(request)
