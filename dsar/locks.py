"""Every row lock the product takes, and the one order it takes them in.

A transaction that needs several locks takes them in this order, and only in this order, so two
transactions never wait on each other in a circle:

1. a scheduled job's advisory lock (`job_lock`), held across the job's transactions;
2. a staff member's user row (`staff_user_lock`): staff management, which locks nothing else;
3. the request row (`request_lock`, or `rows_lock_free` for a batch of requests; a task's result
   takes it as the first of its statements, `orm_bypass.task_result_record`);
4. its connector tasks, locked by the UPDATE that records a task's result, taken with the
   request's row locked;
5. its final step (`final_step_lock`, or the UPDATE that records its end, taken with the
   request's row locked);
6. its export (`export_lock`);
7. last, at commit and taken by the database itself: the audit chain's advisory lock
   (`AUDIT_CHAIN_LOCK`, the audit seal trigger of migration 0012).

A batch of outgoing emails (`rows_lock_free`) is locked by the sender in a transaction that locks
nothing else; so is a recipient notification, by the worker sending it (`rows_lock_free`) or by
staff acting on it (`recipient_notification_lock`). A worker's claim on a job row is not a lock in
this sense: it is one conditional UPDATE of that one row, in a transaction of its own, so it never
holds one row while waiting for another.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import QuerySet

from .models import Export, FinalStep, RecipientNotification, Request


class JobBusy(Exception):
    """Another run of the same job holds its lock."""


@contextlib.contextmanager
def job_lock(name: str) -> Iterator[None]:
    """Hold the scheduled job `name`'s advisory lock for the duration, or raise JobBusy at once.
    A session lock, not a transaction's: the job commits many transactions while it holds it."""
    key = zlib.crc32(f"dsar.job.{name}".encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        if not cursor.fetchone()[0]:
            raise JobBusy(name)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def staff_user_lock(user_id: Any):
    """Lock a staff member's user row until the transaction ends, and return it."""
    return get_user_model().objects.select_for_update().get(pk=user_id, is_staff=True)


def request_lock(request_id: Any) -> Request:
    """Lock a request's row until the transaction ends, and return it as it is now.
    Raises Request.DoesNotExist when there is no such request."""
    return Request.objects.select_for_update().get(pk=request_id)


def rows_lock_free(rows: QuerySet, *, limit: int) -> list:
    """Lock at most `limit` of `rows` (the queryset's own table only, not those it joins), skipping
    rows another transaction holds: for batches, which come back for the skipped ones next time."""
    return list(rows.select_for_update(skip_locked=True, of=("self",))[:limit])


def final_step_lock(request_id: Any) -> FinalStep | None:
    """Lock a request's final step (the request locked first), or None when it has none yet."""
    return FinalStep.objects.select_for_update().filter(request_id=request_id).first()


def export_lock(request_id: Any) -> Export | None:
    """Lock a request's export (the request locked first), or None when it has none."""
    return Export.objects.select_for_update().filter(request_id=request_id).first()


def recipient_notification_lock(notification_id: Any) -> RecipientNotification | None:
    """Lock a recipient notification (and nothing else: not its request), with its request read;
    None when there is no such notification."""
    return RecipientNotification.objects.select_for_update(of=("self",)).select_related("request").filter(pk=notification_id).first()
