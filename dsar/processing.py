"""What happens once a request is approved: the fan-out to connectors and the one final step.

Approval creates one ConnectorTask row per configured connector; that row is the job, and the
doorbell rung on commit only carries its id (dsar/doorbell.py). A worker claims a row with a
conditional UPDATE (queued and due, or running past its lease), so a duplicate or redelivered
message finds nothing to do, and keeps the claim's lease renewed while it runs. Transient connector
errors are retried with backoff; permanent ones fail the task and the request.

When the last task succeeds, the request's row lock decides that exactly one FinalStep is created:
a job like the others (claimed, leased, swept, retried) that builds the export (access) or merges
the receipts (deletion), then completes the request. Locks are taken through dsar/locks.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from connectors.base import Identity, PermanentError, TransientError
from connectors.registry import (connector_names, connector_provides, connector_time_limit, connector_waits_for,
                                 connector_worked_by_staff)

from . import doorbell, exports, formats, locks, orm_bypass, recipients
from .lifecycle import request_transition
from .models import ConnectorTask, Export, FinalStep, Request, RequestType, Status, TaskStatus
from .notifications import email_on_commit
from .system_checks import connector_for_work

logger = logging.getLogger(__name__)
SYSTEM = "system"


# --- Fan-out ---------------------------------------------------------------------------------------


def tasks_create(request: Request) -> None:
    """One task per configured connector for a locked request, but the systems staff refused and
    those referred to the organisation that controls their data, rung for once the transaction
    commits. A system found by identities other systems find waits for them (`tasks_wake`); a
    system with no API waits with staff, who work it by hand (`services.manual_task_gather`,
    `manual_task_erase`), and is never rung for."""
    tasks = ConnectorTask.objects.bulk_create([
        ConnectorTask(request=request, connector=name, status=TaskStatus.WAITING if connector_waits_for(name) else task_ready_status(name))
        for name in systems_answering(request.refusals, request.referred_systems)])
    tasks_ring([task for task in tasks if task.status == TaskStatus.QUEUED])


def systems_answering(refusals: Iterable[Mapping[str, str]], referred: Iterable[Mapping[str, Any]] = ()) -> list[str]:
    """The configured systems that answer a request, in their order: all but those staff refused
    (`refusals`, a request's) and those referred to the organisation managing the account, whose
    data it is (`referred`, a request's `referred_systems`): a referral is not a refusal, but
    neither is answered here."""
    left_out = {refusal["system"] for refusal in refusals if "system" in refusal} | {part["system"] for part in referred}
    return [name for name in connector_names() if name not in left_out]


def task_ready_status(connector: str) -> TaskStatus:
    """Where a task goes once nothing holds it back: to staff for a system they work by hand, no
    worker being able to run it; otherwise to the queue."""
    return TaskStatus.WITH_STAFF if connector_worked_by_staff(connector) else TaskStatus.QUEUED


def tasks_wake(request_id, *, now: dt.datetime) -> None:
    """Queue (or hand to staff) the waiting tasks of a request whose systems' providers have all
    succeeded; under the request's lock, in the transaction that recorded a provider's result, so
    none is woken twice or left asleep."""
    tasks = list(ConnectorTask.objects.filter(request_id=request_id).only("pk", "connector", "status"))
    done = {task.connector for task in tasks if task.status == TaskStatus.SUCCEEDED}
    ready = [task for task in tasks if task.status == TaskStatus.WAITING and connector_waits_for(task.connector) <= done]
    queued = [task for task in ready if task_ready_status(task.connector) == TaskStatus.QUEUED]
    for status, woken in ((TaskStatus.QUEUED, queued), (TaskStatus.WITH_STAFF, [task for task in ready if task not in queued])):
        if woken:
            ConnectorTask.objects.filter(pk__in=[task.pk for task in woken], status=TaskStatus.WAITING).update(status=status, updated_at=now)
    tasks_ring(queued)


def task_identity(request: Request, connector: str) -> Identity:
    """Who the request is about, with the identities the systems this one waits for found."""
    ids: dict[str, list] = {}
    if waits_for := connector_waits_for(connector):
        found = ConnectorTask.objects.filter(request_id=request.id, connector__in=waits_for, status=TaskStatus.SUCCEEDED)
        for identities in found.exclude(identities=None).values_list("identities", flat=True):
            for name, values in identities.items():
                ids.setdefault(name, []).extend(value for value in values if value not in ids[name])
    return Identity(email=request.email, ids=ids)


def tasks_retry(request: Request) -> None:
    """Requeue the failed tasks of a locked request, or its final step when every task succeeded."""
    failed = list(request.tasks.filter(status=TaskStatus.FAILED))
    request.tasks.filter(pk__in=[task.pk for task in failed]).update(
        status=TaskStatus.QUEUED, attempts=0, not_before=None, lease_until=None, updated_at=timezone.now())
    tasks_ring(failed)
    if not failed:
        final_step_requeue(request)


def time_limit(connector: str) -> int:
    """Seconds one attempt of this connector may run before it is stopped and retried."""
    return connector_time_limit(connector) or settings.CONNECTOR_TASK_TIME_LIMIT


def tasks_ring(tasks: Iterable[ConnectorTask], *, countdown: float | None = None) -> None:
    """Ring for `tasks` once the current transaction commits, all in one round trip. Each doorbell
    carries its connector's time limit: soft (the attempt is retried), then hard (the process is
    replaced)."""
    calls = [((task.pk,), {"countdown": countdown, "soft_time_limit": time_limit(task.connector),
                           "time_limit": time_limit(task.connector) + 60}) for task in tasks]
    if calls:
        transaction.on_commit(lambda: doorbell.ring_all(doorbell.CONNECTOR_TASK_RUN, calls))


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- One connector task ------------------------------------------------------------------------------


def task_claim(task_id: int) -> ConnectorTask | None:
    """Take a task for this worker, or None if it is done, running elsewhere, or not due yet: one
    conditional UPDATE (queued and due, or running past its lease, of a request still processing)
    claims the row, so of two workers given the same task exactly one gets it."""
    now = timezone.now()
    return orm_bypass.task_claim(task_id, now=now, lease_until=now + dt.timedelta(seconds=settings.DSAR_TASK_LEASE_SECONDS),
                                 worker=_worker())


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
        with lease_kept(task):
            connector = connector_for_work(task)
            identity = task_identity(request, task.connector)
            categories = frozenset(request.categories)
            # Found before an erasure takes the rows that hold them.
            found = connector.identities_found(identity) if connector_provides(task.connector) else None
            if request.type == RequestType.ACCESS:
                staged = exports.stage_gather(connector, identity, categories, request_id=request.id, attempt=task.attempts,
                                              period=exports.request_period(request))
                last = task_succeed(task, counts=staged.counts, output=staged.as_json(), identities=found)
            else:
                receipt = connector.erase(identity, categories)
                last = task_succeed(task, counts=receipt.erased, receipt=exports.receipt_as_dict(receipt), identities=found)
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
            final_step_run(request.id)
        elif last:  # under this connector's shorter time limit the final step could be cut short
            final_step_ring(request.id)


def task_succeed(task: ConnectorTask, *, counts: dict, output: dict | None = None, receipt: dict | None = None,
                 identities: dict | None = None) -> bool:
    """Record a task's result (with the identities its system found for others, which may wake the
    tasks waiting for them). Returns True when it was the last of its request's tasks to succeed, in
    which case the request's final step has been created, decided under the request's lock: of tasks
    finishing together, exactly one sees none left."""
    now = timezone.now()
    with transaction.atomic():
        recorded, last = orm_bypass.task_result_record(task.pk, attempt=task.attempts, request_id=task.request_id, counts=counts,
                                                       output=output, receipt=receipt, identities=identities, now=now)
        if not recorded:
            _claim_lost(task, "finished")
            return False
        if identities is not None and not last:
            tasks_wake(task.request_id, now=now)
    logger.info("request %s: %s succeeded", task.request_id, task.connector)
    return last


def task_reschedule(task: ConnectorTask, error: str) -> None:
    """A transient error: try again after a backoff, or give up after the last attempt."""
    if task.attempts >= settings.DSAR_CONNECTOR_MAX_ATTEMPTS:
        task_fail(task, f"gave up after {task.attempts} attempts; last error: {error}")
        return
    delay = doorbell.backoff_seconds(task.attempts)
    now = timezone.now()
    with transaction.atomic():
        rescheduled = _still_claimed(task).update(
            status=TaskStatus.QUEUED, not_before=now + dt.timedelta(seconds=delay), lease_until=None,
            last_error=error, last_error_at=now, updated_at=now)
        if not rescheduled:
            _claim_lost(task, f"was to retry after {error.splitlines()[0]}")
            return
        tasks_ring([task], countdown=delay)
    logger.warning("request %s: %s will retry in %.1fs: %s", task.request_id, task.connector, delay, error.splitlines()[0])


def task_fail(task: ConnectorTask, error: str) -> None:
    """A permanent error: the task fails, and with it the request, with the reason shown to staff."""
    now = timezone.now()
    with transaction.atomic():
        request = locks.request_lock(task.request_id)
        if not _still_claimed(task).update(
                status=TaskStatus.FAILED, lease_until=None, last_error=error, last_error_at=now, finished_at=now, updated_at=now):
            _claim_lost(task, f"failed with {error.splitlines()[0]}")
            return
        if request.status == Status.PROCESSING:
            request_fail(request, f"{task.connector}: {error.splitlines()[0]}")
    logger.error("request %s: %s failed: %s", task.request_id, task.connector, error.splitlines()[0])


def _still_claimed(task: ConnectorTask) -> QuerySet:
    """The task's row while it is still this worker's claim: running, as the attempt it was claimed
    as. A worker whose lease ran out and whose task was claimed again records nothing over the new
    attempt's."""
    return ConnectorTask.objects.filter(pk=task.pk, status=TaskStatus.RUNNING, attempts=task.attempts)


