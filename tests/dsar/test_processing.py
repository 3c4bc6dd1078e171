"""dsar/processing.py and dsar/doorbell.py, in this process against the real database: claims and
their races, the bound on attempts, the sweeper's revival of lost work, and the one final step.

Tests that need no second connection run inside one transaction that never commits, so nothing
they queue is rung for (a Celery worker of the test run may be up)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading

import pytest
import time_machine
from celery import Celery
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from dsar import exports, locks, processing
from dsar.doorbell import backoff_seconds, ring_all
from dsar.models import AuditEntry, ConnectorTask, Export, FinalStep, Request

from ..conftest import ROOT, database_url
from ..factories import request_make
from ..support.flows import wait_until_final
from ..support.listed import listed  # noqa: F401 (a fixture)
from ..support.probe import probe_calls, probe_plan
from ..support.processes import process_stop
from ..support.waiting import wait_for

SECOND = dt.timedelta(seconds=1)
MINUTE = dt.timedelta(minutes=1)


def _task(request: Request, connector: str = "probe", **fields) -> ConnectorTask:
    return ConnectorTask.objects.create(request=request, connector=connector, **fields)


def _together(count: int, call) -> list:
    """Run `call(number)` in `count` threads released at the same moment; their results in order."""
    start, results = threading.Barrier(count), [None] * count

    def run(number: int) -> None:
        start.wait()
        try:
            results[number] = call(number)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


# --- Claims --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_claim_takes_a_queued_task_for_this_worker_under_a_lease(settings):
    settings.DSAR_TASK_LEASE_SECONDS = 60
    task = _task(request_make(status="processing"))
    before = timezone.now()
    claimed = processing.task_claim(task.pk)
    stored = ConnectorTask.objects.get(pk=task.pk)
    assert (claimed.pk, claimed.attempts, claimed.request.status) == (task.pk, 1, "processing")
    assert (stored.status, stored.attempts, stored.claimed_by) == ("running", 1, f"{socket.gethostname()}:{os.getpid()}")
    assert before + dt.timedelta(seconds=59) < stored.lease_until < timezone.now() + dt.timedelta(seconds=61)


@pytest.mark.django_db
def test_a_task_not_due_running_under_its_lease_finished_or_of_a_request_not_processing_is_not_claimed():
    now = timezone.now()
    processing_request = request_make(status="processing")
    waiting = _task(processing_request, "accounts", not_before=now + MINUTE)
    leased = _task(processing_request, "payments", status="running", attempts=1, lease_until=now + MINUTE)
    done = _task(processing_request, "support", status="succeeded", attempts=1)
    of_failed = _task(request_make(status="failed"))
    for task in (waiting, leased, done, of_failed):
        assert processing.task_claim(task.pk) is None, task.connector
    assert list(ConnectorTask.objects.order_by("pk").values_list("status", "attempts")) == [
        ("queued", 0), ("running", 1), ("succeeded", 1), ("queued", 0)]


@pytest.mark.django_db
def test_a_task_due_again_or_whose_lease_ran_out_is_claimed_with_the_attempt_counted():
    now = timezone.now()
    request = request_make(status="processing")
    due_again = _task(request, "accounts", attempts=2, not_before=now - SECOND)
    lost = _task(request, "payments", status="running", attempts=1, lease_until=now - SECOND)
    assert processing.task_claim(due_again.pk).attempts == 3
    assert processing.task_claim(lost.pk).attempts == 2


@pytest.mark.django_db(transaction=True)
def test_of_two_workers_claiming_the_same_task_exactly_one_gets_it():
    request = request_make(status="processing")
    now = timezone.now()
    for round_ in range(8):
        task = _task(request, f"connector-{round_}", status="running", attempts=1, lease_until=now - SECOND)
        claims = _together(2, lambda _: processing.task_claim(task.pk))
        assert sorted(claim is None for claim in claims) == [False, True], round_
        assert ConnectorTask.objects.get(pk=task.pk).attempts == 2


@pytest.mark.django_db(transaction=True)
def test_a_claim_on_a_connection_the_database_dropped_between_tasks_reconnects_first():
    task = _task(request_make(status="processing"))
    close_old_connections()  # as before every task (dsar/tasks.py): the connection is checked at its next use
    backend = connection.connection.info.backend_pid
    assert _together(1, lambda _: _terminate(backend)) == [True]  # the database restarted, say
    claimed = processing.task_claim(task.pk)
    assert claimed is not None and claimed.attempts == 1


def _terminate(backend: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
        return cursor.fetchone()[0]


# --- Attempts ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_task_claimed_past_the_attempt_bound_fails_without_calling_its_connector(settings, unique_email):
    settings.DSAR_CONNECTOR_MAX_ATTEMPTS = 3
    request = request_make(status="processing", type="deletion", email=unique_email("bound"))
    task = _task(request, attempts=3, last_error="TransientError: probe: 503")
    processing.task_run(task.pk)
    stored = ConnectorTask.objects.get(pk=task.pk)
    assert (stored.status, stored.attempts) == ("failed", 4)
    assert stored.last_error == "gave up after 3 attempts; last error: TransientError: probe: 503"
    failed = Request.objects.get(pk=request.pk)
    assert (failed.status, failed.failure_reason) == ("failed", "probe: gave up after 3 attempts; last error: TransientError: probe: 503")
    assert probe_calls(request.email) == 0


@pytest.mark.django_db
def test_a_transient_error_is_retried_after_a_backoff_until_the_last_attempt_fails_it(settings, unique_email):
    settings.DSAR_CONNECTOR_MAX_ATTEMPTS = 2
    settings.DSAR_RETRY_BASE_SECONDS, settings.DSAR_RETRY_MAX_SECONDS = 4, 60
    email = unique_email("transient")
    probe_plan(email, transient_failures=5)
    request = request_make(status="processing", type="deletion", email=email)
    task = _task(request)
    processing.task_run(task.pk)
    retried = ConnectorTask.objects.get(pk=task.pk)
    assert (retried.status, retried.attempts, retried.last_error) == ("queued", 1, "TransientError: probe: timed out (planned failure 1)")
    assert retried.last_error_at + dt.timedelta(seconds=2) <= retried.not_before <= retried.last_error_at + dt.timedelta(seconds=4)
    assert processing.task_claim(task.pk) is None  # not due yet

    ConnectorTask.objects.filter(pk=task.pk).update(not_before=timezone.now() - SECOND)
    processing.task_run(task.pk)
    stored = ConnectorTask.objects.get(pk=task.pk)
    assert (stored.status, stored.attempts) == ("failed", 2)
    assert stored.last_error == "gave up after 2 attempts; last error: TransientError: probe: timed out (planned failure 2)"
    assert Request.objects.get(pk=request.pk).status == "failed"
    assert probe_calls(email) == 2


def test_the_backoff_doubles_each_attempt_with_half_of_it_random_up_to_the_cap(settings):
    settings.DSAR_RETRY_BASE_SECONDS, settings.DSAR_RETRY_MAX_SECONDS = 2, 10
    for attempt, (low, high) in {1: (1, 2), 2: (2, 4), 3: (4, 8), 4: (5, 10), 9: (5, 10)}.items():
        waits = [backoff_seconds(attempt) for _ in range(200)]
        assert low <= min(waits) and max(waits) <= high, attempt
        assert max(waits) - min(waits) > (high - low) / 2, attempt  # jittered, not fixed


# --- Results and the final step ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_when_every_task_succeeds_at_once_exactly_one_creates_the_final_step():
    request = request_make(status="processing", type="deletion")
    tasks = [_task(request, f"connector-{n}", status="running", attempts=1) for n in range(6)]
    lasts = _together(len(tasks), lambda n: processing.task_succeed(tasks[n], counts={"x": n}))
    assert sorted(lasts) == [False] * 5 + [True]
    assert list(FinalStep.objects.filter(request=request).values_list("status", "attempts")) == [("queued", 0)]
    assert sorted(ConnectorTask.objects.filter(request=request).values_list("status", flat=True)) == ["succeeded"] * 6


@pytest.mark.django_db
def test_a_result_recorded_twice_counts_once_and_a_request_no_longer_processing_gets_no_final_step():
    request = request_make(status="processing", type="deletion")
    first, second = _task(request, "accounts", status="running", attempts=1), _task(request, "payments", status="running", attempts=1)
    assert processing.task_succeed(first, counts={"name_contact": 1}) is False  # the other is still running
    assert processing.task_succeed(first, counts={"name_contact": 9}) is False  # a redelivery: already recorded
    assert ConnectorTask.objects.get(pk=first.pk).counts == {"name_contact": 1}
    Request.objects.filter(pk=request.pk).update(status="failed")
    assert processing.task_succeed(second, counts={}) is False
    assert not FinalStep.objects.filter(request=request).exists()


@pytest.mark.django_db
def test_the_final_step_is_claimed_once_while_its_lease_lives_and_again_after_it_ends():
    request = request_make(status="processing")
    FinalStep.objects.create(request=request)
    claimed = processing.final_step_claim(request.pk)
    stored = FinalStep.objects.get(request=request)
    assert (claimed.attempts, claimed.request.pk, stored.status, stored.attempts) == (1, request.pk, "running", 1)
    assert stored.lease_until > timezone.now()
    assert processing.final_step_claim(str(request.pk)) is None  # its lease lives: nobody else takes it

    FinalStep.objects.filter(request=request).update(lease_until=timezone.now() - SECOND)
    assert processing.final_step_claim(request.pk).attempts == 2  # a lost worker's step is taken over
    FinalStep.objects.filter(request=request).update(status="queued")
    Request.objects.filter(pk=request.pk).update(status="completed")
    assert processing.final_step_claim(request.pk) is None  # only a request still processing has a final step


@pytest.mark.django_db(transaction=True)
def test_of_two_workers_claiming_the_same_final_step_exactly_one_gets_it():
    for round_ in range(6):
        request = request_make(status="processing")
        FinalStep.objects.create(request=request)
        claims = _together(2, lambda _: processing.final_step_claim(request.pk))
        assert sorted(claim is None for claim in claims) == [False, True], round_
        assert FinalStep.objects.get(request=request).attempts == 1


def _archive(request: Request, name: str) -> exports.Archive:
    path = default_storage.save(f"exports/{request.pk}/{name}.zip", ContentFile(b"PK" + name.encode()))
    return exports.Archive(path=path, bytes=2 + len(name), sha256="0" * 64, categories={})


@pytest.mark.django_db(transaction=True)
def test_a_final_step_taken_over_keeps_the_result_of_the_worker_holding_it_and_drops_the_others():
    request = request_make(status="processing")
    FinalStep.objects.create(request=request)
    slow = processing.final_step_claim(request.pk)
    FinalStep.objects.filter(request=request).update(lease_until=timezone.now() - SECOND)
    fast = processing.final_step_claim(request.pk)  # the slow worker's lease ran out: another took the step over
    dropped, kept = _archive(request, "slow"), _archive(request, "fast")
    processing.final_step_complete(slow, result={"categories": {}, "bytes": dropped.bytes}, archive=dropped)
    assert Request.objects.get(pk=request.pk).status == "processing"  # the slow worker's claim no longer stands
    processing.final_step_complete(fast, result={"categories": {}, "bytes": kept.bytes}, archive=kept)

    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.result["bytes"]) == ("completed", 6)
    assert FinalStep.objects.get(request=request).status == "succeeded"
    assert list(Export.objects.filter(request=request).values_list("path", flat=True)) == [kept.path]
    assert default_storage.exists(kept.path) and not default_storage.exists(dropped.path)
    assert AuditEntry.objects.filter(request=request, action="completed").count() == 1


@pytest.mark.django_db
def test_a_final_step_leaves_what_staff_changed_since_its_claim():
    request = request_make(status="processing", type="deletion")
    FinalStep.objects.create(request=request)
    claimed = processing.final_step_claim(request.pk)
    later = request.due_at + dt.timedelta(days=30)
    Request.objects.filter(pk=request.pk).update(due_at=later, extended_at=timezone.now())  # extended while it ran
    processing.final_step_complete(claimed, result={"erased": {}, "retained": []})
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.due_at, stored.extended_at is not None, stored.result) == (
        "completed", later, True, {"erased": {}, "retained": []})


# --- The sweeper -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_sweeper_requeues_a_task_past_its_lease_or_long_queued_and_fails_one_whose_worker_died_too_often(settings):
    settings.DSAR_MAX_SWEEPS, settings.DSAR_SWEEP_QUEUED_MINUTES = 3, 10
    now = timezone.now()
    request = request_make(status="processing")
    lost = _task(request, "accounts", status="running", attempts=1, lease_until=now - SECOND)
    leased = _task(request, "payments", status="running", attempts=1, lease_until=now + MINUTE)
    stale = _task(request, "support")
    fresh = _task(request, "content")
    ConnectorTask.objects.filter(pk=stale.pk).update(updated_at=now - 11 * MINUTE)
    ConnectorTask.objects.filter(pk=fresh.pk).update(updated_at=now - 9 * MINUTE)
    assert processing.tasks_sweep(now=now, limit=10) == {"revived": 2, "failed": 0, "final_steps": 0, "final_steps_failed": 0}
    rows = {task.connector: (task.status, task.sweeps, task.lease_until) for task in ConnectorTask.objects.filter(request=request)}
    assert rows == {"accounts": ("queued", 1, None), "payments": ("running", 0, leased.lease_until),
                    "support": ("queued", 0, None), "content": ("queued", 0, None)}  # waiting is no death

    # a task that only waits is rung for as long as it waits, whatever it went through before
    ConnectorTask.objects.filter(pk=stale.pk).update(sweeps=3, updated_at=now - 11 * MINUTE)
    assert processing.tasks_sweep(now=now, limit=10) == {"revived": 1, "failed": 0, "final_steps": 0, "final_steps_failed": 0}
    assert ConnectorTask.objects.filter(pk=stale.pk).values_list("status", "sweeps").get() == ("queued", 3)

    ConnectorTask.objects.filter(pk=lost.pk).update(status="running", sweeps=3, lease_until=now - SECOND)
    assert processing.tasks_sweep(now=now, limit=10)["failed"] == 1
    failed = Request.objects.get(pk=request.pk)
    assert failed.status == "failed"
    assert failed.failure_reason == "accounts: its worker died under it 4 times; not trying again"
    assert ConnectorTask.objects.get(pk=lost.pk).status == "failed"


@pytest.mark.django_db
def test_the_sweeper_requeues_a_lost_final_step_and_fails_the_request_of_one_lost_too_often(settings):
    settings.DSAR_MAX_SWEEPS = 3
    now = timezone.now()
    revived, given_up = request_make(status="processing"), request_make(status="processing")
    FinalStep.objects.create(request=revived, status="running", attempts=1, lease_until=now - SECOND)
    FinalStep.objects.create(request=given_up, status="running", attempts=4, sweeps=3, lease_until=now - SECOND)
    assert processing.tasks_sweep(now=now, limit=10) == {"revived": 0, "failed": 0, "final_steps": 1, "final_steps_failed": 1}
    assert FinalStep.objects.filter(request=revived).values_list("status", "sweeps", "lease_until").get() == ("queued", 1, None)
    step = FinalStep.objects.get(request=given_up)
    assert (step.status, step.last_error) == ("failed", "its worker died under it 4 times; not trying again")
    failed = Request.objects.get(pk=given_up.pk)
    assert (failed.status, failed.failure_reason) == ("failed", "final step: its worker died under it 4 times; not trying again")


@pytest.mark.django_db
def test_the_sweeper_leaves_work_of_requests_no_longer_processing():
    now = timezone.now()
    request = request_make(status="failed")
    task = _task(request, status="running", attempts=1, lease_until=now - SECOND)
    FinalStep.objects.create(request=request, status="running", attempts=1, lease_until=now - SECOND)
    assert processing.tasks_sweep(now=now, limit=10) == {"revived": 0, "failed": 0, "final_steps": 0, "final_steps_failed": 0}
    assert ConnectorTask.objects.get(pk=task.pk).status == FinalStep.objects.get(request=request).status == "running"


# --- Leases ------------------------------------------------------------------------------------------------


def _task_run_in_a_worker_process(task_id: int) -> subprocess.Popen:
    """Run one task as a worker process of the test run does (tests/worker_settings.py: a lease of
    3 s), in a process of its own, so its lease keeper starts with it."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.worker_settings", "DATABASE_URL": database_url(connection.settings_dict)}
    code = f"import django; django.setup(); from dsar import processing; processing.task_run({task_id})"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)


