"""The fan-out engine end to end with a real worker: retries with backoff, permanent failures,
retry by staff, idempotency, leases."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from dsar import processing
from dsar.models import AuditEntry, ConnectorTask, Export, Request

from ..support.flows import approve, file_request, wait_until_final
from ..support.probe import probe_calls, probe_plan

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]


def test_a_connector_that_fails_twice_then_succeeds_ends_completed(api, reviewer, mailoutbox, unique_email):
    email = unique_email("flaky")
    probe_plan(email, transient_failures=2)
    request_id, _ = file_request(api, mailoutbox, type="access", email=email)
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"
    task = ConnectorTask.objects.get(request_id=request_id, connector="probe")
    assert (task.status, task.attempts, probe_calls(email)) == ("succeeded", 3, 3)
    assert "planned failure 2" in task.last_error


def test_a_connector_that_always_fails_fails_the_request_and_retry_completes_it(api, reviewer, mailoutbox, unique_email):
    email = unique_email("broken")
    probe_plan(email, permanent=True, records=1)
    request_id, _ = file_request(api, mailoutbox, type="deletion", email=email)
    approve(reviewer, request_id)
    request = wait_until_final(request_id)
    assert request.status == "failed"
    assert request.failure_reason.startswith("probe: PermanentError")

    staff_view = reviewer.get(f"/api/v1/staff/requests/{request_id}").json()
    probe_task = next(t for t in staff_view["tasks"] if t["connector"] == "probe")
    assert probe_task["status"] == "failed"
    assert "the system refused the request (planned)" in probe_task["last_error"]
    assert next(t for t in staff_view["tasks"] if t["connector"] == "accounts")["status"] == "succeeded"

    probe_plan(email, records=1)  # the fault is fixed
    answer = reviewer.post(f"/api/v1/staff/requests/{request_id}/retry")
    assert answer.status_code == 200
    assert wait_until_final(request_id).status == "completed"
    actions = list(AuditEntry.objects.filter(request_id=request_id).values_list("action", flat=True))
    assert actions == ["filed", "verified", "approved", "failed", "retried", "completed"]
    assert Request.objects.get(pk=request_id).result["erased"]["feedback_ratings"] == 1


def test_the_same_task_delivered_twice_changes_nothing_the_second_time(api, reviewer, mailoutbox, unique_email):
    email = unique_email("twice")
    request_id, _ = file_request(api, mailoutbox, type="access", email=email)
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"

    def snapshot():
        tasks = list(ConnectorTask.objects.filter(request_id=request_id).order_by("pk").values())
        export = Export.objects.filter(request_id=request_id).values().get()
        return tasks, export, AuditEntry.objects.filter(request_id=request_id).count(), Request.objects.filter(pk=request_id).values().get()

    before = snapshot()
    calls = probe_calls(email)
    for task in ConnectorTask.objects.filter(request_id=request_id):
        processing.task_run(task.pk)  # exactly what a redelivered message runs
    processing.final_step_run(request_id)
    assert snapshot() == before
    assert probe_calls(email) == calls


def test_a_task_running_under_a_live_lease_cannot_be_claimed_again(api, reviewer, mailoutbox, unique_email):
    email = unique_email("lease")
    probe_plan(email, sleep=3)
    request_id, _ = file_request(api, mailoutbox, type="access", email=email)
    approve(reviewer, request_id)
    from ..support.waiting import wait_for

    task = wait_for(lambda: ConnectorTask.objects.filter(request_id=request_id, connector="probe", status="running").first(), what="the probe task to start")
    assert processing.task_claim(task.pk) is None
    assert wait_until_final(request_id).status == "completed"
    assert ConnectorTask.objects.get(pk=task.pk).attempts == 1
    assert Export.objects.filter(request_id=request_id).count() == 1


def test_a_task_running_past_its_first_lease_has_it_renewed_and_is_never_claimed_twice(api, reviewer, mailoutbox, unique_email):
    """The worker's lease is 3 s (tests/conftest.py) and the probe takes 4.5 s: the lease it was
    claimed with runs out midway, so only renewal keeps a second worker from taking the task."""
    from ..support.waiting import wait_for

    email = unique_email("renewed")
    probe_plan(email, sleep=4.5)
    request_id, _ = file_request(api, mailoutbox, type="access", email=email)
    approve(reviewer, request_id)
    task = wait_for(lambda: ConnectorTask.objects.filter(request_id=request_id, connector="probe", status="running").first(), what="the probe task to start")
    first_lease = task.lease_until
    wait_for(lambda: timezone.now() > first_lease + dt.timedelta(seconds=0.5), what="the first lease to pass", timeout=10)
    running = ConnectorTask.objects.get(pk=task.pk)
    assert running.status == "running" and running.lease_until > timezone.now()
    assert processing.task_claim(task.pk) is None
    assert wait_until_final(request_id).status == "completed"
    assert ConnectorTask.objects.get(pk=task.pk).attempts == 1
