"""dsar/locks.py: each helper holds its row against another transaction until commit, returns the
row as it is then, and the batch helper passes over rows another transaction holds."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from dsar import locks, orm_bypass
from dsar.models import ConnectorTask, Export, FinalStep, Request

from ..factories import request_make

pytestmark = pytest.mark.django_db(transaction=True)


class Holder:
    """Another transaction, in a thread of its own, holding what `take` locks until released."""

    def __init__(self, take) -> None:
        self.held, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(take,))

    def _run(self, take) -> None:
        try:
            with transaction.atomic():
                take()
                self.held.set()
                self.done.wait(30)
        finally:
            connection.close()

    def __enter__(self) -> Holder:
        self.thread.start()
        assert self.held.wait(30)
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join(30)


def _waits(take) -> bool:
    """Whether `take` has to wait for another transaction (given up after a fifth of a second)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '200ms'")
            take()
    except OperationalError as error:
        assert "lock timeout" in str(error)
        return True
    return False


def test_a_locked_request_waits_for_the_holder_to_commit_and_is_then_read_as_it_committed():
    request = request_make(status="pending_review")

    def hold_and_change() -> None:
        locks.request_lock(request.pk)
        Request.objects.filter(pk=request.pk).update(status="processing")

    with Holder(hold_and_change):
        assert _waits(lambda: locks.request_lock(request.pk))
        assert not _waits(lambda: Request.objects.get(pk=request.pk))  # a plain read never waits
    with transaction.atomic():
        assert locks.request_lock(request.pk).status == "processing"


def test_a_missing_request_raises_does_not_exist():
    with pytest.raises(Request.DoesNotExist), transaction.atomic():
        locks.request_lock("00000000-0000-0000-0000-000000000000")


def test_a_batch_lock_passes_over_rows_another_transaction_holds():
    held, free, other = request_make(email="held@example.com"), request_make(email="free@example.com"), request_make(email="other@example.com")
    batch = Request.objects.filter(pk__in=[held.pk, free.pk]).order_by("email")
    with Holder(lambda: locks.request_lock(held.pk)), transaction.atomic():
        assert [request.email for request in locks.rows_lock_free(batch, limit=10)] == ["free@example.com"]
        assert _waits(lambda: locks.request_lock(held.pk))
    with transaction.atomic():
        assert [request.email for request in locks.rows_lock_free(batch, limit=1)] == ["free@example.com"]
        assert [request.email for request in locks.rows_lock_free(Request.objects.order_by("email"), limit=2)] == [
            "free@example.com", "held@example.com"]
    assert Request.objects.filter(pk=other.pk).exists()


def test_a_requests_final_step_and_export_are_each_held_once_locked():
    request = request_make(status="processing")
    FinalStep.objects.create(request=request)
    now = timezone.now()
    Export.objects.create(request=request, path="exports/x.zip", bytes=1, sha256="0" * 64, created_at=now, expires_at=now + dt.timedelta(days=7))
    for take, read in ((lambda: locks.final_step_lock(request.pk), lambda: FinalStep.objects.select_for_update().get(request=request)),
                       (lambda: locks.export_lock(request.pk), lambda: Export.objects.select_for_update().get(request=request))):
        with Holder(take):
            assert _waits(read)
        assert not _waits(read)
    with transaction.atomic():
        assert (locks.final_step_lock(request.pk).status, locks.export_lock(request.pk).path) == ("queued", "exports/x.zip")
        other = request_make(status="processing", email="none@example.com")
        assert (locks.final_step_lock(other.pk), locks.export_lock(other.pk)) == (None, None)


def test_a_staff_members_row_is_locked_and_only_a_staff_members():
    member = get_user_model().objects.create_user(username="rob", is_staff=True)
    customer = get_user_model().objects.create_user(username="customer")
    with Holder(lambda: locks.staff_user_lock(member.pk)):
        assert _waits(lambda: locks.staff_user_lock(member.pk))
    with pytest.raises(get_user_model().DoesNotExist), transaction.atomic():
        locks.staff_user_lock(customer.pk)


def test_a_job_runs_once_at_a_time_and_its_lock_is_released_after():
    taken = threading.Event()
    release = threading.Event()

    def hold() -> None:
        try:
            with locks.job_lock("sweeper"):
                taken.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(30)
        with pytest.raises(locks.JobBusy), locks.job_lock("sweeper"):
            pass
        with locks.job_lock("deadline_watch"):  # another job's lock is another lock
            pass
    finally:
        release.set()
        holder.join(30)
    with locks.job_lock("sweeper"):
        pass


def test_a_tasks_result_waits_for_the_request_a_holder_has_locked():
    request = request_make(status="processing")
    task = ConnectorTask.objects.create(request=request, connector="a", status="running", attempts=1)

    def record():
        return orm_bypass.task_result_record(task.pk, attempt=1, request_id=request.pk, counts={}, output=None, receipt=None, now=timezone.now())

    with Holder(lambda: locks.request_lock(request.pk)):
        assert _waits(record)
    assert ConnectorTask.objects.get(pk=task.pk).status == "running"  # the attempt that waited was rolled back
    with transaction.atomic():
        assert record() == (True, True)
