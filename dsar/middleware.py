"""Faults of the backing services answer 503, not a traceback; answers kept out of caches; the
API's constant security policy; the API refused over plain HTTP."""

from __future__ import annotations

import logging

import kombu.exceptions
import redis.exceptions
from csp.constants import HEADER
from csp.middleware import CSPMiddleware
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

from .portal import errors

logger = logging.getLogger(__name__)
UNAVAILABLE = (redis.exceptions.RedisError, kombu.exceptions.OperationalError, OperationalError, InterfaceError)


class ServiceUnavailableMiddleware:
    """When the database or Redis is down, say so with 503 and Retry-After; the change is not made."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, UNAVAILABLE):
            return None
        # The path as it came, escaped as Django's own request log lines are: an encoded line break
        # in an address would otherwise start a forged line.
        path = request.path.encode("unicode_escape").decode("ascii")
        logger.error("service unavailable while answering %s %s: %s", request.method, path, exception)
        detail = "A system we depend on is unavailable. Please try again in a minute."
        if request.path.startswith("/api/"):
            response = JsonResponse({"error": "unavailable", "detail": detail}, status=503)
        else:
            response = errors.service_unavailable(request)
        response["Retry-After"] = "30"
        return response


class PeopleLocaleMiddleware(LocaleMiddleware):
    """The person's language on the portal and the API (Django's choice: the switch's cookie, else
    the browser's); the console is for staff and always in the product's own language."""

    def process_request(self, request):
        if request.path.startswith("/console/"):
            translation.activate(settings.LANGUAGE_CODE)
            request.LANGUAGE_CODE = settings.LANGUAGE_CODE
            return
        super().process_request(request)


class HttpsOnlyApiMiddleware:
    """Behind TLS (SECURE_SSL_REDIRECT on) the API is refused over plain HTTP, never redirected.

    A redirect would hide the mistake: the client's token or a person's address has already crossed
    the network in clear, and the client follows the redirect and carries on. Pages are still
    redirected by SecurityMiddleware; the API is exempt from that (SECURE_REDIRECT_EXEMPT) and
    answered here with 403 in its error shape (ASVS 4.1.2). `is_secure()` honours
    SECURE_PROXY_SSL_HEADER, so a call that reached the TLS-terminating proxy over HTTPS passes.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.SECURE_SSL_REDIRECT and request.path.startswith("/api/") and not request.is_secure():
            refused = JsonResponse({"error": "https_required", "detail": "This API is served over HTTPS only."}, status=403)
            # Answered before the middleware that adds them: the API's own policy, and no caching.
            refused[HEADER] = ContentSecurityPolicyMiddleware.API_POLICY
            refused["Cache-Control"] = "no-store"
            return refused
        return self.get_response(request)


class NoStoreMiddleware:
    """Every answer the application makes says `Cache-Control: no-store` unless it says otherwise:
    status pages, console pages and the API's JSON hold people's data, which no browser or proxy
    cache should keep (ASVS 14.3.2). Static files are answered by WhiteNoise before this runs, with
    their own long caching."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Cache-Control", "no-store")
        return response


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp for pages; one constant policy for the API, whose answers are data, never pages.

    Nothing an API answer holds may load or run anything, and no page may frame it (the policy
    OWASP gives for REST services). django-csp rebuilds its header from settings on every response,
    which cost 3 % of filing a request; the API's header is a constant.
    """

    API_PREFIX, API_POLICY = "/api/v1/", "default-src 'none'; frame-ancestors 'none'"

    def process_response(self, request, response):
        if request.path_info.startswith(self.API_PREFIX):
            if HEADER not in response:
                response[HEADER] = self.API_POLICY
            return response
        return super().process_response(request, response)