@pytest.mark.django_db(transaction=True)
def test_a_task_running_for_twice_its_lease_has_the_lease_renewed_a_third_of_it_apart_and_is_never_swept(unique_email):
    email = unique_email("long")
    probe_plan(email, sleep=6, records=1)  # the probe takes 6 s; the worker's lease is 3 s
    request = request_make(status="processing", type="deletion", email=email)
    task = _task(request)
    _task(request, "accounts")  # not run: the request stays processing, with no final step to take
    worker = _task_run_in_a_worker_process(task.pk)
    try:
        leases = [wait_for(lambda: ConnectorTask.objects.filter(pk=task.pk, status="running").values_list("lease_until", flat=True).first(),
                           timeout=60, what="the task to start")]

        def finished_with_its_lease_never_run_out() -> bool:
            status, lease_until = ConnectorTask.objects.filter(pk=task.pk).values_list("status", "lease_until").get()
            if status != "running":
                return True
            now = timezone.now()
            assert lease_until > now, f"the lease ran out at {lease_until}, renewed at {leases}"
            assert processing.tasks_sweep(now=now, limit=10) == {"revived": 0, "failed": 0, "final_steps": 0, "final_steps_failed": 0}
            if lease_until != leases[-1]:
                leases.append(lease_until)
            return False

        wait_for(finished_with_its_lease_never_run_out, timeout=60, what="the task to finish")
        assert worker.wait(30) == 0
    finally:
        process_stop(worker)
    stored = ConnectorTask.objects.get(pk=task.pk)
    assert (stored.status, stored.attempts, stored.sweeps, stored.lease_until) == ("succeeded", 1, 0, None)
    assert len(leases) >= 4, leases  # claimed, then renewed over the 6 s about every second
    gaps = [later - earlier for earlier, later in zip(leases, leases[1:])]
    assert min(gaps) >= dt.timedelta(seconds=1), gaps  # a third of the lease: renewals are database writes, kept rare


