"""Doorbells: the Celery messages that tell a worker a job row is waiting.

The database row is the job; a message only carries its id. Messages are published by task name
through the Celery app (`send_task`), so the code that writes the rows never imports the tasks
that run them (dsar/tasks.py imports the workflow, not the other way round). A doorbell that
cannot be published is no loss: the row still says what is to be done, and the sweeper rings again.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

import kombu.exceptions
import redis.exceptions
from celery import Celery
from django.conf import settings

from . import formats
from .celery import app as celery_app

logger = logging.getLogger(__name__)

# The tasks of dsar/tasks.py, by the names the doorbells ring for (and settings route by).
CONNECTOR_TASK_RUN = "dsar.tasks.connector_task_run"
FINAL_STEP_RUN = "dsar.tasks.request_finalize"
EMAILS_SEND = "dsar.tasks.emails_send"
RECIPIENT_NOTIFY = "dsar.tasks.recipient_notify"

Call = tuple[tuple[Any, ...], dict[str, Any]]  # (args, options of `send_task`)
# Every message says the format of its body (dsar/formats.py), read by the task before anything else.
HEADERS = {formats.MESSAGE_HEADER: formats.MESSAGE}


def ring(name: str, *args: Any, **options: Any) -> None:
    """Publish one doorbell for the task `name`, as `ring_all` does."""
    ring_all(name, [(args, options)])


def ring_all(name: str, calls: Sequence[Call], *, app: Celery = celery_app) -> None:
    """Publish doorbells for the task `name` on one producer, in one round trip to the broker
    (kombu's publish batch). A batch that failed may have been delivered in part, so each doorbell
    is rung again alone, with Celery's retries: a job rung twice runs once. If the broker is down
    the committed change stands, and the sweeper rings again later."""
    try:
        with app.producer_or_acquire() as producer:

            def ring_each() -> None:
                for args, options in calls:
                    app.send_task(name, args, producer=producer, headers=HEADERS, **options)

            try:
                with producer.batch():
                    ring_each()
            except kombu.exceptions.BatchPublishError as error:
                logger.warning("a batch of %s doorbells failed (%s); ringing each alone", len(calls), error.__cause__ or error)
                ring_each()
    except (kombu.exceptions.OperationalError, redis.exceptions.RedisError, OSError) as error:
        logger.warning("could not reach the broker for %s%s; the sweeper will ring again: %s", name, [a for a, _ in calls], error)


def backoff_seconds(attempt: int) -> float:
    """How long a job that failed for now waits before its next attempt: exponential backoff
    with equal jitter (half fixed, half random), capped."""
    ceiling = min(settings.DSAR_RETRY_MAX_SECONDS, settings.DSAR_RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
