"""Threat: someone reaches a request that is not theirs. Every subject and staff endpoint is
called by a signed-out caller, the wrong subject, and with tampered or replayed credentials."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from dsar.models import Request

from ..conftest import code_from
from ..factories import request_make
from ..support.flows import file_request

pytestmark = pytest.mark.django_db(transaction=True)

STAFF_CALLS = [
    ("get", "/api/v1/staff/requests"),
    ("get", "/api/v1/staff/requests/{id}"),
    ("post", "/api/v1/staff/requests/{id}/approve"),
    ("post", "/api/v1/staff/requests/{id}/deny"),
    ("post", "/api/v1/staff/requests/{id}/extend"),
    ("post", "/api/v1/staff/requests/{id}/retry"),
    ("post", "/api/v1/staff/requests/{id}/ask"),
]


@pytest.fixture
def two_subjects(api, mailoutbox, unique_email):
    mine, my_token = file_request(api, mailoutbox, type="access", email=unique_email("mine"))
    theirs, their_token = file_request(api, mailoutbox, type="access", email=unique_email("theirs"))
    return mine, my_token, theirs, their_token


@pytest.mark.parametrize("credential", ["none", "other subject", "tampered", "staff token as bearer", "wrong scheme"])
def test_subject_endpoints_refuse_anyone_but_the_requests_own_token(api, reviewer_token, two_subjects, credential):
    mine, my_token, theirs, their_token = two_subjects
    header = {
        "none": None,
        "other subject": f"Bearer {their_token}",
        "tampered": f"Bearer {my_token[:-1]}{'A' if my_token[-1] != 'A' else 'B'}",
        "staff token as bearer": f"Bearer {reviewer_token}",
        "wrong scheme": f"Token {my_token}",
    }[credential]
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    assert api.get(f"/api/v1/requests/{mine}", **extra).status_code == 404
    assert api.post(f"/api/v1/requests/{mine}/cancel", **extra).status_code == 404
    assert api.post(f"/api/v1/requests/{mine}/answer", {"answer": "It is me."}, format="multipart", **extra).status_code == 404
    assert Request.objects.get(pk=mine).status == "pending_review"


def test_a_used_code_cannot_be_replayed_for_a_second_token(api, mailoutbox, unique_email):
    email = unique_email("replay")
    created = api.post("/api/v1/requests", {"type": "access", "email": email}, format="json").json()
    code = code_from(mailoutbox, email)
    assert api.post(f"/api/v1/requests/{created['id']}/verify", {"code": code}, format="json").status_code == 200
    replay = api.post(f"/api/v1/requests/{created['id']}/verify", {"code": code}, format="json")
    assert replay.status_code == 409


@pytest.mark.parametrize(("method", "path"), STAFF_CALLS)
@pytest.mark.parametrize("credential", ["none", "unknown token", "subject bearer token", "deactivated staff"])
def test_staff_endpoints_refuse_callers_who_are_not_active_staff(api, two_subjects, method, path, credential, reviewer_token):
    mine, my_token, _, _ = two_subjects
    client = APIClient()
    if credential == "unknown token":
        client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    elif credential == "subject bearer token":
        client.credentials(HTTP_AUTHORIZATION=f"Token {my_token}")
    elif credential == "deactivated staff":
        from django.contrib.auth import get_user_model

        client.credentials(HTTP_AUTHORIZATION=f"Token {reviewer_token}")
        get_user_model().objects.filter(username="rita").update(is_active=False)
    answer = getattr(client, method)(path.format(id=mine), {"reason": "x", "days": 1}, format="json")
    assert answer.status_code == 401
    assert Request.objects.get(pk=mine).status == "pending_review"


def test_a_staff_member_without_a_role_is_forbidden(two_subjects):
    from django.contrib.auth import get_user_model

    from dsar.staff import staff_token_create

    user = get_user_model().objects.create(username="norole", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {staff_token_create(user=user)}")
    mine = two_subjects[0]
    assert client.get("/api/v1/staff/requests").status_code == 403
    assert client.post(f"/api/v1/staff/requests/{mine}/approve", {}, format="json").status_code == 403


def test_staff_cannot_act_on_a_request_that_does_not_exist(reviewer):
    assert reviewer.post("/api/v1/staff/requests/00000000-0000-0000-0000-000000000000/approve", {}, format="json").status_code == 404
    assert reviewer.get("/api/v1/staff/requests/not-a-uuid").status_code == 404


def test_logs_carry_request_ids_and_never_the_email_or_exported_data(api, reviewer, mailoutbox, worker, estate, caplog):
    from ..support.flows import approve, wait_until_final

    request_id, _ = file_request(api, mailoutbox, type="access", email="alice@example.com")
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"
    worker_log = worker.log.read_text()
    assert request_id in worker_log
    for secret in ("alice@example.com", "Alice Martin", "weather leeds"):
        assert secret not in worker_log
        assert secret not in caplog.text
    assert request_id in caplog.text


def test_a_request_record_of_a_pending_request_shows_no_code_or_token_to_staff(reviewer):
    request = request_make(status="pending_review", code="12345678", token="tok")
    body = reviewer.get(f"/api/v1/staff/requests/{request.pk}").content.decode()
    assert request.code_hash not in body and request.token_hash not in body and "code_hash" not in body