# --- Doorbells ---------------------------------------------------------------------------------------------


def _app_on(broker_url: str) -> Celery:
    """A Celery app of its own on `broker_url`: only its publishing is under test."""
    app = Celery("doorbells", broker=broker_url, set_as_current=False)
    app.conf.broker_connection_retry = False
    return app


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
    app = _app_on(url)
    ring_all("doorbell", [((1,), {}), ((2,), {})], app=app)
    assert client.llen("celery") == 2

    client.config_set("maxmemory", 1)  # full: every write refused, as by a Redis out of memory
    caplog.set_level("WARNING", logger="dsar.doorbell")
    ring_all("doorbell", [((3,), {}), ((4,), {})], app=app)
    messages = [record.getMessage() for record in caplog.records]
    assert any("a batch of 2 doorbells failed" in message and "maxmemory" in message for message in messages), messages
    assert any("could not reach the broker for doorbell[(3,), (4,)]" in message for message in messages), messages
    client.config_set("maxmemory", 0)
    assert client.llen("celery") == 2


def test_doorbells_that_cannot_reach_the_broker_are_left_to_the_sweeper_and_raise_nothing(caplog):
    caplog.set_level("WARNING", logger="dsar.doorbell")
    ring_all("doorbell", [((1,), {}), ((2,), {})], app=_app_on("redis://127.0.0.1:1/0"))
    messages = [record.getMessage() for record in caplog.records]
    assert any("could not reach the broker for doorbell[(1,), (2,)]" in message and "Connection refused" in message for message in messages), messages


# --- The migration that gave the final step its own row ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_final_steps_in_flight_when_migrating_are_carried_over_to_their_own_rows():
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("dsar", "0005_outgoing_email")], [("dsar", "0006_final_step")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("dsar", "Request")
    now = timezone.now()
    lease = now + MINUTE

    def filed(email: str, **final) -> str:
        return str(old.objects.create(type="access", status="processing", email=email, categories=[], jurisdiction="gdpr",
                                      created_at=now, due_at=now + dt.timedelta(days=30), **final).pk)

    queued, running = filed("queued@example.com", finalize_state="queued"), filed(
        "running@example.com", finalize_state="running", finalize_lease_until=lease, finalize_attempts=2)
    filed("done@example.com", finalize_state="done", finalize_attempts=1)
    filed("none@example.com")
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    steps = {str(step.request_id): (step.status, step.lease_until, step.attempts, step.sweeps) for step in FinalStep.objects.all()}
    assert steps == {queued: ("queued", None, 0, 0), running: ("running", lease, 2, 0)}
    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


# --- Stages: systems found by identities other systems find ------------------------------------------


@pytest.fixture
def staged_systems(settings, tmp_path):
    """crm finds a customer number by email; billing finds invoices by that number. Both SQLite."""
    import sqlalchemy as sa

    from connectors.registry import connectors_reset
    from connectors.systems import systems_load

    crm_db, billing_db = tmp_path / "crm.sqlite3", tmp_path / "billing.sqlite3"
    with sa.create_engine(f"sqlite:///{crm_db}").begin() as conn:
        conn.execute(sa.text("CREATE TABLE customer (id integer PRIMARY KEY, email text, customer_no text, name text)"))
        conn.execute(sa.text("INSERT INTO customer VALUES (1, 'ada@example.com', 'C-1', 'Ada'), (2, 'bob@example.com', 'C-2', 'Bob')"))
    with sa.create_engine(f"sqlite:///{billing_db}").begin() as conn:
        conn.execute(sa.text("CREATE TABLE invoice (id integer PRIMARY KEY, customer_no text, item text)"))
        conn.execute(sa.text("INSERT INTO invoice VALUES (10, 'C-1', 'tea'), (11, 'C-1', 'cup'), (12, 'C-2', 'pot'), (13, 'c-1', 'not hers')"))
    files = tmp_path / "systems"
    files.mkdir()
    (files / "crm.yaml").write_text(f"name: crm\nkind: sql\nconnection: {{url: 'sqlite:///{crm_db}'}}\ntables:\n  - name: customer\n"
                                    "    identity: {email: email}\n    provides: {customer_number: customer_no}\n    columns: {name: name_contact}\n")
    (files / "billing.yaml").write_text(f"name: billing\nkind: sql\nconnection: {{url: 'sqlite:///{billing_db}'}}\ntables:\n  - name: invoice\n"
                                        "    identity: {customer_number: customer_no}\n    columns: {item: interactions.account_history}\n")
    settings.DSAR_SYSTEMS = systems_load(files, {})
    connectors_reset()
    yield billing_db
    connectors_reset()


@pytest.mark.django_db
def test_a_system_found_by_an_identity_another_finds_waits_for_it_and_runs_with_its_values(staged_systems):
    request = request_make(status="processing", type="access", email="ada@example.com")
    processing.tasks_create(request)
    tasks = {task.connector: task for task in request.tasks.all()}
    assert {name: task.status for name, task in tasks.items()} == {"crm": "queued", "billing": "waiting"}
    assert processing.task_claim(tasks["billing"].pk) is None  # a waiting task cannot be claimed

    processing.task_run(tasks["crm"].pk)
    crm, billing = (ConnectorTask.objects.get(pk=tasks[name].pk) for name in ("crm", "billing"))
    assert (crm.status, crm.identities, billing.status) == ("succeeded", {"customer_number": ["C-1"]}, "queued")
    assert not FinalStep.objects.filter(request=request).exists()

    processing.task_run(tasks["billing"].pk)
    billing = ConnectorTask.objects.get(pk=tasks["billing"].pk)
    assert (billing.status, billing.counts) == ("succeeded", {"interactions.account_history": 2})  # tea and cup: C-1 exactly
    assert Request.objects.get(pk=request.pk).status == "completed"  # this worker took the final step


@pytest.mark.django_db
def test_a_deletion_finds_the_identities_before_erasing_the_rows_that_hold_them(staged_systems):
    import sqlalchemy as sa

    request = request_make(status="processing", type="deletion", email="ada@example.com")
    processing.tasks_create(request)
    tasks = {task.connector: task for task in request.tasks.all()}
    processing.task_run(tasks["crm"].pk)
    assert ConnectorTask.objects.get(pk=tasks["crm"].pk).identities == {"customer_number": ["C-1"]}
    processing.task_run(tasks["billing"].pk)
    assert ConnectorTask.objects.get(pk=tasks["billing"].pk).receipt["erased"] == {"interactions.account_history": 2}
    with sa.create_engine(f"sqlite:///{staged_systems}").connect() as conn:
        assert conn.execute(sa.text("SELECT item FROM invoice ORDER BY id")).scalars().all() == ["pot", "not hers"]


# --- Ends of a task and of a final step: every field the row and the request are left with ------------


@pytest.mark.django_db
def test_a_task_that_fails_keeps_its_error_and_when_holds_no_lease_and_fails_its_request_with_the_first_line(caplog):
    request = request_make(status="processing", type="access", email="fails@example.com")
    task = _task(request, status="running", attempts=1, lease_until=timezone.now() + MINUTE)
    with caplog.at_level("ERROR", logger="dsar.processing"):
        processing.task_fail(task, "PermanentError: probe: refused\nTraceback (most recent call last): ...")
    failed = ConnectorTask.objects.get(pk=task.pk)
    assert (failed.status, failed.lease_until, failed.last_error) == (
        "failed", None, "PermanentError: probe: refused\nTraceback (most recent call last): ...")
    assert failed.last_error_at is not None and failed.last_error_at == failed.finished_at
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.failure_reason) == ("failed", "probe: PermanentError: probe: refused")
    entry = AuditEntry.objects.filter(request=request).latest("at")
    assert (entry.action, entry.actor, entry.to_status, entry.note) == ("failed", "system", "failed", "probe: PermanentError: probe: refused")
    assert caplog.messages == [f"request {request.pk}: probe failed: PermanentError: probe: refused"]


