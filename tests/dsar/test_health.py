import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_health_reports_database_broker_and_workers(client, worker):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["broker"] == "ok"
    assert body["workers"] >= 1
