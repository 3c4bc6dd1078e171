"""A real HTTP server that answers every GET alike: for what a client does with a given answer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

from .serving import Served


@contextlib.contextmanager
def answering(status: int, body: bytes, seen: list[tuple[str, str | None]] | None = None) -> Iterator[int]:
    """A server on a loopback port of its own (yielded) that answers every GET with `status` and
    `body`, noting in `seen` each request line's target and Authorization header."""

    class Fixed(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if seen is not None:
                seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_request(self, *args) -> None:
            pass

    served = Served(server=HTTPServer(("127.0.0.1", 0), Fixed))
    try:
        yield served.port
    finally:
        served.stop()
