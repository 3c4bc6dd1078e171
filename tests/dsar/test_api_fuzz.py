"""Schemathesis over the generated OpenAPI document: no server error, no drift from the schema,
and nothing changed by a request the API refused. About 250 cases for each of its operations: a few thousand."""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from dsar.models import AuditEntry, ConnectorTask, Export, Request, RequestQuestion
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
@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_never_answers_5xx_matches_its_schema_and_refused_input_changes_nothing(case, reviewer_token):
    token = f"Token {reviewer_token}"
    # A real staff token stands in for the generated one; a case that leaves the header out on
    # purpose (negative data) is sent without it, and must be refused.
    sends_auth = "authorization" in {name.lower() for name in (case.headers or {})}
    headers = {"Authorization": token} if "/staff/" in case.path and sends_auth else {}
    before = _state()
    response = case.call(headers=headers)
    excluded = [positive_data_acceptance] if _refused_across_fields(response) else []
    if response.status_code == 413:  # a body over the size limit, refused unread: as good a refusal as a 400
        excluded.append(negative_data_rejection)
    case.validate_response(response, headers=headers, excluded_checks=excluded)
    if 400 <= response.status_code < 500:
        assert _state() == before, f"{case.method} {case.path} answered {response.status_code} but changed the database"


# Refusals of values each valid alone that OpenAPI cannot forbid together (dsar/services.py,
# request_choices_check): a period whose first day comes after its last or lies in the future, and a
# period or part size asked of a deletion. Schema-valid data refused so is expected; anything else
# schema-valid and refused fails the check.
ACROSS_FIELDS = {"invalid_period", "period_in_future", "period_not_allowed", "part_size_not_allowed"}


def _refused_across_fields(response) -> bool:
    if response.status_code != 400:
        return False
    try:
        return response.json().get("error") in ACROSS_FIELDS
    except ValueError:
        return False


def _state() -> tuple:
    """Everything a request could change: rows, their last change, and the audit trail's length."""
    return (
        list(Request.objects.order_by("pk").values_list("pk", "status", "updated_at")),
        ConnectorTask.objects.count(),
        Export.objects.count(),
        AuditEntry.objects.count(),
        list(RequestQuestion.objects.order_by("pk").values_list("pk", "answered_at")),
    )
