"""scale: the throughput benchmark with 1, 2 and 4 worker processes, to show where the machine,
not the design, is the limit (on 2 cores the curve should flatten past 2 processes)."""

from __future__ import annotations

from . import throughput
from .harness import Product, figure


def run() -> None:
    for processes in (1, 2, 4):
        with Product(name="throughput", workers=1, concurrency=processes) as product:
            throughput.estate(product)
            product.start()
            timings = throughput.measure(product, offset=processes)
        figure("scale", f"completed_per_minute_{processes}_processes", throughput.REQUESTS / timings["all"] * 60, "req/min")