@pytest.mark.django_db
def test_a_retry_requeues_a_failed_task_from_scratch_and_a_request_with_none_failed_gets_its_final_step_again():
    request = request_make(status="processing", type="access", email="retried@example.com")
    failed = _task(request, status="failed", attempts=5, not_before=timezone.now() + MINUTE, lease_until=timezone.now() + MINUTE)
    processing.tasks_retry(request)
    requeued = ConnectorTask.objects.get(pk=failed.pk)
    assert (requeued.status, requeued.attempts, requeued.not_before, requeued.lease_until) == ("queued", 0, None, None)

    done = request_make(status="processing", type="access", email="done@example.com")
    _task(done, status="succeeded")
    processing.tasks_retry(done)
    assert list(FinalStep.objects.filter(request=done).values_list("status", "attempts")) == [("queued", 0)]


@pytest.mark.django_db
def test_a_rescheduled_task_gives_up_its_lease(settings):
    settings.DSAR_CONNECTOR_MAX_ATTEMPTS = 5
    request = request_make(status="processing", type="access", email="later@example.com")
    task = _task(request, status="running", attempts=1, lease_until=timezone.now() + MINUTE)
    processing.task_reschedule(task, "TransientError: probe: 503")
    stored = ConnectorTask.objects.get(pk=task.pk)
    assert (stored.status, stored.lease_until, stored.last_error) == ("queued", None, "TransientError: probe: 503")


@pytest.mark.django_db
def test_a_final_step_that_fails_keeps_when_it_failed():
    request = request_make(status="processing", type="access", email="stepfails@example.com")
    step = FinalStep.objects.create(request=request, status="running", attempts=1, lease_until=timezone.now() + MINUTE)
    processing.final_step_fail(step, "the archive could not be written")
    stored = FinalStep.objects.get(pk=step.pk)
    assert (stored.status, stored.last_error, stored.lease_until) == ("failed", "the archive could not be written", None)
    assert stored.last_error_at is not None
    assert Request.objects.get(pk=request.pk).failure_reason == "the archive could not be written"


@pytest.mark.django_db
def test_the_sweeper_takes_at_most_its_limit_of_each_kind_rings_for_what_it_revives_and_stamps_what_it_fails(
        settings, django_capture_on_commit_callbacks):
    settings.DSAR_MAX_SWEEPS = 3
    now = timezone.now()
    a, b, c = (request_make(status="processing", email=f"sweep{n}@example.com") for n in range(3))
    _task(a, "accounts", status="running", attempts=1, lease_until=now - 3 * SECOND)
    _task(b, "accounts", status="running", attempts=1, lease_until=now - 2 * SECOND)
    _task(c, "accounts", status="running", attempts=1, lease_until=now - SECOND)
    ConnectorTask.objects.update(updated_at=now - MINUTE)
    done = _task(a, "payments", status="succeeded", attempts=1, lease_until=now - MINUTE)  # finished: its old lease means nothing
    with django_capture_on_commit_callbacks() as rung:
        assert processing.tasks_sweep(now=now, limit=2) == {"revived": 2, "failed": 0, "final_steps": 0, "final_steps_failed": 0}
    assert len(rung) == 2  # one doorbell a revived task
    revived = ConnectorTask.objects.filter(status="queued")
    assert sorted(revived.values_list("request__email", flat=True)) == ["sweep0@example.com", "sweep1@example.com"]  # the oldest first
    assert set(revived.values_list("updated_at", flat=True)) == {now}
    assert ConnectorTask.objects.get(pk=done.pk).status == "succeeded"

    ConnectorTask.objects.filter(connector="accounts").update(status="running", sweeps=3, lease_until=now - SECOND)
    assert processing.tasks_sweep(now=now, limit=10)["failed"] == 3
    failed = ConnectorTask.objects.filter(connector="accounts")
    assert set(failed.values_list("status", "lease_until", "last_error_at", "finished_at", "updated_at")) == {("failed", None, now, now, now)}


@pytest.mark.django_db
def test_the_sweeper_revives_final_steps_lost_or_long_queued_and_counts_them_apart_from_those_it_fails(settings):
    settings.DSAR_MAX_SWEEPS, settings.DSAR_SWEEP_QUEUED_MINUTES = 3, 10
    now = timezone.now()
    lost, stale, given_up, recent, over = (request_make(status="processing", email=f"step{n}@example.com") for n in range(5))
    FinalStep.objects.create(request=lost, status="running", attempts=1, lease_until=now - SECOND)
    FinalStep.objects.create(request=stale, status="queued")
    FinalStep.objects.create(request=given_up, status="running", attempts=4, sweeps=3, lease_until=now - SECOND)
    FinalStep.objects.create(request=recent, status="queued")
    FinalStep.objects.create(request=over, status="failed", attempts=1)
    FinalStep.objects.filter(request__in=[stale, over]).update(updated_at=now - 11 * MINUTE)
    FinalStep.objects.filter(request=recent).update(updated_at=now - 9 * MINUTE)
    assert processing.tasks_sweep(now=now, limit=10) == {"revived": 0, "failed": 0, "final_steps": 2, "final_steps_failed": 1}
    steps = dict(FinalStep.objects.values_list("request__email", "status"))
    assert steps == {"step0@example.com": "queued", "step1@example.com": "queued", "step2@example.com": "failed",
                     "step3@example.com": "queued", "step4@example.com": "failed"}
    assert FinalStep.objects.get(request=given_up).last_error_at == now


@pytest.mark.django_db
def test_a_reschedule_leaves_a_task_no_longer_running_alone_and_logs_the_first_line_of_the_error(settings, caplog):
    settings.DSAR_CONNECTOR_MAX_ATTEMPTS = 5
    settings.DSAR_RETRY_BASE_SECONDS, settings.DSAR_RETRY_MAX_SECONDS = 4, 60
    request = request_make(status="processing", type="access", email="gone@example.com")
    task = _task(request, status="running", attempts=1)
    ConnectorTask.objects.filter(pk=task.pk).update(status="succeeded")  # finished elsewhere meanwhile
    with caplog.at_level("WARNING", logger="dsar.processing"):
        processing.task_reschedule(task, "TransientError: probe: 503\nmore detail")
    assert ConnectorTask.objects.get(pk=task.pk).status == "succeeded"
    assert caplog.messages == [f"request {request.pk}: probe was to retry after TransientError: probe: 503 "
                               "but its task was no longer running as its attempt 1"]


@pytest.mark.django_db
def test_a_waiting_task_wakes_only_once_every_system_finding_its_identity_has_succeeded_and_only_its_requests(settings):
    from connectors.systems import System

    settings.DSAR_SYSTEMS = {
        "crm": System("crm", "tests.support.listed.ListedConnector", provides=frozenset({"customer_number"})),
        "shop": System("shop", "tests.support.listed.ListedConnector", provides=frozenset({"customer_number"})),
        "billing": System("billing", "tests.support.listed.ListedConnector", needs=frozenset({"customer_number"})),
    }
    mine, other = (request_make(status="processing", email=f"{n}@example.com") for n in ("mine", "other"))
    processing.tasks_create(mine)
    processing.tasks_create(other)
    now = timezone.now()
    ConnectorTask.objects.filter(request=mine, connector="crm").update(status="succeeded")
    processing.tasks_wake(mine.pk, now=now)
    assert ConnectorTask.objects.get(request=mine, connector="billing").status == "waiting"  # shop has not found its numbers yet
    ConnectorTask.objects.filter(request=mine, connector="shop").update(status="succeeded")
    processing.tasks_wake(mine.pk, now=now)
    assert ConnectorTask.objects.filter(request=mine, connector="billing").values_list("status", "updated_at").get() == ("queued", now)
    assert ConnectorTask.objects.get(request=other, connector="billing").status == "waiting"


# --- Stamps and emails of a task's ends, the sweeper's order and races, the lease keeper's limits ----------


@pytest.mark.django_db
def test_a_task_that_fails_is_stamped_updated_when_it_failed_and_tells_the_subject_their_request_is_delayed(
        mailoutbox, django_capture_on_commit_callbacks):
    request = request_make(status="processing", type="access", email="delayed@example.com")
    task = _task(request, status="running", attempts=1, lease_until=timezone.now() + MINUTE)
    failed_at = dt.datetime(2026, 5, 4, 3, 2, 1, tzinfo=dt.UTC)
    with time_machine.travel(failed_at, tick=False), django_capture_on_commit_callbacks(execute=True):
        processing.task_fail(task, "PermanentError: probe: refused")
    assert ConnectorTask.objects.filter(pk=task.pk).values_list("status", "updated_at").get() == ("failed", failed_at)
    assert [(message.to, message.subject) for message in mailoutbox] == [(["delayed@example.com"], "Example Company: Your request is delayed")]


@pytest.mark.django_db
def test_a_task_retried_long_after_it_failed_counts_as_queued_from_the_retry_so_the_sweeper_leaves_it_to_its_doorbell(settings):
    settings.DSAR_SWEEP_QUEUED_MINUTES = 10
    request = request_make(status="processing", type="access", email="retried.late@example.com")
    failed = _task(request, status="failed", attempts=5)
    ConnectorTask.objects.filter(pk=failed.pk).update(updated_at=timezone.now() - 60 * MINUTE)  # it failed an hour ago
    processing.tasks_retry(request)
    assert processing.tasks_sweep(now=timezone.now(), limit=10) == {"revived": 0, "failed": 0, "final_steps": 0, "final_steps_failed": 0}
    assert ConnectorTask.objects.filter(pk=failed.pk).values_list("status", "sweeps").get() == ("queued", 0)


