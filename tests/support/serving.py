"""An HTTP server on a loopback port of its own, serving in a thread of the test's process: the
stand-ins' and the fixed answers' common ground."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer


class Served:
    """`server` (a ThreadingHTTPServer on `handler`, unless given) serving until `stop()`; its
    `port` and `base_url`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler] | None = None, *, server: HTTPServer | None = None) -> None:
        self.server = server or ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
