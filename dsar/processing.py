"""What happens once a request is approved: the fan-out to connectors and the one final step.

Approval creates one ConnectorTask row per configured connector; that row is the job, and the
Celery message sent on commit only carries its id. A worker claims a row with a conditional UPDATE
(queued, or running past its lease), so a duplicate or redelivered message finds nothing to do.
Transient connector errors are retried with exponential backoff and jitter; permanent ones fail
the task and the request. When the last task succeeds, the request row lock decides that exactly
one final step is queued: it builds the export (access) or the receipt (deletion).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import random
import socket
import threading
import time
import traceback
from collections.abc import Iterator

import kombu.exceptions
import redis.exceptions
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from psycopg.types.json import Jsonb

from connectors.base import Identity, PermanentError, TransientError
from connectors.registry import connector_get, connector_names

from . import exports
from .lifecycle import request_lock, request_transition, rows_insert, server_bound_cursor
from .models import ConnectorTask, Export, Request, RequestType, Status, TaskStatus
from .notifications import email_on_commit

logger = logging.getLogger(__name__)
SYSTEM = "system"


# --- Fan-out ---------------------------------------------------------------------------------------


def tasks_create(request: Request) -> None:
    """One task per configured connector, enqueued when the caller's transaction commits."""
    tasks = [ConnectorTask(request=request, connector=name) for name in connector_names()]
    rows_insert(tasks)
    if request.finalize_state:  # the caller holds the row's lock; a request approved for the first time has none
        request.finalize_state = ""
        request.save(update_fields=["finalize_state"])
    tasks_enqueue([(task.pk, task.connector) for task in tasks])


def tasks_retry(request: Request) -> None:
    """Requeue the failed tasks of a locked request, or its final step when every task succeeded."""
    failed = list(request.tasks.filter(status=TaskStatus.FAILED).values_list("pk", "connector"))
    request.tasks.filter(pk__in=[pk for pk, _ in failed]).update(status=TaskStatus.QUEUED, attempts=0, not_before=None, lease_until=None)
    tasks_enqueue(failed)
    if not failed:
        finalize_queue(request)


def time_limit(connector: str) -> int:
    """Seconds one attempt of this connector may run before it is stopped and retried."""
    config = settings.DSAR_CONNECTORS.get(connector, {})
    return config.get("time_limit") or settings.CONNECTOR_TASK_TIME_LIMIT


def task_enqueue(task_id: int, connector: str, *, countdown: float | None = None) -> None:
    tasks_enqueue([(task_id, connector)], countdown=countdown)


def tasks_enqueue(tasks: list[tuple[int, str]], *, countdown: float | None = None) -> None:
    """Send the doorbells for tasks (id, connector) once the current transaction commits, all on
    one producer. Each message carries its connector's time limit: soft (the attempt is retried),
    then hard (the process is replaced)."""
    from .tasks import connector_task_run

    if not tasks:
        return
    calls = [((task_id,), {"countdown": countdown, "soft_time_limit": time_limit(connector), "time_limit": time_limit(connector) + 60})
             for task_id, connector in tasks]
    transaction.on_commit(lambda: _ring_all(connector_task_run, calls))


def ring(task, *args, **options) -> None:
    """Publish one doorbell, as `_ring_all` does."""
    _ring_all(task, [(args, options)])