@pytest.mark.django_db
def test_the_sweeper_takes_an_old_lease_for_lost_work_only_on_a_row_still_running(settings):
    settings.DSAR_SWEEP_QUEUED_MINUTES = 10
    now = timezone.now()
    request = request_make(status="processing", type="access", email="old.leases@example.com")
    _task(request, "accounts", status="succeeded", attempts=1, lease_until=now - MINUTE)
    _task(request, "payments", status="failed", attempts=1, lease_until=now - MINUTE)
    FinalStep.objects.create(request=request, status="succeeded", attempts=1, lease_until=now - MINUTE)
    assert processing.tasks_sweep(now=now, limit=10) == {"revived": 0, "failed": 0, "final_steps": 0, "final_steps_failed": 0}
    rows = {task.connector: (task.status, task.sweeps) for task in ConnectorTask.objects.filter(request=request)}
    assert rows == {"accounts": ("succeeded", 0), "payments": ("failed", 0)}
    assert FinalStep.objects.filter(request=request).values_list("status", "sweeps").get() == ("succeeded", 0)


@pytest.mark.django_db
def test_waking_the_tasks_of_a_request_reads_them_in_one_query_and_wakes_them_in_one_more(settings, django_assert_num_queries):
    from connectors.systems import System

    settings.DSAR_SYSTEMS = {
        "crm": System("crm", "tests.support.listed.ListedConnector", provides=frozenset({"customer_number"})),
        "shop": System("shop", "tests.support.listed.ListedConnector", provides=frozenset({"customer_number"})),
        "billing": System("billing", "tests.support.listed.ListedConnector", needs=frozenset({"customer_number"})),
        "ledger": System("ledger", "tests.support.listed.ListedConnector", needs=frozenset({"customer_number"})),
    }
    request = request_make(status="processing", email="woken@example.com")
    processing.tasks_create(request)
    ConnectorTask.objects.filter(request=request, connector__in=["crm", "shop"]).update(status="succeeded")
    now = timezone.now()
    with django_assert_num_queries(2):
        processing.tasks_wake(request.pk, now=now)
    assert dict(ConnectorTask.objects.filter(request=request).values_list("connector", "status")) == {
        "crm": "succeeded", "shop": "succeeded", "billing": "queued", "ledger": "queued"}


def _tasks_run_together_in_a_worker_process(task_ids: list[int], log) -> subprocess.Popen:
    """Run tasks at once, a thread each, in one process with a worker's settings (a lease of 3 s),
    so that one lease keeper holds all their leases; what the process logs goes to `log`."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.worker_settings", "DATABASE_URL": database_url(connection.settings_dict)}
    code = ("import threading, django; django.setup(); from dsar import processing; "
            f"runs = [threading.Thread(target=processing.task_run, args=(pk,)) for pk in {task_ids!r}]; "
            "[run.start() for run in runs]; [run.join() for run in runs]")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _lease(task: ConnectorTask) -> dt.datetime | None:
    return ConnectorTask.objects.filter(pk=task.pk).values_list("lease_until", flat=True).get()


def _running(task: ConnectorTask) -> dt.datetime:
    """Wait for `task` to be claimed; its lease then."""
    return wait_for(lambda: ConnectorTask.objects.filter(pk=task.pk, status="running").values_list("lease_until", flat=True).first(),
                    timeout=60, what=f"task {task.pk} to start")


def _renewals(task: ConnectorTask, count: int) -> None:
    """Wait for `task`'s lease to be renewed `count` times more (renewals are a second or more apart)."""
    seen = [_lease(task)]

    def renewed_enough() -> bool:
        if (lease := _lease(task)) != seen[-1]:
            seen.append(lease)
        return len(seen) > count

    wait_for(renewed_enough, timeout=60, what=f"{count} renewals of task {task.pk}'s lease")


@pytest.mark.django_db(transaction=True)
def test_the_lease_keeper_renews_a_claim_only_while_it_stands_never_one_taken_over_swept_or_finished_nor_another_workers(
        unique_email, tmp_path):
    marker, taken, swept, finished = (_task(request_make(status="processing", type="deletion", email=unique_email(name)))
                                      for name in ("marker", "taken", "swept", "finished"))
    for task in (marker, taken, swept):
        probe_plan(task.request.email, sleep=30, records=1)  # each runs until the test stops the process
    probe_plan(finished.request.email, records=1)  # done at once
    _task(finished.request, "accounts")  # not run: no final step follows
    dead_until = timezone.now() - MINUTE  # a dead worker's claim, for the sweeper to revive
    dead = _task(request_make(status="processing", type="deletion"), status="running", attempts=1, lease_until=dead_until,
                 claimed_by="gone:1")
    with open(tmp_path / "worker.log", "wb") as log:
        worker = _tasks_run_together_in_a_worker_process([marker.pk, taken.pk, swept.pk, finished.pk], log)
    try:
        for task in (marker, taken, swept):
            _running(task)
        wait_for(lambda: ConnectorTask.objects.filter(pk=finished.pk, status="succeeded").exists(), timeout=60, what="a task to finish")
        other_until = timezone.now() + 10 * MINUTE
        # Its lease ran out and another worker claimed it (attempt 2); the sweeper put this one back in the queue; this
        # one, retried by staff since, another worker claimed afresh (attempt 1 again).
        ConnectorTask.objects.filter(pk=taken.pk).update(attempts=2, lease_until=other_until, claimed_by="elsewhere:1")
        ConnectorTask.objects.filter(pk=swept.pk).update(status="queued", lease_until=None, sweeps=1)
        ConnectorTask.objects.filter(pk=finished.pk).update(status="running", attempts=1, lease_until=other_until, claimed_by="elsewhere:2")
        _renewals(marker, 3)  # every lease the process holds has come due at least once since
        rows = {task.pk: task for task in ConnectorTask.objects.all()}
        assert (rows[taken.pk].status, rows[taken.pk].attempts, rows[taken.pk].lease_until) == ("running", 2, other_until)
        assert (rows[swept.pk].status, rows[swept.pk].attempts, rows[swept.pk].lease_until) == ("queued", 1, None)
        assert (rows[finished.pk].status, rows[finished.pk].attempts, rows[finished.pk].lease_until) == ("running", 1, other_until)
        assert (rows[dead.pk].status, rows[dead.pk].lease_until) == ("running", dead_until)
        assert (rows[marker.pk].status, rows[marker.pk].attempts) == ("running", 1)
    finally:
        process_stop(worker)


