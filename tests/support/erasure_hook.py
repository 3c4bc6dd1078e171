"""A receiver of the erasure webhook (docs/erasure-webhook.md), as a recipient would write one: a
real HTTP server on a loopback port of its own that checks each notice's signature with the secret
it shares with us, records what it received, and answers as the test plans."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .serving import Served


@dataclass(frozen=True)
class Received:
    """One POST as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    timestamp: int | None  # the signature's `t`
    signed: bool  # whether `v1` is the HMAC-SHA256 of "<t>.<body>" under the shared secret

    @property
    def notice(self) -> dict:
        return json.loads(self.body)


def signature_valid(header: str, body: bytes, secret: str) -> tuple[int | None, bool]:
    """(t, valid) of an `X-DSAR-Signature` header, checked as the documentation tells a receiver to."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if "t" not in parts or "v1" not in parts:
        return None, False
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return int(parts["t"]), hmac.compare_digest(expected, parts["v1"])


class ErasureHook:
    """Answers each POST with the next of `statuses` (the last one again once they run out), a 3xx
    with a Location elsewhere on it; while `hold` is set, it answers only once the test releases it."""

    def __init__(self, secret: str, statuses: list[int] | None = None) -> None:
        self.secret = secret
        self.statuses = list(statuses or [204])
        self.received: list[Received] = []
        self.hold: threading.Event | None = None
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                timestamp, signed = signature_valid(self.headers.get("X-DSAR-Signature", ""), body, hook.secret)
                hook.received.append(Received(self.path, dict(self.headers), body, timestamp, signed))
                if hook.hold is not None:
                    hook.hold.wait(30)
                status = hook.statuses.pop(0) if len(hook.statuses) > 1 else hook.statuses[0]
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_request(self, *args) -> None:
                pass

        self.served = Served(server=ThreadingHTTPServer(("127.0.0.1", 0), Handler))
        self.url = f"{self.served.base_url}/erasure"

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.served.stop()
