"""One-time codes that prove a person owns an email address, and the bearer tokens they unlock.

Codes and tokens are stored only as keyed hashes (HMAC with the deployment's secret), compared in
constant time. A code expires after DSAR_CODE_TTL_MINUTES and allows DSAR_CODE_MAX_ATTEMPTS tries.

A code is never stored, not even in the email waiting to carry it. As in HOTP (RFC 4226), it is an
HMAC truncated to digits: of the request's id and the moment the code was issued, under a key from
the deployment's secret. Whoever sends the email derives it again from the request's row; without
the secret it cannot be told from random. A new code is a new moment, so it replaces the old one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from django.conf import settings

from .models import Request

CODE_DIGITS = 8


def _key(purpose: str) -> bytes:
    return hashlib.sha256(f"{purpose}:{settings.SECRET_KEY}".encode()).digest()


def _keyed_hash(purpose: str, value: str) -> str:
    return hmac.new(_key(purpose), value.encode(), hashlib.sha256).hexdigest()


def code_for(request: Request) -> str:
    """The code issued to `request` at its `code_sent_at`."""
    issued = request.code_sent_at.astimezone(dt.UTC).isoformat()
    digest = hmac.new(_key("code-derive"), f"{request.pk}:{issued}".encode(), hashlib.sha256).digest()
    # 64 bits taken modulo 10^8: no code is likelier than another by more than one part in 10^11.
    return f"{int.from_bytes(digest[:8], 'big') % 10**CODE_DIGITS:0{CODE_DIGITS}d}"


def code_issue(request: Request, now: dt.datetime) -> None:
    """Give `request` a fresh code, issued `now` (the caller saves the fields)."""
    request.code_sent_at = now
    request.code_expires_at = now + dt.timedelta(minutes=settings.DSAR_CODE_TTL_MINUTES)
    request.code_hash = code_hash(code_for(request))


def code_hash(code: str) -> str:
    return _keyed_hash("code", code)


def code_matches(code: str, stored_hash: str) -> bool:
    return bool(stored_hash) and hmac.compare_digest(code_hash(code), stored_hash)


def token_new() -> tuple[str, str]:
    """A bearer token for one request and the hash to store."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return _keyed_hash("token", token)


def token_matches(token: str, stored_hash: str) -> bool:
    return bool(stored_hash) and hmac.compare_digest(token_hash(token), stored_hash)
