"""latency: one access request for a typical subject, auto-approved, from verification to completed.

A typical subject touches all five connectors with about a hundred records and five small files.
The median over 20 runs is the figure; the share of it spent outside connector code (queueing,
claiming, staging, assembly, polling) comes from the task rows' own timings.
"""

from __future__ import annotations

import statistics

import requests

from estate.generate import subject_email
from devstack import WORKER_POOL

from .harness import Mailbox, Product, figure, file_and_verify, wait_final

RUNS = 20
SEED = 7


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
