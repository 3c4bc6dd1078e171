"""The fan-out engine: retries with backoff, permanent failures, retry by staff, idempotency."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.forms.models import model_to_dict
from django.utils import timezone

from dsar import exports, processing
from dsar.models import AuditEntry, ConnectorTask, Export, Request

from ..factories import request_make
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
    processing.request_finalize_run(request_id)
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


def test_the_final_step_is_claimed_once_while_its_lease_lives_and_again_after_it_ends():
    request = request_make(status="processing", email="final-claim@example.com")
    Request.objects.filter(pk=request.pk).update(finalize_state="queued")
    claimed = processing.finalize_claim(str(request.pk))
    stored = Request.objects.get(pk=request.pk)
    assert (stored.finalize_state, stored.finalize_attempts) == ("running", 1)
    assert stored.finalize_lease_until > timezone.now()
    assert model_to_dict(claimed) == model_to_dict(stored) and claimed.categories == request.categories  # the whole row, as a model
    assert processing.finalize_claim(request.pk) is None  # its lease lives: nobody else takes it

    Request.objects.filter(pk=request.pk).update(finalize_lease_until=timezone.now() - dt.timedelta(seconds=1))
    assert processing.finalize_claim(request.pk).finalize_attempts == 2  # a lost worker's step is taken over
    Request.objects.filter(pk=request.pk).update(finalize_state="queued", status="completed")
    assert processing.finalize_claim(request.pk) is None  # only a request still processing has a final step


def test_a_final_step_taken_over_and_finished_elsewhere_keeps_the_other_result_and_drops_its_own():
    request = request_make(status="processing", email="taken-over@example.com")
    Request.objects.filter(pk=request.pk).update(finalize_state="queued")
    slow = processing.finalize_claim(request.pk)
    Request.objects.filter(pk=request.pk).update(finalize_lease_until=timezone.now() - dt.timedelta(seconds=1))
    fast = processing.finalize_claim(request.pk)  # the slow worker's lease ran out: another took the step over

    def archive(name: str) -> exports.Archive:
        path = default_storage.save(f"exports/{request.pk}/{name}.zip", ContentFile(b"PK" + name.encode()))
        return exports.Archive(path=path, bytes=2 + len(name), sha256="0" * 64, categories={})

    kept, dropped = archive("fast"), archive("slow")
    processing._complete(fast, result={"categories": {}, "bytes": kept.bytes}, archive=kept)
    processing._complete(slow, result={"categories": {}, "bytes": dropped.bytes}, archive=dropped)

    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.finalize_state, stored.result["bytes"]) == ("completed", "done", kept.bytes)
    assert list(Export.objects.filter(request=request).values_list("path", flat=True)) == [kept.path]
    assert default_storage.exists(kept.path) and not default_storage.exists(dropped.path)
    assert AuditEntry.objects.filter(request=request, action="completed").count() == 1


def test_a_final_step_leaves_what_staff_changed_since_its_claim():
    request = request_make(status="processing", email="extended-meanwhile@example.com")
    Request.objects.filter(pk=request.pk).update(finalize_state="queued")
    claimed = processing.finalize_claim(request.pk)
    later = claimed.due_at + dt.timedelta(days=30)
    Request.objects.filter(pk=request.pk).update(due_at=later, extended_at=timezone.now())  # extended while it ran
    processing._complete(claimed, result={"categories": {}, "bytes": 0})
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.due_at, stored.extended_at is not None) == ("completed", later, True)


def _doorbell_on(broker_url: str):
    """A task of a Celery app of its own on `broker_url`: only its publishing is under test."""
    from celery import Celery

    app = Celery("doorbells", broker=broker_url, set_as_current=False)
    app.conf.broker_connection_retry = False

    @app.task(name="doorbell")
    def doorbell(task_id: int) -> None:
        raise AssertionError("a doorbell ran")

    return doorbell


@pytest.fixture
def own_broker(tmp_path):
    """A real Redis of the test's own, and a client of it."""
    import redis

    from devstack import free_port, redis_server_start

    port = free_port()
    process = redis_server_start(tmp_path, port, persist=False)
    yield f"redis://127.0.0.1:{port}/0", redis.Redis(port=port)
    process.terminate()
    process.wait(10)


def test_doorbells_go_out_together_and_if_the_broker_refuses_them_are_rung_again_alone(own_broker, caplog):
    """A batch of doorbells whose publish failed may have been delivered in part, so each is rung
    again alone; when that fails too the committed change stands (the sweeper rings queued tasks
    again later), and nothing reaches the caller, which runs after the commit."""
    url, client = own_broker
    doorbell = _doorbell_on(url)
    processing._ring_all(doorbell, [((1,), {}), ((2,), {})])
    assert client.llen("celery") == 2

    client.config_set("maxmemory", 1)  # full: every write refused, as by a Redis out of memory
    caplog.set_level("WARNING", logger="dsar.processing")
    processing._ring_all(doorbell, [((3,), {}), ((4,), {})])
    messages = [record.getMessage() for record in caplog.records]
    assert any("a batch of 2 doorbells failed" in message and "maxmemory" in message for message in messages), messages
    assert any("could not reach the broker for doorbell[(3,), (4,)]" in message for message in messages), messages
    client.config_set("maxmemory", 0)
    assert client.llen("celery") == 2


def test_doorbells_that_cannot_reach_the_broker_are_left_to_the_sweeper_and_raise_nothing(caplog):
    caplog.set_level("WARNING", logger="dsar.processing")
    processing._ring_all(_doorbell_on("redis://127.0.0.1:1/0"), [((1,), {}), ((2,), {})])
    messages = [record.getMessage() for record in caplog.records]
    assert any("could not reach the broker for doorbell[(1,), (2,)]" in message and "Connection refused" in message for message in messages), messages
