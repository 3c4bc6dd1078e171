"""A real HTTP server that answers every GET alike: for what a client does with a given answer."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer


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

    server = HTTPServer(("127.0.0.1", 0), Fixed)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
