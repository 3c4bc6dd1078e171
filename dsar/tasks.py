"""Celery tasks: doorbells that carry an id and call a service. The database row is the job.

This module imports the workflow; the workflow never imports it, and rings for these tasks by
name (dsar/doorbell.py). Each task first reads the format of its message's body (dsar/formats.py)
and refuses one this release does not read, before doing anything: the row it names stays as it
was, and the sweeper rings for it again, for a worker of a release that reads it.
"""

from __future__ import annotations

import gc
import logging

from celery import shared_task
from celery.signals import task_prerun, worker_init, worker_process_init
from django.db import close_old_connections

from connectors.registry import connectors_import, connectors_reset

from . import exports, formats, jobs, notifications, processing, recipients
from .models import ConnectorTask, Request

logger = logging.getLogger(__name__)


@worker_init.connect
def _import_connectors(**_kwargs) -> None:
    """Import every connector's code, and prepare the export's report, once in the worker's
    parent before it forks its pool: children share them instead of each importing and
    compiling them (seconds of CPU, and memory) on first use."""
    connectors_import()
    exports.report_prepare()


@worker_process_init.connect
def _fresh_connectors(**_kwargs) -> None:
    """A forked worker child must not share its parent's connector connections."""
    connectors_reset()


@worker_init.connect
@worker_process_init.connect
def _startup_objects_frozen(**_kwargs) -> None:
    """What the worker has loaded lives as long as it does: the cyclic garbage collector need never
    walk it again (as dsar/wsgi.py does for the web). Once in the parent, once more in each child
    for what the parent made after it, before forking."""
    gc.freeze()


@task_prerun.connect
def _usable_connection(**_kwargs) -> None:
    """Before each task, as before each web request: drop a connection that failed or outlived
    CONN_MAX_AGE, and health-check the one kept at its first use."""
    close_old_connections()


def _message_readable(task) -> None:
    """FormatUnknown unless this release reads the body of the message `task` runs for: the
    `dsar_format` header, absent from what the release before format versions sent (format 1)."""
    formats.format_check(f"the message for {task.name}{list(task.request.args or [])}", task.request.get(formats.MESSAGE_HEADER),
                         formats.MESSAGE_READS)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def connector_task_run(self, task_id: int) -> None:
    """Run one connector's part of a request."""
    _message_readable(self)
    try:
        processing.task_run(task_id)
    except (Request.DoesNotExist, ConnectorTask.DoesNotExist):
        logger.warning("task %s: its request no longer exists; nothing to do", task_id)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def request_finalize(self, request_id: str) -> None:
    """Build the export or the receipt once every connector has finished."""
    _message_readable(self)
    try:
        processing.final_step_run(request_id)
    except Request.DoesNotExist:
        logger.warning("request %s: no longer exists; nothing to finalize", request_id)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def emails_send(self) -> None:
    """Send the emails that are due (rung once a burst by dsar/notifications.py)."""
    _message_readable(self)
    notifications.emails_send_rung()


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def recipient_notify(self, notification_id: str) -> None:
    """Tell one recipient of a person's data about its erasure."""
    _message_readable(self)
    recipients.recipient_notification_send(notification_id)


@shared_task(bind=True, acks_late=True)
def job(self, name: str) -> None:
    """A scheduled job, rung by beat (its schedule's rows send no format header: format 1); the
    job's own lock keeps concurrent runs harmless."""
    _message_readable(self)
    jobs.job_run(name)
