"""Limits that are security controls (django-ratelimit, counted in Redis), shared by the API and
the portal: filing per client address and per email (which also bounds how many codes a
stranger can make us send to someone else's address), and code attempts per address and email."""

from __future__ import annotations

from django.conf import settings
from django_ratelimit.core import get_usage

from .errors import ServiceError


class Throttled(ServiceError):
    status, code = 429, "throttled"


def client_address(http_request) -> str:
    """The caller's address. Behind a proxy, DSAR_TRUSTED_PROXIES says whose X-Forwarded-For to believe."""
    remote = http_request.META.get("REMOTE_ADDR", "")
    forwarded = http_request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded and remote in settings.DSAR_TRUSTED_PROXIES:
        return forwarded.split(",")[-1].strip()
    return remote


def _limit(http_request, scope: str, value: str, message: str) -> None:
    rate = settings.DSAR_RATE_LIMITS[scope]
    usage = get_usage(http_request, group=f"dsar.{scope}", key=lambda _group, _request: value, rate=rate, increment=True)
    if usage and usage["should_limit"]:
        raise Throttled(message)


def throttle_filing(http_request, email: str) -> None:
    """Before filing a request or sending a new code to `email` (already normalised)."""
    _limit(http_request, "file_ip", client_address(http_request), "Too many requests from your network. Try again later.")
    _limit(http_request, "file_email", email, "Too many requests for this email address. Try again in an hour.")


def throttle_verify(http_request, email: str) -> None:
    """Before checking a code for a request filed with `email`."""
    _limit(http_request, "verify_ip", client_address(http_request), "Too many code attempts from your network. Try again later.")
    _limit(http_request, "verify_email", email, "Too many code attempts for this email address. Try again in an hour.")