def _claim_lost(task: ConnectorTask, outcome: str) -> None:
    logger.warning("request %s: %s %s but its task was no longer running as its attempt %s",
                   task.request_id, task.connector, outcome, task.attempts)


def request_fail(request: Request, reason: str) -> None:
    """processing -> failed, with the reason; staff can retry. Call with the request locked."""
    request.failure_reason = reason
    request_transition(request, "failed", actor=SYSTEM, note=reason, update_fields=["failure_reason"])
    email_on_commit(request, "failed")


# --- Lost work -----------------------------------------------------------------------------------------


def tasks_sweep(*, now: dt.datetime, limit: int) -> dict[str, int]:
    """Revive work a lost worker or a lost message left behind, at most `limit` rows of each kind.

    A connector task or final step running past its lease (its worker died), or queued long past
    when it was due (its message was lost, or it waits behind a long queue), is put back in the
    queue and rung for again. Only deaths count: a job whose worker died under it
    DSAR_MAX_SWEEPS times already (work that kills its worker) fails its request with that reason
    instead, while work that only waits is rung for as long as it waits: a second doorbell is
    harmless, as a claim takes a job once.
    """
    stale = now - dt.timedelta(minutes=settings.DSAR_SWEEP_QUEUED_MINUTES)
    running_lost = Q(status=TaskStatus.RUNNING, lease_until__lt=now)
    tasks = _lost_jobs_sweep(
        ConnectorTask.objects.filter(
            running_lost | Q(status=TaskStatus.QUEUED, updated_at__lt=stale) & (Q(not_before__isnull=True) | Q(not_before__lt=stale))),
        now=now, limit=limit, name=lambda task: task.connector, ring=lambda task: tasks_ring([task]))
    steps = _lost_jobs_sweep(
        FinalStep.objects.filter(running_lost | Q(status=TaskStatus.QUEUED, updated_at__lt=stale)),
        now=now, limit=limit, name=lambda step: "final step", ring=lambda step: final_step_ring_on_commit(step.request_id))
    return {"revived": tasks[0], "failed": tasks[1], "final_steps": steps[0], "final_steps_failed": steps[1]}


