"""GET /healthz: is the database up, is the broker up, how many workers answer (contract §3).

Pinging the workers takes a second (the ping waits its whole timeout for replies), and a web
thread held that long per /healthz call lets a few clients polling it slow every page down. So the
worker count is cached for WORKERS_CACHE_SECONDS, per process (each web worker process keeps its
own), and refreshed single-flight: at most one ping runs at a time in a process. While it runs,
other callers answer the last known count without waiting; only before any count is known (a
process's first /healthz) do they wait for that one ping's result, so /healthz never answers a
count nobody measured. A count of 0 (no worker replied, or the ping failed) is cached too, so a
dead tier is not pinged on every call either.
"""

from __future__ import annotations

import logging
import threading
from time import monotonic

from django.db import connection
from django.http import JsonResponse

from .celery import app

logger = logging.getLogger(__name__)


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as error:
        logger.warning("health: database down: %s", error)
        return "down"


def _broker() -> str:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as error:
        logger.warning("health: broker down: %s", error)
        return "down"


WORKERS_CACHE_SECONDS = 5.0


def _ping() -> int:
    try:
        return len(app.control.ping(timeout=1.0) or [])
    except Exception as error:
        logger.warning("health: workers did not answer: %s", error)
        return 0


class WorkerCount:
    """The last worker count this process measured, and when; refreshed by one caller at a time.

    /healthz uses the module's one instance, `worker_count`; a new instance is a process that has
    not measured yet."""

    def __init__(self) -> None:
        self._refreshing = threading.Lock()
        self._known: tuple[int, float] | None = None  # (count, monotonic time measured); one tuple, swapped whole

    def _fresh(self, known: tuple[int, float] | None) -> bool:
        return known is not None and monotonic() - known[1] < WORKERS_CACHE_SECONDS

    def get(self) -> int:
        """The worker count, pinging the workers only when the last count is older than
        WORKERS_CACHE_SECONDS and no other caller is pinging already."""
        known = self._known
        if self._fresh(known):
            return known[0]
        # Once a count is known, a caller finding a ping in flight answers that count at once.
        if not self._refreshing.acquire(blocking=known is None):
            return known[0]
        try:
            known = self._known  # the caller we waited for may have just measured it
            if not self._fresh(known):
                count = _ping()
                known = self._known = (count, monotonic())
            return known[0]
        finally:
            self._refreshing.release()


worker_count = WorkerCount()


def healthz(_request):
    database, broker = _database(), _broker()
    workers = worker_count.get() if broker == "ok" else 0
    healthy = database == "ok" and broker == "ok" and workers > 0
    body = {"status": "ok" if healthy else "down", "database": database, "broker": broker, "workers": workers}
    return JsonResponse(body, status=200 if healthy else 503)


def ready(_request):
    """GET /healthz/ready: the process answers; no backing service is asked (load balancers, and
    the intake benchmark's reference)."""
    return JsonResponse({"status": "ok"})
