"""GET /healthz: is the database up, is the broker up, how many workers answer (contract §3)."""

from __future__ import annotations

import logging

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


def _workers() -> int:
    try:
        return len(app.control.ping(timeout=1.0) or [])
    except Exception as error:
        logger.warning("health: workers did not answer: %s", error)
        return 0


def healthz(_request):
    database, broker = _database(), _broker()
    workers = _workers() if broker == "ok" else 0
    healthy = database == "ok" and broker == "ok" and workers > 0
    body = {"status": "ok" if healthy else "down", "database": database, "broker": broker, "workers": workers}
    return JsonResponse(body, status=200 if healthy else 503)


def ready(_request):
    """GET /healthz/ready: the process answers; no backing service is asked (load balancers, and
    the intake benchmark's reference)."""
    return JsonResponse({"status": "ok"})
