"""The web server as devstack runs it keeps answering while many clients send their headers slowly."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
from pathlib import Path

import devstack

from ..support.processes import process_stop
from ..support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
SLOW_CLIENTS = 50
# The request line and the first header of a request whose headers never end: a server that reads
# them on a thread of its own holds that thread until the rest comes.
STARTED = b"GET /healthz/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
REST = b"1\r\nConnection: close\r\n\r\n"


def _ready(port: int, timeout: float) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/healthz/ready")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _answers(port: int) -> bool:
    try:
        _ready(port, timeout=5)
    except OSError:
        return False
    return True


def _answer_status(slow: socket.socket) -> bytes:
    """The status line the server sent on `slow`, read until it closes the connection."""
    slow.settimeout(30)
    received = b""
    while chunk := slow.recv(4096):
        received += chunk
    return received.split(b"\r\n", 1)[0]


def test_a_request_is_answered_while_fifty_clients_hold_their_headers_unfinished_and_theirs_are_answered_after():
    port = devstack.free_port()
    server = subprocess.Popen([sys.executable, *devstack.gunicorn_args(f"127.0.0.1:{port}"), "--log-level", "warning"],
                              cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    slow_clients: list[socket.socket] = []
    try:
        wait_for(lambda: server.poll() is not None or _answers(port), timeout=60, what="gunicorn to answer")
        assert server.poll() is None, "gunicorn exited at start-up"
        for _ in range(SLOW_CLIENTS):
            slow = socket.create_connection(("127.0.0.1", port), timeout=10)
            slow.sendall(STARTED)
            slow_clients.append(slow)

        # Bounded, not timed: a server whose threads the slow clients hold never answers this one
        # before they finish, and they do not finish until it has been answered.
        try:
            status = _ready(port, timeout=20)
        except TimeoutError:
            status = None
        assert status == 200, "a request was not answered while slow clients held their headers unfinished"

        # The slow clients were held, not dropped: each is answered once its headers end.
        for slow in slow_clients:
            slow.sendall(REST)
        assert {_answer_status(slow) for slow in slow_clients} == {b"HTTP/1.1 200 OK"}
    finally:
        for slow in slow_clients:
            slow.close()
        process_stop(server)
