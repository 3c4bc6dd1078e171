"""latency: one access request for a typical subject, auto-approved, from verification to completed.

A typical subject touches all five connectors with about a hundred records and five small files.
The median over 20 runs is the figure; the share of it spent outside connector code (queueing,
claiming, staging, assembly, polling) comes from the task rows' own timings.

Then the portal's start page, fetched while 200 clients hold connections open dribbling their headers
a byte a second, against the same fetches with no slow client, on the same server in the same run:
the slowest of them must come back within a second.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import requests

from estate.generate import subject_email
from devstack import WORKER_POOL

from .harness import Mailbox, Product, figure, file_and_verify, wait_final

RUNS = 20
SEED = 7
SLOW_CLIENTS = 200
PAGE_FETCHES = 50


def run() -> None:
    with Product(name="latency", workers=1, concurrency=WORKER_POOL) as product:
        product.database_ensure()
        product.estate_generate(subjects=RUNS + 5, seed=SEED)
        product.start()
        mailbox, session = Mailbox(product.mail), requests.Session()
        totals, outside = [], []
        with product.sql() as conn:
            for index in range(RUNS + 2):
                request_id, sent = file_and_verify(session, product, mailbox, subject_email(index, SEED))
                done = wait_final(conn, [request_id], timeout=60)[request_id]
                if index < 2:
                    continue  # warm-up: first connections, first imports
                total = done - sent
                slowest = conn.execute(
                    "SELECT max(extract(epoch FROM finished_at - started_at)) FROM dsar_connectortask WHERE request_id = %s",
                    [request_id],
                ).fetchone()[0]
                totals.append(total)
                outside.append(max(0.0, total - float(slowest)) / total)
        median = statistics.median(totals)
        figure("latency", "median_verify_to_completed", median, "s", target=0.25, direction="max")
        figure("latency", "p90_verify_to_completed", statistics.quantiles(totals, n=10)[-1], "s")
        figure("latency", "share_outside_connectors", statistics.median(outside), "ratio")
        slow_clients_figures(product)


@contextmanager
def slow_clients(host: str, port: int, count: int) -> Iterator[None]:
    """`count` connections that send a request line, then one more byte of a header every second,
    never ending it, until the block exits."""
    held = [socket.create_connection((host, port), timeout=10) for _ in range(count)]
    for connection in held:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\nX-Slow: ")
    stop = threading.Event()

    def dribble() -> None:
        while not stop.wait(1.0):
            for connection in held:
                with suppress(OSError):  # one the server closed is no longer held
                    connection.sendall(b"x")

    dribbler = threading.Thread(target=dribble, daemon=True)
    dribbler.start()
    try:
        yield
    finally:
        stop.set()
        dribbler.join()
        for connection in held:
            connection.close()


def page_seconds(url: str, count: int) -> list[float]:
    """Seconds each of `count` fetches of `url` took, one after another on a new connection each;
    a fetch not answered within 10 s counts as 10 s."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            requests.get(url, timeout=10).raise_for_status()
            times.append(time.perf_counter() - started)
        except requests.Timeout:
            times.append(10.0)
    return times


def slow_clients_figures(product: Product) -> None:
    """The start page's slowest fetch while SLOW_CLIENTS clients dribble their headers, against the
    same fetches with none."""
    url = f"{product.url}/"
    page_seconds(url, 5)  # warm-up
    alone = page_seconds(url, PAGE_FETCHES)
    with slow_clients("127.0.0.1", product.port, SLOW_CLIENTS):
        beside_slow = page_seconds(url, PAGE_FETCHES)
    ref = {"name": "the same fetches with no slow client (max s)", "value": round(max(alone), 4)}
    figure("latency", "page_max_with_200_slow_clients", max(beside_slow), "s", target=1.0, direction="max", reference=ref)
    ref = {"name": "the same fetches with no slow client (median s)", "value": round(statistics.median(alone), 4)}
    figure("latency", "page_median_with_200_slow_clients", statistics.median(beside_slow), "s", reference=ref)