def _blocked_on_a_row_lock(query_start: str) -> int:
    """The pid of a backend whose query begins with `query_start` and waits for a row lock."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # a transaction otherwise sees the activity of its first look
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                       " AND starts_with(query, %s)", [query_start])
        row = cursor.fetchone()
    return row[0] if row else 0


@pytest.mark.django_db(transaction=True)
def test_a_renewal_that_fails_on_a_lost_connection_or_any_other_error_is_logged_and_tried_again(unique_email, tmp_path):
    task = _task(request_make(status="processing", type="deletion", email=unique_email("renewal")))
    probe_plan(task.request.email, sleep=30, records=1)  # it runs until the test stops the process
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = _tasks_run_together_in_a_worker_process([task.pk], out)
    try:
        _running(task)
        with transaction.atomic():  # hold the task's row, so the next renewal waits for it, then drop that renewal's connection
            ConnectorTask.objects.select_for_update().get(pk=task.pk)
            pid = wait_for(lambda: _blocked_on_a_row_lock('UPDATE "dsar_connectortask" SET "lease_until"'), timeout=60,
                           what="a renewal waiting for the row")
            assert _terminate(pid)
        _renewals(task, 1)  # tried again, on a connection of its own, once the row was free
        assert (" WARNING dsar.processing could not renew a lease (will try again): "
                "terminating connection due to administrator command") in log.read_text()

        with connection.cursor() as cursor:  # every renewal of this task's lease now fails, the connection whole
            cursor.execute("CREATE FUNCTION renewal_refused() RETURNS trigger LANGUAGE plpgsql AS "
                           "$$ BEGIN RAISE EXCEPTION 'renewal refused (planned)'; END $$")
            cursor.execute(f"CREATE TRIGGER renewal_refused BEFORE UPDATE OF lease_until ON dsar_connectortask FOR EACH ROW "
                           f"WHEN (OLD.id = {int(task.pk)}) EXECUTE FUNCTION renewal_refused()")
        try:
            wait_for(lambda: "renewal refused (planned)" in log.read_text(), timeout=60, what="the refused renewal to be logged")
        finally:
            with connection.cursor() as cursor:
                cursor.execute("DROP TRIGGER renewal_refused ON dsar_connectortask; DROP FUNCTION renewal_refused()")
        assert " ERROR dsar.processing could not renew a lease (will try again)\nTraceback (most recent call last):" in log.read_text()

        _renewals(task, 1)  # the keeper outlived both failures
        assert ConnectorTask.objects.filter(pk=task.pk).values_list("status", "attempts").get() == ("running", 1)
    finally:
        process_stop(worker)


@pytest.mark.django_db
def test_a_rescheduled_task_is_stamped_updated_when_rescheduled(settings):
    settings.DSAR_CONNECTOR_MAX_ATTEMPTS = 5
    task = _task(request_make(status="processing", type="access", email="stamped@example.com"), status="running", attempts=1)
    rescheduled_at = dt.datetime(2026, 5, 4, 3, 2, 1, tzinfo=dt.UTC)
    with time_machine.travel(rescheduled_at, tick=False):
        processing.task_reschedule(task, "TransientError: probe: 503")
    assert ConnectorTask.objects.filter(pk=task.pk).values_list("status", "updated_at", "last_error_at").get() == (
        "queued", rescheduled_at, rescheduled_at)


@pytest.mark.django_db
def test_the_sweeper_revives_the_longest_untouched_first_whatever_order_they_were_made_in_and_limits_final_steps_too(
        django_capture_on_commit_callbacks):
    now = timezone.now()
    for number, untouched in enumerate((1, 3, 2)):  # minutes since each was last touched, in the order they are made
        request = request_make(status="processing", email=f"task{number}@example.com")
        _task(request, status="running", attempts=1, lease_until=now - SECOND)
        ConnectorTask.objects.filter(request=request).update(updated_at=now - untouched * MINUTE)
        step = FinalStep.objects.create(request=request_make(status="processing", email=f"step{number}@example.com"),
                                        status="running", attempts=1, lease_until=now - SECOND)
        FinalStep.objects.filter(pk=step.pk).update(updated_at=now - untouched * MINUTE)
    with django_capture_on_commit_callbacks() as rung:
        assert processing.tasks_sweep(now=now, limit=2) == {"revived": 2, "failed": 0, "final_steps": 2, "final_steps_failed": 0}
    assert len(rung) == 4  # one doorbell for each task and each final step revived
    assert sorted(ConnectorTask.objects.filter(status="queued").values_list("request__email", flat=True)) == [
        "task1@example.com", "task2@example.com"]
    assert sorted(FinalStep.objects.filter(status="queued").values_list("request__email", flat=True)) == [
        "step1@example.com", "step2@example.com"]


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_leaves_work_whose_request_stopped_processing_while_it_waited_for_its_lock_and_goes_on_to_the_next():
    now = timezone.now()
    stopping, other = (request_make(status="processing", email=f"{name}@example.com") for name in ("stopping", "other"))
    first = _task(stopping, status="running", attempts=1, lease_until=now - SECOND)
    second = _task(other, status="running", attempts=1, lease_until=now - SECOND)
    ConnectorTask.objects.filter(pk=first.pk).update(updated_at=now - 2 * MINUTE)  # the sweeper takes it first
    ConnectorTask.objects.filter(pk=second.pk).update(updated_at=now - MINUTE)
    with transaction.atomic():  # the request is locked, by staff failing it say, when the sweeper comes to its task
        locks.request_lock(stopping.pk)
        swept: list = []
        sweep = threading.Thread(target=lambda: swept.append(_swept(now)))
        sweep.start()
        wait_for(lambda: _blocked_on_a_row_lock('SELECT "dsar_request"'), timeout=60, what="the sweeper to wait for the request's lock")
        Request.objects.filter(pk=stopping.pk).update(status="failed")
    sweep.join(60)
    assert swept == [{"revived": 1, "failed": 0, "final_steps": 0, "final_steps_failed": 0}]
    assert ConnectorTask.objects.get(pk=first.pk).status == "running"  # left for good: its request failed
    # revived and rung for: a worker of this test run may have claimed it since
    assert dict(ConnectorTask.objects.values_list("pk", "sweeps")) == {first.pk: 0, second.pk: 1}
    # Leave that worker nothing to do, and let what it started end before the tables are emptied:
    # its transaction and the emptying's TRUNCATE could otherwise deadlock.
    Request.objects.filter(pk=other.pk).update(status="failed")
    wait_for(lambda: not _others_in_a_transaction(), timeout=60, what="other sessions to end their transactions")


def _others_in_a_transaction() -> int:
    """How many other backends of this database are running a statement or hold a transaction open."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                       " AND backend_type = 'client backend'"
                       " AND (state = 'active' OR state LIKE 'idle in transaction%%')")
        return cursor.fetchone()[0]


def _swept(now: dt.datetime) -> dict:
    try:
        return processing.tasks_sweep(now=now, limit=10)
    finally:
        connection.close()


@pytest.mark.django_db
def test_the_sweeper_takes_work_untouched_equally_long_in_the_order_it_was_made():
    """Whatever order the database happens to hold the rows in: here, that of the last made first."""
    now = timezone.now()
    requests = [request_make(status="pending_review", email=f"tie{number}@example.com") for number in range(3)]
    tasks = [_task(request, status="running", attempts=1, lease_until=now + MINUTE) for request in requests]
    for request, task in reversed(list(zip(requests, tasks))):  # approved from the last filed; their tasks lost at one moment
        Request.objects.filter(pk=request.pk).update(status="processing")
        ConnectorTask.objects.filter(pk=task.pk).update(lease_until=now - SECOND, updated_at=now - MINUTE)
    assert processing.tasks_sweep(now=now, limit=2)["revived"] == 2
    assert sorted(ConnectorTask.objects.filter(status="queued").values_list("request__email", flat=True)) == [
        "tie0@example.com", "tie1@example.com"]


@pytest.mark.django_db
def test_a_final_step_run_while_another_worker_holds_it_says_so_and_changes_nothing(caplog):
    request = request_make(status="processing", type="deletion", email="held@example.com")
    lease = timezone.now() + MINUTE
    step = FinalStep.objects.create(request=request, status="running", attempts=1, lease_until=lease, claimed_by="elsewhere:1")
    with caplog.at_level("INFO", logger="dsar.processing"):
        processing.final_step_run(request.pk)
    assert caplog.messages == [f"request {request.pk}: final step has nothing to do"]
    assert FinalStep.objects.filter(pk=step.pk).values_list("status", "attempts", "lease_until").get() == ("running", 1, lease)
    assert Request.objects.get(pk=request.pk).status == "processing"


@pytest.mark.django_db(transaction=True)
def test_a_final_step_has_its_lease_renewed_while_its_archive_is_written(settings, unique_email, tmp_path):
    from connectors.content import subject_prefix

    email = unique_email("slow.archive")
    store = settings.DSAR_SYSTEMS["content"].options["storage_options"]["location"]
    held = os.path.join(store, subject_prefix(email), "content", "held.bin")
    os.makedirs(os.path.dirname(held))
    os.mkfifo(held)  # a file whose bytes come when the test writes them: the archive waits for them
    request = request_make(status="processing", type="access", email=email)
    task = _task(request, "content")
    with open(tmp_path / "worker.log", "wb") as log:
        worker = _tasks_run_together_in_a_worker_process([task.pk], log)  # the task, then (the last one) its final step
    try:
        claimed = wait_for(lambda: FinalStep.objects.filter(request=request, status="running").values_list("lease_until", flat=True).first(),
                           timeout=60, what="the final step to start")
        wait_for(lambda: FinalStep.objects.get(request=request).lease_until != claimed, timeout=30, what="the final step's lease renewed")
        with open(held, "wb"):  # the file ends, empty: the archive is finished
            pass
        assert worker.wait(60) == 0
    finally:
        process_stop(worker)
        os.unlink(held)
    assert Request.objects.get(pk=request.pk).status == "completed"
    assert FinalStep.objects.filter(request=request).values_list("status", "attempts", "lease_until").get() == ("succeeded", 1, None)


@pytest.mark.django_db
def test_an_export_that_cannot_be_written_fails_the_final_step_and_the_request_and_is_logged(listed, caplog):
    listed(crm={"files": {"lost.pdf": None}})  # listed when gathered, unreadable when the archive is written
    request = request_make(status="processing", type="access", email="unwritten@example.com")
    processing.tasks_create(request)
    with caplog.at_level("ERROR", logger="dsar.processing"):
        processing.task_run(request.tasks.get().pk)  # the last task: this worker takes the final step
    assert [record.getMessage() for record in caplog.records] == [f"request {request.pk}: the export could not be written"]
    failed = Request.objects.get(pk=request.pk)
    assert (failed.status, failed.failure_reason) == ("failed", "export: PermanentError: crm: lost.pdf cannot be read (planned)")
    assert FinalStep.objects.filter(request=request).values_list("status", "last_error").get() == (
        "failed", "export: PermanentError: crm: lost.pdf cannot be read (planned)")
    assert not Export.objects.filter(request=request).exists()


