"""Schemathesis over the generated OpenAPI document: no server error, and no drift from the schema."""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from dsar.wsgi import application


@pytest.fixture
def api_schema(db):
    # The WSGI handler closes the database connection after each request, as in production; here
    # that connection holds the test's transaction, so keep it open, as Django's test client does.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_never_answers_5xx_and_matches_its_schema(case, reviewer):
    token = reviewer._credentials["HTTP_AUTHORIZATION"]
    headers = {"Authorization": token} if "/staff/" in case.path else {}
    case.call_and_validate(headers=headers)
