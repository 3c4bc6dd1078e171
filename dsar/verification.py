"""One-time codes that prove a person owns an email address, and the bearer tokens they unlock.

Codes and tokens are stored only as keyed hashes (HMAC with the deployment's secret), compared in
constant time. A code expires after DSAR_CODE_TTL_MINUTES and allows DSAR_CODE_MAX_ATTEMPTS tries.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings

CODE_DIGITS = 8


def _keyed_hash(purpose: str, value: str) -> str:
    key = hashlib.sha256(f"{purpose}:{settings.SECRET_KEY}".encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def code_new() -> tuple[str, str]:
    """A fresh code and the hash to store."""
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    return code, code_hash(code)


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
