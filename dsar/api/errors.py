"""Every API error is JSON: {"error": code, "detail": ...}, with a 4xx status (contract §4)."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.urls import reverse
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
            return JsonResponse({"error": "invalid", "detail": "Content-Length is not a number."}, status=400)
        if request.path.startswith(self.upload_prefix):
            limit = MANUAL_UPLOAD_BODY_MAX_BYTES
        elif ANSWER_PATH.match(request.path):
            limit = settings.DSAR_ANSWER_FILE_MAX_BYTES + settings.DSAR_MAX_BODY_BYTES
        else:
            limit = settings.DSAR_MAX_BODY_BYTES
        if length > limit:
            return JsonResponse(
                {"error": "body_too_large", "detail": f"The body may be at most {limit} bytes."},
                status=413,
            )
        return self.get_response(request)


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception=None):
    """400 for a request refused before any view (a Host not served): JSON under /api/."""
    if _is_api(request):
        return JsonResponse({"error": "bad_request", "detail": "The request is malformed."}, status=400)
    from django.views.defaults import bad_request as page

    return page(request, exception)


def not_found(request, exception=None):
    """404 for any unknown URL: JSON under /api/, Django's page elsewhere."""
    if _is_api(request):
        return JsonResponse({"error": "not_found", "detail": "No such resource."}, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request):
    """A last resort that still answers in the API's shape; the traceback goes to the log."""
    if _is_api(request):
        return JsonResponse({"error": "server_error", "detail": "Something went wrong on our side."}, status=500)
    from django.views.defaults import server_error as page

    return page(request)