def _ring_all(task, calls: list[tuple[tuple, dict]]) -> None:
    """Publish doorbells on one producer (a fifth of a publish's cost is acquiring one), several in
    one round trip to Redis (kombu's publish batch). A batch that failed may have been delivered in
    part, so each doorbell is rung again alone, with Celery's retries: a task rung twice runs once.
    If the broker is down the rows still say what is to be done, and the sweeper rings again later:
    the change that was committed stands."""
    try:
        with task.app.producer_or_acquire() as producer:

            def ring_each() -> None:
                for args, options in calls:
                    task.apply_async(args, producer=producer, **options)

            try:
                with producer.batch():
                    ring_each()
            except kombu.exceptions.BatchPublishError as error:
                logger.warning("a batch of %s doorbells failed (%s); ringing each alone", len(calls), error.__cause__ or error)
                ring_each()
    except (kombu.exceptions.OperationalError, redis.exceptions.RedisError, OSError) as error:
        logger.warning("could not reach the broker for %s%s; the sweeper will ring again: %s", task.name, [a for a, _ in calls], error)


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    ceiling = min(settings.DSAR_RETRY_MAX_SECONDS, settings.DSAR_RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


# --- One connector task ------------------------------------------------------------------------------


CLAIM_SQL = """
UPDATE dsar_connectortask AS t
   SET status = 'running', attempts = t.attempts + 1, lease_until = %(lease)s, started_at = %(now)s,
       claimed_by = %(worker)s, updated_at = %(now)s
  FROM dsar_request AS r
 WHERE t.id = %(id)s AND r.id = t.request_id AND r.status = 'processing'
   AND ((t.status = 'queued' AND (t.not_before IS NULL OR t.not_before <= %(now)s))
        OR (t.status = 'running' AND t.lease_until < %(now)s))
RETURNING t.id, t.connector, t.attempts, t.last_error, r.id, r.type, r.email, r.categories
"""


def task_claim(task_id: int) -> ConnectorTask | None:
    """Take a task for this worker, or None if it is done, running elsewhere, or not due yet.

    One conditional UPDATE both claims the row and reads what the run needs: of two workers
    given the same task, exactly one gets a row back.
    """
    now = timezone.now()
    params = {"id": task_id, "now": now, "lease": now + dt.timedelta(seconds=settings.DSAR_TASK_LEASE_SECONDS),
              "worker": f"{socket.gethostname()}:{os.getpid()}"}
    with server_bound_cursor() as cursor:
        cursor.execute(CLAIM_SQL, params)
        row = cursor.fetchone()
    if row is None:
        return None
    task_pk, connector, attempts, last_error, request_pk, request_type, email, categories = row
    # Django's PostgreSQL backend leaves jsonb as text for the JSONField to parse.
    categories = json.loads(categories) if isinstance(categories, str) else categories
    request = Request(pk=request_pk, type=request_type, email=email, categories=categories, status=Status.PROCESSING)
    return ConnectorTask(pk=task_pk, request=request, connector=connector, attempts=attempts, last_error=last_error,
                         status=TaskStatus.RUNNING)


def tasks_sweep(*, now: dt.datetime, limit: int) -> dict[str, int]:
    """Revive work a lost worker or a lost message left behind, at most `limit` rows.

    A task running past its lease (its worker died) or queued long past when it was due (its
    message was lost) is put back in the queue and rung for again; one revived more than
    DSAR_MAX_SWEEPS times fails its request with that reason. A final step stuck the same way is
    queued again. Rows are claimed with SKIP LOCKED, so two sweepers never revive the same row.
    """
    stale_queue = now - dt.timedelta(minutes=settings.DSAR_SWEEP_QUEUED_MINUTES)
    lost = Q(status=TaskStatus.RUNNING, lease_until__lt=now) | (
        Q(status=TaskStatus.QUEUED, updated_at__lt=stale_queue) & (Q(not_before__isnull=True) | Q(not_before__lt=stale_queue))
    )
    revived = failed = finals = 0
    with transaction.atomic():
        tasks = list(
            ConnectorTask.objects.select_for_update(skip_locked=True)
            .filter(lost, request__status=Status.PROCESSING)
            .order_by("updated_at")[:limit]
        )
        for task in tasks:
            if task.sweeps >= settings.DSAR_MAX_SWEEPS:
                failed += 1
                continue
            ConnectorTask.objects.filter(pk=task.pk).update(status=TaskStatus.QUEUED, lease_until=None, not_before=None, sweeps=F("sweeps") + 1)
            task_enqueue(task.pk, task.connector)
            revived += 1
    for task in tasks:
        if task.sweeps >= settings.DSAR_MAX_SWEEPS:
            task_fail(task, f"lost {task.sweeps + 1} times (its worker or message vanished); not trying again")
    with transaction.atomic():
        stuck = Q(finalize_state="running", finalize_lease_until__lt=now) | Q(finalize_state="queued", updated_at__lt=stale_queue)
        for request in Request.objects.select_for_update(skip_locked=True).filter(stuck, status=Status.PROCESSING)[:limit]:
            finalize_queue(request)
            finals += 1
    return {"revived": revived, "failed": failed, "final_steps": finals}


def task_run(task_id: int) -> None:
    """Run one connector task to its end: succeeded, rescheduled, or failed. Safe to call twice."""
    task = task_claim(task_id)
    if task is None:
        logger.info("task %s: nothing to do (finished, running elsewhere, or not due)", task_id)
        return
    request = task.request
    if task.attempts > settings.DSAR_CONNECTOR_MAX_ATTEMPTS:
        task_fail(task, f"gave up after {task.attempts - 1} attempts; last error: {task.last_error or 'worker lost'}")
        return
    logger.info("request %s: %s started (attempt %s)", request.id, task.connector, task.attempts)
    try:
        with lease_kept(RENEW_TASK_SQL, {"id": task.pk, "attempts": task.attempts}):
            connector = connector_get(task.connector)
            identity = Identity(email=request.email)
            categories = frozenset(request.categories)
            if request.type == RequestType.ACCESS:
                staged = exports.stage_gather(connector, identity, categories, request_id=request.id, attempt=task.attempts)
                last = task_succeed(task, counts=staged.counts, output=staged.as_json())
            else:
                receipt = connector.erase(identity, categories)
                last = task_succeed(task, counts=receipt.erased, receipt=exports.receipt_as_dict(receipt))
    except TransientError as error:
        task_reschedule(task, _describe(error))
    except SoftTimeLimitExceeded:
        task_reschedule(task, f"TimeoutError: {task.connector} did not finish within {time_limit(task.connector)}s")
    except (OperationalError, InterfaceError) as error:
        # The product's own database went away mid-task: nothing was committed, so the attempt
        # is retried on a fresh connection (or, if the database is still gone, once the lease ends).
        connection.close()
        logger.warning("request %s: %s lost its database connection: %s", request.id, task.connector, error)
        with contextlib.suppress(OperationalError, InterfaceError):
            task_reschedule(task, f"database connection lost: {_describe(error)}")
    except PermanentError as error:
        task_fail(task, _describe(error))
    except Exception as error:  # a bug or an unexpected system fault: stop, and show staff all of it
        logger.exception("request %s: %s raised an unexpected error", request.id, task.connector)
        task_fail(task, f"{_describe(error)}\n{traceback.format_exc()}")
    else:
        if last and time_limit(task.connector) >= settings.CONNECTOR_TASK_TIME_LIMIT:
            # This worker saw the last task finish, so it takes the final step now rather than
            # ringing for another worker; if it dies first, the sweeper finds the step queued.
            request_finalize_run(request.id)
        elif last:  # under this connector's shorter time limit the final step could be cut short
            _finalize_ring(str(request.id))


RENEW_TASK_SQL = """
UPDATE dsar_connectortask SET lease_until = %(until)s
 WHERE id = %(id)s AND status = 'running' AND attempts = %(attempts)s
"""
RENEW_FINAL_SQL = """
UPDATE dsar_request SET finalize_lease_until = %(until)s
 WHERE id = %(id)s AND finalize_state = 'running' AND finalize_attempts = %(attempts)s
"""


class _LeaseKeeper:
    """One thread per process, with its own database connection, renewing every lease the
    process's work holds: each once a third of DSAR_TASK_LEASE_SECONDS has passed since it was
    taken or last renewed, so no lease held runs out. A worker that dies stops renewing, so its
    leases run out soon and the sweeper revives the work.

    A thread per claim did the same, but starting, waking and joining it cost about 0.25 ms of CPU
    a claim, six claims an access request, for leases that a typical task finishes long before
    renewing once."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a child holds none of its parent's leases

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.leases: dict[object, tuple[str, dict, float]] = {}  # key -> (sql, params, last renewed)
        self.thread: threading.Thread | None = None

    def hold(self, key: object, sql: str, params: dict) -> None:
        with self.lock:
            self.leases[key] = (sql, params, time.monotonic())
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self.thread.start()

    def release(self, key: object) -> None:
        with self.lock:
            self.leases.pop(key, None)

    def _due(self, every: float) -> list[tuple[object, str, dict]]:
        now = time.monotonic()
        with self.lock:
            return [(key, sql, params) for key, (sql, params, renewed) in self.leases.items() if now - renewed >= every]

    def _run(self) -> None:
        lease = settings.DSAR_TASK_LEASE_SECONDS
        while True:
            time.sleep(lease / 12)  # so a lease is renewed between a third and five twelfths of it after the last time
            due = self._due(lease / 3)
            if not due:
                continue
            try:
                with connection.cursor() as cursor:
                    for key, sql, params in due:
                        cursor.execute(sql, {**params, "until": timezone.now() + dt.timedelta(seconds=lease)})
                        with self.lock:
                            if key in self.leases:
                                self.leases[key] = (sql, params, time.monotonic())
            except (OperationalError, InterfaceError) as error:
                logger.warning("could not renew a lease (will try again): %s", error)
            except Exception:
                logger.exception("could not renew a lease (will try again)")  # the thread must outlive any one failure
            finally:
                connection.close()  # renewals are rare: no connection is held idle between them


_keeper = _LeaseKeeper()


@contextlib.contextmanager
def lease_kept(sql: str, params: dict) -> Iterator[None]:
    """Keep a claim's lease renewed while the body runs (`_LeaseKeeper`). The SQL matches the
    claim's attempt, so a lease taken over by another worker is never extended by this one."""
    key = object()
    _keeper.hold(key, sql, params)
    try:
        yield
    finally:
        _keeper.release(key)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


SUCCEED_SQL = """
UPDATE dsar_connectortask
   SET status = 'succeeded', counts = %(counts)s, output = %(output)s, receipt = %(receipt)s,
       lease_until = NULL, finished_at = %(now)s, updated_at = %(now)s
 WHERE id = %(id)s AND status = 'running'
"""
# Under the request's row lock, so of the tasks finishing together exactly one sees no other left.
LAST_ONE_SQL = """
UPDATE dsar_request SET finalize_state = 'queued', updated_at = %(now)s
 WHERE id = %(request)s AND status = 'processing' AND finalize_state = ''
   AND NOT EXISTS (SELECT 1 FROM dsar_connectortask WHERE request_id = %(request)s AND status <> 'succeeded')
RETURNING id
"""


def task_succeed(task: ConnectorTask, *, counts: dict, output: dict | None = None, receipt: dict | None = None) -> bool:
    """Record a task's result. Returns True when it was the last of its request's tasks, in which
    case the final step is marked queued, decided under the request's row lock."""
    params = {"id": task.pk, "request": task.request_id, "now": timezone.now(), "counts": Jsonb(counts),
              "output": Jsonb(output) if output is not None else None, "receipt": Jsonb(receipt) if receipt is not None else None}
    with transaction.atomic(), server_bound_cursor() as cursor:
        cursor.execute("SELECT 1 FROM dsar_request WHERE id = %(request)s FOR UPDATE", params)
        cursor.execute(SUCCEED_SQL, params)
        if not cursor.rowcount:
            logger.warning("request %s: %s finished but its task was no longer running", task.request_id, task.connector)
            return False
        cursor.execute(LAST_ONE_SQL, params)
        last = cursor.fetchone() is not None
    logger.info("request %s: %s succeeded", task.request_id, task.connector)
    return last


def task_reschedule(task: ConnectorTask, error: str) -> None:
    """A transient error: try again after a backoff, or give up after the last attempt."""
    if task.attempts >= settings.DSAR_CONNECTOR_MAX_ATTEMPTS:
        task_fail(task, f"gave up after {task.attempts} attempts; last error: {error}")
        return
    delay = backoff_seconds(task.attempts)
    now = timezone.now()
    with transaction.atomic():
        updated = ConnectorTask.objects.filter(pk=task.pk, status=TaskStatus.RUNNING).update(
            status=TaskStatus.QUEUED,
            not_before=now + dt.timedelta(seconds=delay),
            lease_until=None,
            last_error=error,
            last_error_at=now,
        )
        if updated:
            task_enqueue(task.pk, task.connector, countdown=delay)
    logger.warning("request %s: %s will retry in %.1fs: %s", task.request_id, task.connector, delay, error.splitlines()[0])


def task_fail(task: ConnectorTask, error: str) -> None:
    """A permanent error: the task fails, and with it the request, with the reason shown to staff."""
    with transaction.atomic():
        request = request_lock(task.request_id)
        ConnectorTask.objects.filter(pk=task.pk).update(
            status=TaskStatus.FAILED, lease_until=None, last_error=error, last_error_at=timezone.now(), finished_at=timezone.now()
        )
        if request.status == Status.PROCESSING:
            request_fail(request, f"{task.connector}: {error.splitlines()[0]}")
    logger.error("request %s: %s failed: %s", task.request_id, task.connector, error.splitlines()[0])


def request_fail(request: Request, reason: str) -> None:
    """processing -> failed, with the reason; staff can retry. Call with the request locked."""
    request.failure_reason = reason
    request.finalize_state = "" if request.finalize_state != "done" else request.finalize_state
    request_transition(request, "failed", actor=SYSTEM, note=reason, update_fields=["failure_reason", "finalize_state"])
    email_on_commit(request, "failed")


# --- The final step ---------------------------------------------------------------------------------


def finalize_queue(request: Request) -> None:
    """Mark the final step queued on a locked request and ring for it on commit."""
    request.finalize_state = "queued"
    request.save(update_fields=["finalize_state", "updated_at"])
    request_id = str(request.pk)
    transaction.on_commit(lambda: _finalize_ring(request_id))


def _finalize_ring(request_id: str) -> None:
    from .tasks import request_finalize

    ring(request_finalize, request_id)


FINALIZE_CLAIM_SQL = """
UPDATE dsar_request
   SET finalize_state = 'running', finalize_lease_until = %(lease)s, finalize_attempts = finalize_attempts + 1
 WHERE id = %(id)s AND status = 'processing'
   AND (finalize_state = 'queued' OR (finalize_state = 'running' AND finalize_lease_until < %(now)s))
RETURNING *
"""


def finalize_claim(request_id) -> Request | None:
    """Take the final step for this worker, or None if it is done or running elsewhere: one
    conditional UPDATE claims the row and returns it whole, as a model."""
    now = timezone.now()
    params = {"id": request_id, "now": now, "lease": now + dt.timedelta(seconds=settings.DSAR_TASK_LEASE_SECONDS)}
    return next(iter(Request.objects.raw(FINALIZE_CLAIM_SQL, params)), None)


def request_finalize_run(request_id) -> None:
    """Build the export or the deletion receipt and complete the request. Safe to call twice."""
    request = finalize_claim(request_id)
    if request is None:
        logger.info("request %s: final step has nothing to do", request_id)
        return
    # Written out: the ORM compiled this query on every final step, two thirds of loading the tasks.
    tasks = list(ConnectorTask.objects.raw("SELECT * FROM dsar_connectortask WHERE request_id = %s ORDER BY connector", [request.pk]))
    # An earlier run of this step that died mid-write left a partial archive; no Export row points
    # at it (the row is written only on completion), and this run holds the step's lease.
    exports.storage_delete_tree(f"exports/{request.pk}")
    if request.type == RequestType.DELETION:
        _complete(request, result=exports.receipt_merge(tasks))
        return
    try:
        with lease_kept(RENEW_FINAL_SQL, {"id": request.pk, "attempts": request.finalize_attempts}):
            archive = exports.archive_build(request, tasks)
    except Exception as error:
        logger.exception("request %s: the export could not be written", request.id)
        with transaction.atomic():
            locked = request_lock(request.id)
            if locked.status == Status.PROCESSING:
                request_fail(locked, f"export: {_describe(error)}")
        return
    try:
        _complete(request, result={"categories": archive.categories, "bytes": archive.bytes}, archive=archive)
    except BaseException:
        # Not recorded (the database went away, say): the archive is nobody's; the sweeper runs
        # the final step again once the lease ends.
        exports.storage_delete(archive.path)
        raise


# The request's row locked, and what says whether this run's final step still stands.
COMPLETE_LOCK_SQL = """
SELECT r.status, r.finalize_state, EXISTS (SELECT 1 FROM dsar_export AS e WHERE e.request_id = r.id)
  FROM dsar_request AS r
 WHERE r.id = %(id)s
   FOR UPDATE OF r
"""


def _complete(request: Request, *, result: dict, archive: exports.Archive | None = None) -> None:
    """Record the final step's result on `request` (the row as this step claimed it), unless the
    step was taken over and finished by another worker meanwhile."""
    now = timezone.now()
    with transaction.atomic():
        with server_bound_cursor() as cursor:
            cursor.execute(COMPLETE_LOCK_SQL, {"id": request.pk})
            row = cursor.fetchone()
        if row is None:
            raise Request.DoesNotExist(f"request {request.pk} no longer exists")
        status, finalize_state, exported = row
        if status != Status.PROCESSING or finalize_state != "running" or exported:
            logger.warning("request %s: another worker completed it first; discarding this result", request.id)
            if archive is not None:
                transaction.on_commit(lambda: exports.storage_delete(archive.path))
            return
        # The row as this step claimed it, still processing and this step's: only the fields written
        # below change, the rest (which staff may have changed since the claim, a deadline say) stays.
        locked = request
        export = None
        if archive is not None:
            export = Export(
                request=locked,
                path=archive.path,
                bytes=archive.bytes,
                sha256=archive.sha256,
                created_at=now,
                expires_at=now + dt.timedelta(days=settings.DSAR_EXPORT_TTL_DAYS),
                released_at=None if settings.DSAR_REVIEW_BEFORE_RELEASE else now,
            )
            rows_insert([export])
        locked.result, locked.completed_at, locked.finalize_state = result, now, "done"
        request_transition(locked, "completed", actor=SYSTEM, update_fields=["result", "completed_at", "finalize_state"])
        if export is None:
            email_on_commit(locked, "completed")
        elif export.released_at is not None:
            email_on_commit(locked, "completed", download_url=exports.download_url(export), expires_at=export.expires_at)
        # else: staff release it after review (services.request_release), which sends the email.
        transaction.on_commit(lambda: exports.stage_discard(locked.id))
    logger.info("request %s: completed", request.id)