def _lost_jobs_sweep(lost: QuerySet, *, now: dt.datetime, limit: int, name, ring) -> tuple[int, int]:
    """Revive or fail the `lost` job rows (connector tasks or final steps) of processing requests;
    returns how many were revived and how many failed. Each under its request's lock, with a
    conditional UPDATE: a row claimed or renewed since it was found is left alone."""
    revived = failed = 0
    # The longest untouched first; among rows touched at once, the first made (a stable order).
    for job in lost.filter(request__status=Status.PROCESSING).order_by("updated_at", "pk")[:limit]:
        with transaction.atomic():
            request = locks.request_lock(job.request_id)
            still_lost = lost.filter(pk=job.pk)
            if request.status != Status.PROCESSING:
                continue
            died = job.status == TaskStatus.RUNNING
            if died and job.sweeps >= settings.DSAR_MAX_SWEEPS:
                reason = f"its worker died under it {job.sweeps + 1} times; not trying again"
                if still_lost.update(status=TaskStatus.FAILED, lease_until=None, last_error=reason, last_error_at=now,
                                     finished_at=now, updated_at=now):
                    request_fail(request, f"{name(job)}: {reason}")
                    failed += 1
            elif still_lost.update(status=TaskStatus.QUEUED, lease_until=None, sweeps=F("sweeps") + int(died), updated_at=now):
                ring(job)
                revived += 1
    return revived, failed


