"""The erasure webhook (docs/erasure-webhook.md): its JSON body, its signature, and one POST.

The body is version "1" of the format. The signature is an HMAC-SHA256, under the secret the
recipient's system file reads from the environment, of the time it was signed and the body, so a
receiver can tell that the notice is ours and refuse one replayed later. Only a 2xx answer counts
as delivered; a redirect is not followed, and the call is bounded by DSAR_WEBHOOK_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import urllib3
from django.conf import settings

VERSION = "1"
EVENT = "erasure"
SIGNATURE_HEADER = "X-DSAR-Signature"
USER_AGENT = f"dsar-erasure-webhook/{VERSION}"


class DeliveryFailed(Exception):
    """The receiver did not take the notice: it did not answer in time, or answered other than 2xx."""


def webhook_body(*, event_id: str, reference: str, categories: list[str], identities: dict[str, list[str]],
                 erased_at: dt.datetime) -> bytes:
    """The notice as the receiver gets it: compact JSON, its keys sorted."""
    body = {
        "version": VERSION,
        "event": EVENT,
        "event_id": event_id,
        "reference": reference,
        "categories": categories,
        "identities": identities,
        "erased_at": erased_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "reply_to": settings.DEFAULT_FROM_EMAIL,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_signature(*, secret: str, body: bytes, timestamp: int) -> str:
    """The signature header's value: `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def webhook_post(*, url: str, secret: str, body: bytes, now: dt.datetime) -> str:
    """POST the signed notice to `url`; what the receiver answered, in words. DeliveryFailed when
    it did not answer 2xx."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               SIGNATURE_HEADER: webhook_signature(secret=secret, body=body, timestamp=int(now.timestamp()))}
    # A pool a call: notices are few, and a worker's forked children must share no connection.
    with urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(total=settings.DSAR_WEBHOOK_TIMEOUT_SECONDS)) as pool:
        try:
            # Its body unread: a receiver's answer is its status alone, however much it sends.
            response = pool.request("POST", url, body=body, headers=headers, redirect=False, preload_content=False)
        except urllib3.exceptions.HTTPError as error:  # refused, reset, timed out
            raise DeliveryFailed(f"the webhook did not answer: {error}") from error
        response.release_conn()
    answered = f"{response.status} {response.reason or ''}".strip()
    if 200 <= response.status < 300:
        return f"the webhook answered {answered}"
    if 300 <= response.status < 400:
        raise DeliveryFailed(f"the webhook answered {answered}, a redirect, which is not followed")
    raise DeliveryFailed(f"the webhook answered {answered}")
