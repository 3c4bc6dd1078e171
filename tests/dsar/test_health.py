"""dsar/health.py: /healthz says whether the database, the broker and the workers answer (contract §3)."""

import threading
import time

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_health_reports_database_broker_and_workers(client, worker):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["broker"] == "ok"
    assert body["workers"] >= 1


def test_health_answers_503_saying_the_broker_is_down_when_it_does_not_answer(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "down", "database": "ok", "broker": "down", "workers": 0}


def test_readiness_asks_no_backing_service(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    answer = client.get("/healthz/ready")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


# The worker count is cached per process for WORKERS_CACHE_SECONDS (5 seconds) and refreshed by one
# ping at a time. These tests give /healthz a process state that has measured nothing yet (a new
# WorkerCount, the product's own class), hold its clock still or move it by hand, and count the pings
# with a wrapper that calls Celery's real ping.


@pytest.fixture
def clock(monkeypatch):
    """The clock dsar.health reads, moved only by the test: `clock.now = 1004.0`."""
    import dsar.health

    class Clock:
        now = 1000.0

    monkeypatch.setattr(dsar.health, "monotonic", lambda: Clock.now)
    return Clock


@pytest.fixture
def fresh_process(monkeypatch):
    """/healthz as in a process that has not yet measured the worker count."""
    import dsar.health

    monkeypatch.setattr(dsar.health, "worker_count", dsar.health.WorkerCount())


@pytest.fixture
def pings(monkeypatch):
    """Counts Celery's worker pings; each still goes to the real workers. `pings.before_ping`, if
    set, runs before the real ping (to hold it in flight)."""
    from dsar.celery import app

    real_ping = app.control.ping
    counting = threading.Lock()

    class Pings:
        count = 0
        before_ping = None

    def ping(*args, **kwargs):
        with counting:
            Pings.count += 1
        if Pings.before_ping is not None:
            Pings.before_ping()
        return real_ping(*args, **kwargs)

    monkeypatch.setattr(app.control, "ping", ping)
    return Pings


def _get_healthz_concurrently(times: int, after_each=None) -> list[tuple[int, dict]]:
    """GET /healthz from `times` threads released together; each answer as (status, body). Fails,
    rather than hangs, if any thread has not answered within a minute."""
    from django.db import connections
    from django.test import Client

    start = threading.Barrier(times)
    answers = []

    def get():
        try:
            start.wait(timeout=30)
            answer = Client().get("/healthz")
            answers.append((answer.status_code, answer.json()))
            if after_each is not None:
                after_each()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=get, daemon=True) for _ in range(times)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert len(answers) == times, f"{times - len(answers)} of {times} /healthz calls did not answer within a minute"
    return answers


def test_twenty_concurrent_first_health_checks_ping_once_and_all_report_the_workers_found(
        worker, fresh_process, clock, pings):
    answers = _get_healthz_concurrently(20)
    assert pings.count == 1
    assert all(status == 200 for status, _ in answers)
    counts = {body["workers"] for _, body in answers}
    assert len(counts) == 1 and counts.pop() >= 1


def test_while_a_ping_refreshes_the_count_other_health_checks_answer_the_last_count_without_waiting(
        client, worker, fresh_process, clock, pings):
    known = client.get("/healthz").json()["workers"]
    assert pings.count == 1 and known >= 1
    clock.now = 1006.0  # the count is now older than its 5 seconds
    others_answered = threading.Event()
    answered = []
    answered_lock = threading.Lock()

    def count_an_answer():
        with answered_lock:
            answered.append(1)
            if len(answered) == 19:
                others_answered.set()

    held = []
    pings.before_ping = lambda: held.append(others_answered.wait(timeout=30))
    answers = _get_healthz_concurrently(20, after_each=count_an_answer)
    assert pings.count == 2
    assert held == [True]  # the 19 others answered while the one ping was held in flight
    assert answers == [(200, {"status": "ok", "database": "ok", "broker": "ok", "workers": known})] * 20


def test_a_health_check_within_five_seconds_of_the_last_ping_does_not_ping_again_and_one_after_does(
        client, worker, fresh_process, clock, pings):
    assert client.get("/healthz").status_code == 200
    assert pings.count == 1
    clock.now = 1004.0
    assert client.get("/healthz").status_code == 200
    assert pings.count == 1
    clock.now = 1005.0
    assert client.get("/healthz").status_code == 200
    assert pings.count == 2