# --- Leases --------------------------------------------------------------------------------------------


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
        self.leases: dict[object, tuple[ConnectorTask | FinalStep, float]] = {}  # key -> (the claimed job, last renewed)
        self.thread: threading.Thread | None = None

    def hold(self, key: object, job: ConnectorTask | FinalStep) -> None:
        with self.lock:
            self.leases[key] = (job, time.monotonic())
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self.thread.start()

    def release(self, key: object) -> None:
        with self.lock:
            self.leases.pop(key, None)

    def _due(self, every: float) -> list[tuple[object, ConnectorTask | FinalStep]]:
        now = time.monotonic()
        with self.lock:
            return [(key, job) for key, (job, renewed) in self.leases.items() if now - renewed >= every]

    def _run(self) -> None:
        lease = settings.DSAR_TASK_LEASE_SECONDS
        while True:
            time.sleep(lease / 12)  # so a lease is renewed between a third and five twelfths of it after the last time
            due = self._due(lease / 3)
            if not due:
                continue
            try:
                for key, job in due:
                    claimed = type(job).objects.filter(pk=job.pk, status=TaskStatus.RUNNING, attempts=job.attempts)
                    claimed.update(lease_until=timezone.now() + dt.timedelta(seconds=lease))
                    with self.lock:
                        if key in self.leases:
                            self.leases[key] = (job, time.monotonic())
            except (OperationalError, InterfaceError) as error:
                logger.warning("could not renew a lease (will try again): %s", error)
            except Exception:
                logger.exception("could not renew a lease (will try again)")  # the thread must outlive any one failure
            finally:
                connection.close()  # this thread's own connection: renewals are rare, none is held idle between them


_keeper = _LeaseKeeper()


@contextlib.contextmanager
def lease_kept(job: ConnectorTask | FinalStep) -> Iterator[None]:
    """Keep a claimed job's lease renewed while the body runs: its row as this claim left it
    (running, with this claim's attempt), so a lease taken over by another worker is never extended
    by this one."""
    key = object()
    _keeper.hold(key, job)
    try:
        yield
    finally:
        _keeper.release(key)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


# --- The final step ---------------------------------------------------------------------------------


def final_step_requeue(request: Request) -> None:
    """Queue a locked request's final step again (a retry), and ring for it on commit."""
    step = locks.final_step_lock(request.pk)
    if step is None:
        FinalStep.objects.create(request=request)
    else:
        step.status, step.lease_until, step.sweeps = TaskStatus.QUEUED, None, 0
        step.save(update_fields=["status", "lease_until", "sweeps", "updated_at"])
    final_step_ring_on_commit(request.pk)


def final_step_ring(request_id) -> None:
    """Ring for a request's final step now."""
    doorbell.ring(doorbell.FINAL_STEP_RUN, str(request_id))


def final_step_ring_on_commit(request_id) -> None:
    """Ring for a request's final step once the current transaction commits."""
    transaction.on_commit(lambda: final_step_ring(request_id))


def final_step_claim(request_id) -> FinalStep | None:
    """Take a request's final step for this worker, or None if it is done, running elsewhere, or
    its request no longer processing: one conditional UPDATE, as a connector task is claimed."""
    now = timezone.now()
    return orm_bypass.final_step_claim(request_id, now=now, lease_until=now + dt.timedelta(seconds=settings.DSAR_TASK_LEASE_SECONDS),
                                       worker=_worker())


def final_step_results_readable(tasks: list[ConnectorTask]) -> None:
    """FormatUnknown unless this release reads every result the request's tasks recorded (their
    rows and what they staged): asked before the step is claimed, so a step a newer release must
    take is left queued, untouched, for the sweeper to ring for again."""
    for task in tasks:
        formats.format_check(f"the result of {task.connector} for request {task.request_id}", task.result_format,
                             formats.TASK_RESULT_READS)
        formats.format_check(f"the work {task.connector} staged for request {task.request_id}", (task.output or {}).get("format"),
                             formats.STAGED_READS)


