"""The site's error pages: in the portal's look for people, the contract's JSON under /api/.

Each page says what happened and what to do next. The 500 page is rendered from settings alone,
without the request's context: whatever broke (the database, the session store) is not asked again.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseServerError
from django.shortcuts import redirect, render
from django.template import loader

from .. import branding
from ..api import errors as api_errors


# A download link from our emails, whole or cut short.
DOWNLOAD_PATH = re.compile(r"^/api/v1/requests/(?P<request_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/download(/|$)")


def _is_api(http_request: HttpRequest) -> bool:
    return http_request.path.startswith("/api/")


def prefers_html(http_request: HttpRequest) -> bool:
    """Whether the client is a browser (its Accept prefers a page); API clients, and clients that
    accept anything, get JSON."""
    return http_request.get_preferred_type(["application/json", "text/html"]) == "text/html"


def download_unavailable(http_request: HttpRequest, request_id) -> HttpResponse:
    """A person who opened a download link that expired or was damaged goes to the page that says
    how to ask again; API clients keep the contract's 404."""
    return redirect("portal:download-unavailable", request_id=request_id)


def bad_request(http_request: HttpRequest, exception=None) -> HttpResponse:
    """400: a request refused before any view, such as one for a host we do not serve."""
    if _is_api(http_request):
        return api_errors.bad_request(http_request, exception)
    return render(http_request, "400.html", status=400)


def page_not_found(http_request: HttpRequest, exception=None) -> HttpResponse:
    """404: an address that leads nowhere."""
    download = DOWNLOAD_PATH.match(http_request.path)
    if download and prefers_html(http_request):
        return download_unavailable(http_request, download["request_id"])
    if _is_api(http_request):
        return api_errors.not_found(http_request, exception)
    return render(http_request, "404.html", status=404)


def server_error(http_request: HttpRequest) -> HttpResponse:
    """500: something broke on our side; the traceback goes to the log."""
    if _is_api(http_request):
        return api_errors.server_error(http_request)
    return HttpResponseServerError(loader.get_template("500.html").render(branding.brand(http_request)))


def service_unavailable(http_request: HttpRequest) -> HttpResponse:
    """503: the database or Redis is down. Rendered from settings alone, as the 500 page is: what
    is down is not asked again."""
    return HttpResponse(loader.get_template("503.html").render(branding.brand(http_request)), status=503)


def forms_only(page: str) -> Callable:
    """For a view of a request that takes only forms: its address opened in a browser (a reload
    after sending, a copied link) leads to the request's `page`, where Django would answer a blank
    405; any other method still gets 405."""
    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(http_request: HttpRequest, request_id, *args, **kwargs) -> HttpResponse:
            if http_request.method == "POST":
                return view(http_request, request_id, *args, **kwargs)
            if http_request.method in ("GET", "HEAD"):
                return redirect(page, request_id=request_id)
            return HttpResponseNotAllowed(["POST"])
        return wrapped
    return decorate
