"""dsar/health.py: /healthz says whether the database, the broker and the workers answer (contract §3)."""

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