def _processing_log(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "dsar.processing"]


@pytest.mark.django_db
def test_a_task_run_logs_its_start_its_success_and_its_requests_completion_and_a_second_run_that_it_had_nothing_to_do(
        listed, caplog):
    from connectors.base import Record

    listed(crm={"records": [Record("interests", {"value": "tea"}, "crm")]})
    request = request_make(status="processing", type="access", email="logged@example.com")
    processing.tasks_create(request)
    task = request.tasks.get()
    with caplog.at_level("INFO", logger="dsar.processing"):
        processing.task_run(task.pk)  # the last task: this worker takes the final step
    assert _processing_log(caplog) == [f"request {request.pk}: crm started (attempt 1)", f"request {request.pk}: crm succeeded",
                                       f"request {request.pk}: completed"]
    caplog.clear()
    with caplog.at_level("INFO", logger="dsar.processing"):
        processing.task_run(task.pk)
    assert _processing_log(caplog) == [f"task {task.pk}: nothing to do (finished, running elsewhere, or not due)"]


@pytest.mark.django_db
def test_a_connector_that_breaks_unexpectedly_fails_its_task_with_the_traceback_and_is_logged(listed, caplog):
    from connectors.base import Record

    listed(crm={"records": [Record("interests", {"value": "tea"}, "crm", collected_at=object())]})  # not a time: a bug
    request = request_make(status="processing", type="access", email="broken@example.com")
    processing.tasks_create(request)
    task = request.tasks.get()
    with caplog.at_level("ERROR", logger="dsar.processing"):
        processing.task_run(task.pk)
    assert _processing_log(caplog) == [f"request {request.pk}: crm raised an unexpected error",
                                       f"request {request.pk}: crm failed: TypeError: Type is not JSON serializable: object"]
    failed = ConnectorTask.objects.get(pk=task.pk)
    assert failed.status == "failed"
    assert failed.last_error.startswith("TypeError: Type is not JSON serializable: object\nTraceback (most recent call last):\n")
    assert Request.objects.get(pk=request.pk).failure_reason == "crm: TypeError: Type is not JSON serializable: object"


@pytest.mark.django_db
def test_a_result_for_a_task_no_longer_running_is_dropped_with_a_warning(caplog):
    request = request_make(status="processing", type="deletion", email="dropped@example.com")
    task = _task(request, status="queued", attempts=1)  # swept back to the queue while its worker ran
    with caplog.at_level("WARNING", logger="dsar.processing"):
        assert processing.task_succeed(task, counts={"feedback_ratings": 1}) is False
    assert _processing_log(caplog) == [f"request {request.pk}: probe finished but its task was no longer running as its attempt 1"]
    assert ConnectorTask.objects.filter(pk=task.pk).values_list("status", "counts").get() == ("queued", {})


@pytest.mark.django_db
def test_a_worker_whose_task_was_claimed_again_records_no_result_retry_or_failure_over_the_new_attempt(caplog):
    request = request_make(status="processing", type="deletion", email="overtaken@example.com")
    other = _task(request, "accounts", status="running", attempts=1)
    task = _task(request, status="running", attempts=1)  # this worker's claim, attempt 1
    # its lease ran out while it worked: the sweeper put it back and another worker claimed it
    ConnectorTask.objects.filter(pk=task.pk).update(attempts=2, claimed_by="other-host:42")
    with caplog.at_level("WARNING", logger="dsar.processing"):
        assert processing.task_succeed(task, counts={"feedback_ratings": 1}) is False
        processing.task_reschedule(task, "TimeoutError: slow\nmore detail")
        processing.task_fail(task, "PermanentError: refused\nmore detail")
    assert _processing_log(caplog) == [
        f"request {request.pk}: probe finished but its task was no longer running as its attempt 1",
        f"request {request.pk}: probe was to retry after TimeoutError: slow but its task was no longer running as its attempt 1",
        f"request {request.pk}: probe failed with PermanentError: refused but its task was no longer running as its attempt 1",
    ]
    row = ConnectorTask.objects.filter(pk=task.pk).values_list("status", "attempts", "counts", "last_error", "claimed_by").get()
    assert row == ("running", 2, {}, "", "other-host:42")
    assert Request.objects.get(pk=request.pk).status == "processing"
    assert ConnectorTask.objects.get(pk=other.pk).status == "running"
    # the new attempt's result is recorded as usual
    task.attempts = 2
    assert processing.task_succeed(task, counts={"feedback_ratings": 3}) is False  # accounts still runs
    assert ConnectorTask.objects.filter(pk=task.pk).values_list("status", "counts").get() == ("succeeded", {"feedback_ratings": 3})


@pytest.mark.django_db
def test_a_final_step_result_of_a_claim_taken_over_is_dropped_with_a_warning(caplog):
    request = request_make(status="processing", type="deletion", email="overtaken@example.com")
    FinalStep.objects.create(request=request)
    slow = processing.final_step_claim(request.pk)
    FinalStep.objects.filter(request=request).update(lease_until=timezone.now() - SECOND)
    processing.final_step_claim(request.pk)  # another worker took the step over
    with caplog.at_level("WARNING", logger="dsar.processing"):
        processing.final_step_complete(slow, result={"erased": {}, "retained": []})
    assert _processing_log(caplog) == [f"request {request.pk}: its final step was taken over by another worker; discarding this result"]
    assert Request.objects.get(pk=request.pk).status == "processing"


@pytest.mark.django_db
def test_a_final_step_result_after_the_sweeper_put_the_step_back_in_the_queue_is_dropped_and_the_step_waits_for_its_next_claim(caplog):
    request = request_make(status="processing", type="deletion", email="requeued@example.com")
    FinalStep.objects.create(request=request)
    slow = processing.final_step_claim(request.pk)
    FinalStep.objects.filter(request=request).update(status="queued", lease_until=None)  # swept back while its worker ran
    with caplog.at_level("WARNING", logger="dsar.processing"):
        processing.final_step_complete(slow, result={"erased": {}, "retained": []})
    assert _processing_log(caplog) == [f"request {request.pk}: its final step was taken over by another worker; discarding this result"]
    assert FinalStep.objects.filter(request=request).values_list("status", "attempts", "finished_at").get() == ("queued", 1, None)
    assert Request.objects.get(pk=request.pk).status == "processing"


@pytest.mark.django_db
def test_a_completed_export_records_its_size_stamps_its_final_step_emails_the_link_until_it_expires_and_discards_the_work_area(
        listed, settings, mailoutbox, django_capture_on_commit_callbacks):
    from connectors.base import Record

    settings.DSAR_REVIEW_BEFORE_RELEASE, settings.DSAR_EXPORT_TTL_DAYS = False, 7
    listed(crm={"records": [Record("interests", {"value": "t" * 300_000}, "crm")]})  # more than a task row carries: staged in files
    request = request_make(status="processing", type="access", email="complete@example.com")
    processing.tasks_create(request)
    finished_at = dt.datetime(2026, 5, 4, 3, 2, 1, tzinfo=dt.UTC)
    with time_machine.travel(finished_at, tick=False), django_capture_on_commit_callbacks(execute=True):
        processing.task_run(request.tasks.get().pk)  # the last task: this worker takes the final step
    assert FinalStep.objects.filter(request=request).values_list("status", "finished_at").get() == ("succeeded", finished_at)
    completed, export = Request.objects.get(pk=request.pk), Export.objects.get(request=request)
    assert (sorted(completed.result), completed.result["categories"]["interests"]) == (["bytes", "categories"], 1)
    assert completed.result["bytes"] == export.bytes == default_storage.size(export.path)  # the archive's size, as stored
    with default_storage.open(export.path, "rb") as stored:
        assert export.sha256 == hashlib.sha256(stored.read()).hexdigest()
    [email] = mailoutbox
    assert (email.to, email.subject) == (["complete@example.com"], "Example Company: Your request is complete")
    assert "The link works until 11 May 2026, 03:02 (UTC time)." in email.body
    assert re.search(rf"^{re.escape(settings.DSAR_PUBLIC_URL)}/api/v1/requests/{request.pk}/download/\S+$", email.body, re.MULTILINE)
    assert not default_storage.exists(f"work/{request.pk}")


@pytest.mark.django_db
def test_a_waiting_system_runs_with_the_identities_found_for_its_own_request_only(staged_systems):
    ada, bob = (request_make(status="processing", type="access", email=email) for email in ("ada@example.com", "bob@example.com"))
    for request in (ada, bob):
        processing.tasks_create(request)
        processing.task_run(request.tasks.get(connector="crm").pk)  # ada's is C-1, bob's C-2
    processing.task_run(ada.tasks.get(connector="billing").pk)
    assert ada.tasks.get(connector="billing").counts == {"interactions.account_history": 2}  # tea and cup, not bob's pot


