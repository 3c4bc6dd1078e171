"""Celery tasks: doorbells that carry an id and call a service. The database row is the job."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_process_init

from connectors.registry import connectors_reset

from . import processing


@worker_process_init.connect
def _fresh_connectors(**_kwargs) -> None:
    """A forked worker child must not share its parent's connector connections."""
    connectors_reset()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def connector_task_run(task_id: int) -> None:
    """Run one connector's part of a request."""
    processing.task_run(task_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def request_finalize(request_id: str) -> None:
    """Build the export or the receipt once every connector has finished."""
    processing.request_finalize_run(request_id)