def final_step_run(request_id) -> None:
    """Build the export or the deletion receipt and complete the request. Safe to call twice;
    FormatUnknown, having changed nothing, when a newer release recorded some task's result."""
    # The tasks have all ended (the step is rung after the last), so they are read once, first.
    tasks = list(ConnectorTask.objects.filter(request_id=request_id).order_by("connector"))
    final_step_results_readable(tasks)
    step = final_step_claim(request_id)
    if step is None:
        logger.info("request %s: final step has nothing to do", request_id)
        return
    request = step.request
    # An earlier run of this step that died mid-write left a partial archive; no Export row points
    # at it (the row is written only on completion), and this run holds the step's lease.
    exports.storage_delete_tree(f"exports/{request.pk}")
    if request.type == RequestType.DELETION:
        referred = exports.referral_as_dict(request) if request.referred_systems else None
        final_step_complete(step, result=exports.receipt_merge(tasks, refusals=request.refusals, referred=referred))
        return
    try:
        with lease_kept(step):
            archive = exports.archive_build(request, tasks)
    except Exception as error:
        logger.exception("request %s: the export could not be written", request.id)
        final_step_fail(step, f"export: {_describe(error)}")
        return
    try:
        final_step_complete(step, result={"categories": archive.categories, "bytes": archive.total_bytes}, archive=archive)
    except BaseException:
        # Not recorded (the database went away, say): the archive is nobody's; the sweeper runs
        # the final step again once the lease ends.
        for path in archive.paths:
            exports.storage_delete(path)
        raise


def _final_step_end(step: FinalStep, status: TaskStatus, *, now: dt.datetime, **fields) -> Request | None:
    """Lock the step's request, then end the step with `status` (and `fields`) by a conditional
    UPDATE, if it still runs under this claim and its request is processing. The request, locked;
    or None when another worker took the step over meanwhile (and perhaps finished it)."""
    request = locks.request_lock(step.request_id)
    if request.status != Status.PROCESSING:
        return None
    ended = FinalStep.objects.filter(pk=step.pk, status=TaskStatus.RUNNING, attempts=step.attempts).update(
        status=status, lease_until=None, finished_at=now, updated_at=now, **fields)
    return request if ended else None


def final_step_fail(step: FinalStep, reason: str) -> None:
    """The final step failed for good: it and its request fail with the reason; staff can retry."""
    now = timezone.now()
    with transaction.atomic():
        request = _final_step_end(step, TaskStatus.FAILED, now=now, last_error=reason, last_error_at=now)
        if request is not None:
            request_fail(request, reason)


def final_step_complete(step: FinalStep, *, result: dict, archive: exports.Archive | None = None) -> None:
    """Record the final step's result (with its archive's retention finding) and complete its
    request, unless the step was taken over by another worker meanwhile (whose result then stands,
    and this one's archive is deleted)."""
    now = timezone.now()
    with transaction.atomic():
        request = _final_step_end(step, TaskStatus.SUCCEEDED, now=now)
        if request is None:
            logger.warning("request %s: its final step was taken over by another worker; discarding this result", step.request_id)
            if archive is not None:
                transaction.on_commit(lambda: [exports.storage_delete(path) for path in archive.paths])
            return
        export = None
        if archive is not None:
            export = Export.objects.create(
                request=request,
                path=archive.path,
                bytes=archive.bytes,
                sha256=archive.sha256,
                created_at=now,
                expires_at=now + dt.timedelta(days=settings.DSAR_EXPORT_TTL_DAYS),
                # What may be other people's data waits for staff, whatever the deployment's setting (GDPR Art. 15(4)).
                released_at=None if settings.DSAR_REVIEW_BEFORE_RELEASE or archive.others else now,
                others=archive.others,
                parts=exports.export_parts_as_json(archive),
            )
        if request.type == RequestType.DELETION:
            result = recipients.recipient_notifications_create(request, result=result, now=now)
        request.result, request.completed_at = result, now
        request.retention_finding = archive.retention_finding if archive is not None else None
        request_transition(request, "completed", actor=SYSTEM, update_fields=["result", "completed_at", "retention_finding"])
        if export is None:
            email_on_commit(request, "completed")
        elif export.released_at is not None:
            email_on_commit(request, "completed", **exports.download_links(export), expires_at=export.expires_at)
        else:  # held for staff, who release it (services.request_release*), which sends the link
            email_on_commit(request, "checking", others=bool(export.others))
        if export is None or not export.others:  # the review of other people's data writes the archive again from it
            transaction.on_commit(lambda: exports.stage_discard(request.id))
    logger.info("request %s: completed", request.id)