@pytest.mark.django_db
def test_a_task_whose_workers_were_lost_until_the_attempt_bound_fails_saying_so(settings, unique_email):
    settings.DSAR_CONNECTOR_MAX_ATTEMPTS = 3
    request = request_make(status="processing", type="deletion", email=unique_email("lost"))
    task = _task(request, status="running", attempts=3, lease_until=timezone.now() - SECOND)  # its third worker died too
    processing.task_run(task.pk)
    assert ConnectorTask.objects.filter(pk=task.pk).values_list("status", "last_error").get() == (
        "failed", "gave up after 3 attempts; last error: worker lost")
    assert probe_calls(request.email) == 0


@pytest.mark.django_db
def test_a_task_under_a_shorter_time_limit_than_a_final_steps_rings_for_the_final_step_instead_of_taking_it(caplog, unique_email):
    email = unique_email("short")
    probe_plan(email, records=1)
    request = request_make(status="processing", type="deletion", email=email)
    task = _task(request)  # the probe's time limit is 5 s
    with caplog.at_level("INFO", logger="dsar.processing"):
        processing.task_run(task.pk)
    assert FinalStep.objects.filter(request=request).values_list("status", "attempts").get() == ("queued", 0)
    assert Request.objects.get(pk=request.pk).status == "processing"
    assert _processing_log(caplog) == [f"request {request.pk}: probe started (attempt 1)", f"request {request.pk}: probe succeeded"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker")
def test_a_worker_that_finishes_the_last_task_under_a_short_time_limit_rings_and_a_worker_takes_the_final_step(unique_email):
    email = unique_email("rung")
    probe_plan(email, records=1)
    request = request_make(status="processing", type="deletion", email=email)
    processing.tasks_ring([_task(request)])  # committed: rung at once
    completed = wait_until_final(request.pk)
    assert (completed.status, completed.result["erased"]) == ("completed", {"feedback_ratings": 1})


def _task_run_on_a_connection_of_its_own(task_id: int, backends: list[int]) -> None:
    """Run the task in this thread, on its own connection, whose backend's pid goes into `backends` first."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backends.append(cursor.fetchone()[0])
        processing.task_run(task_id)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_task_whose_database_connection_drops_while_its_connector_works_is_retried_and_logged(settings, unique_email, caplog):
    settings.DSAR_CONNECTOR_MAX_ATTEMPTS = 5
    settings.DSAR_RETRY_BASE_SECONDS, settings.DSAR_RETRY_MAX_SECONDS = 60, 60  # no worker of the test run retries it meanwhile
    email = unique_email("dropped")
    probe_plan(email, sleep=3, records=1)
    request = request_make(status="processing", type="deletion", email=email)
    task = _task(request)
    backends = []
    with caplog.at_level("WARNING", logger="dsar.processing"):
        run = threading.Thread(target=_task_run_on_a_connection_of_its_own, args=(task.pk, backends))
        run.start()
        wait_for(lambda: probe_calls(email) == 1, timeout=60, what="the connector to be called")
        [backend] = backends  # the worker's connection, idle while the connector works
        assert _terminate(backend)
        run.join(60)
    stored = ConnectorTask.objects.get(pk=task.pk)
    assert (stored.status, stored.attempts) == ("queued", 1)
    prefix = "database connection lost: OperationalError: "
    assert stored.last_error.startswith(prefix) and "terminating connection due to administrator command" in stored.last_error
    error = stored.last_error.removeprefix(prefix)
    messages = _processing_log(caplog)
    assert messages[0] == f"request {request.pk}: probe lost its database connection: {error}"
    assert re.fullmatch(rf"request {request.pk}: probe will retry in \d+\.\ds: database connection lost: OperationalError: .*", messages[1])
    assert len(messages) == 2


@pytest.mark.django_db
def test_an_archive_whose_completion_cannot_be_recorded_is_deleted(listed):
    from django.db import IntegrityError

    from connectors.base import Record

    listed(crm={"records": [Record("interests", {"value": "tea"}, "crm")]})
    request = request_make(status="processing", type="access", email="unrecorded@example.com")
    processing.tasks_create(request)
    now = timezone.now()  # a request has one export: this row stands in the way of the one the final step records
    Export.objects.create(request=request, path="exports/elsewhere.zip", bytes=1, sha256="0" * 64, created_at=now, expires_at=now + MINUTE)
    with pytest.raises(IntegrityError):
        processing.task_run(request.tasks.get().pk)  # the last task: this worker takes the final step
    assert default_storage.listdir(f"exports/{request.pk}") == ([], [])


@pytest.mark.django_db
def test_a_task_doorbell_carries_its_connectors_time_limits_and_its_countdown(django_capture_on_commit_callbacks):
    from celery.signals import before_task_publish

    published = []

    def seen(sender=None, headers=None, **_) -> None:
        published.append((sender, headers["argsrepr"], tuple(headers["timelimit"]), dt.datetime.fromisoformat(headers["eta"])))

    task = _task(request_make(status="processing", email="rung@example.com"))  # the probe: a time limit of 5 s
    before_task_publish.connect(seen)
    try:
        before = timezone.now()
        with django_capture_on_commit_callbacks(execute=True):  # rung as the transaction commits
            processing.tasks_ring([task], countdown=7)
        after = timezone.now()
    finally:
        before_task_publish.disconnect(seen)
    [(name, args, limits, eta)] = published
    assert (name, args, limits) == ("dsar.tasks.connector_task_run", f"({task.pk},)", (65, 5))  # hard, soft
    assert before + 7 * SECOND <= eta <= after + 7 * SECOND


@pytest.mark.django_db
def test_a_completed_deletion_is_audited_as_the_systems_and_tells_the_subject_their_data_was_erased(mailoutbox, django_capture_on_commit_callbacks):
    request = request_make(status="processing", type="deletion", email="erased@example.com")
    _task(request, status="succeeded", attempts=1, receipt={"erased": {"feedback_ratings": 2}, "retained": [], "suppressed_sources": []})
    FinalStep.objects.create(request=request)
    with django_capture_on_commit_callbacks(execute=True):
        processing.final_step_run(request.pk)
    assert Request.objects.get(pk=request.pk).status == "completed"
    entry = AuditEntry.objects.filter(request=request).latest("at")
    assert (entry.action, entry.actor, entry.to_status) == ("completed", "system", "completed")
    [email] = mailoutbox
    assert (email.to, email.subject) == (["erased@example.com"], "Example Company: Your request is complete")
    assert "We have erased your data, as you asked." in email.body


@pytest.mark.django_db
def test_an_export_held_for_review_is_not_released_and_its_subject_is_told_it_is_checked_without_a_link(listed, settings, mailoutbox,
                                                                                     django_capture_on_commit_callbacks):
    from connectors.base import Record

    settings.DSAR_REVIEW_BEFORE_RELEASE = True
    listed(crm={"records": [Record("interests", {"value": "tea"}, "crm")]})
    request = request_make(status="processing", type="access", email="reviewed@example.com")
    processing.tasks_create(request)
    with django_capture_on_commit_callbacks(execute=True):
        processing.task_run(request.tasks.get().pk)  # the last task: this worker takes the final step
    assert Request.objects.get(pk=request.pk).status == "completed"
    export = Export.objects.get(request=request)
    assert export.released_at is None
    # Staff release it after review, which sends the link; meanwhile the person knows why they wait.
    [told] = mailoutbox
    assert (told.to, told.subject) == (["reviewed@example.com"], "Example Company: We are checking your data before we send it")
    assert f"/requests/{request.pk}/download/" not in told.body


@pytest.mark.django_db
def test_a_deletion_task_erases_only_the_categories_the_request_asked_for(unique_email):
    from connectors.base import Identity
    from connectors.registry import connector_get
    from estate.loader import estate_load, estate_parse

    email = unique_email("some.only")
    estate_load(estate_parse({"subjects": [{"email": email, "accounts": {"name": "Sam Only", "searches": ["bike repair near me"]}}]}))
    request = request_make(status="processing", type="deletion", email=email)
    Request.objects.filter(pk=request.pk).update(categories=["searches_commands"])
    task = _task(Request.objects.get(pk=request.pk), "accounts")
    processing.task_run(task.pk)
    assert ConnectorTask.objects.get(pk=task.pk).status == "succeeded"
    left = {record.category for record in connector_get("accounts").gather(Identity(email=email))}
    assert "searches_commands" not in left and "name_contact" in left


@pytest.mark.django_db
def test_a_task_stages_what_it_gathers_under_its_own_request_connector_and_attempt(unique_email):
    email = unique_email("staged.where")
    probe_plan(email, records=1)
    request = request_make(status="processing", email=email)
    task = _task(request, attempts=1)  # its second attempt, once claimed
    processing.task_run(task.pk)
    stored = ConnectorTask.objects.get(pk=task.pk)
    assert (stored.status, stored.output["prefix"]) == ("succeeded", f"work/{request.pk}/probe/2")
