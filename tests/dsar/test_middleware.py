"""dsar/middleware.py's HTTPS rule behind TLS: pages people open in a browser are redirected to
HTTPS, the API is refused over plain HTTP (never quietly redirected), the health checks are
answered as they come (ASVS 4.1.2)."""

from __future__ import annotations

import pytest

from dsar.models import Request

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def behind_tls(settings):
    """The settings dsar/settings.py makes for an https:// DSAR_PUBLIC_URL (tests/dsar/test_config.py
    reads them from there)."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^api/", r"^healthz"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def test_a_portal_page_over_http_is_redirected_to_https(client, behind_tls):
    answer = client.get("/request/")
    assert (answer.status_code, answer["Location"]) == (301, "https://testserver/request/")


def test_the_api_over_http_is_refused_in_its_error_shape_and_files_nothing(client, behind_tls, mailoutbox):
    answer = client.post("/api/v1/requests", {"type": "access", "email": "plain.http@example.com"}, content_type="application/json")
    assert (answer.status_code, answer["Content-Type"]) == (403, "application/json")
    assert answer.json() == {"error": "https_required", "detail": "This API is served over HTTPS only."}
    # The headers every API answer carries, though this one is made before the middleware that adds them.
    assert (answer["Content-Security-Policy"], answer["Cache-Control"]) == ("default-src 'none'; frame-ancestors 'none'", "no-store")
    assert not Request.objects.filter(email="plain.http@example.com").exists()
    assert mailoutbox == []
    # Reading is refused too, the staff API's and the document's paths alike: nothing under /api/ is redirected.
    for path in ("/api/v1/staff/requests", "/api/schema/"):
        refused = client.get(path)
        assert (refused.status_code, refused.json()["error"]) == (403, "https_required"), path


def test_the_api_over_https_at_the_proxy_is_served(client, behind_tls, mailoutbox):
    answer = client.post("/api/v1/requests", {"type": "access", "email": "over.tls@example.com"}, content_type="application/json",
                         HTTP_X_FORWARDED_PROTO="https")
    assert answer.status_code == 201
    assert Request.objects.filter(email="over.tls@example.com").count() == 1


def test_the_health_checks_are_answered_over_http(client, behind_tls):
    ready = client.get("/healthz/ready")
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
    health = client.get("/healthz")
    assert health.status_code in (200, 503) and "Location" not in health  # up or down, but answered, not redirected
    assert set(health.json()) == {"status", "database", "broker", "workers"}


def test_without_tls_the_api_is_answered_over_http(client, mailoutbox):
    answer = client.post("/api/v1/requests", {"type": "access", "email": "dev.machine@example.com"}, content_type="application/json")
    assert answer.status_code == 201


def test_every_operation_documents_the_https_refusal(client):
    document = client.get("/api/schema/?format=json").json()
    refusals = {(path, method): operation["responses"].get("403") for path, operations in document["paths"].items()
                for method, operation in operations.items()}
    assert len(refusals) == 19  # with the review of other people's data, read and decided; assignment, notes, bulk review
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    https = "Behind TLS, a call made over plain HTTP is refused (`https_required`), never redirected to HTTPS."
    for (path, method), refusal in refusals.items():
        # The staff operations could already answer 403 (`forbidden`); they say both.
        description = f"The caller may not do this (`forbidden`). {https}" if "/staff/" in path else https
        assert refusal == {"content": error, "description": description}, (path, method)
