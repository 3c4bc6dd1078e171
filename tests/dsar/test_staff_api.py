"""The staff API: who may call it, the queue, and the review actions with their emails."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from dsar import jobs
from dsar.deadlines import due_at_for
from dsar.models import AuditEntry, Export, OutgoingEmail, Request

from ..factories import request_make
from ..support.flows import file_request

pytestmark = pytest.mark.django_db(transaction=True)
# The token (with its user) and its last use, the user's roles; then the queue's count and rows, or
# the request (with its export), its tasks, its recipient notifications, its audit trail and its questions to the person.
LIST_QUERIES, DETAIL_QUERIES = 5, 8


def test_signed_out_and_bad_tokens_are_refused(db):
    request = request_make(status="pending_review")
    for client in (APIClient(), _with_token("not-a-token")):
        assert client.get("/api/v1/staff/requests").status_code == 401
        assert client.post(f"/api/v1/staff/requests/{request.pk}/approve", {}, format="json").status_code == 401
    assert Request.objects.get(pk=request.pk).status == "pending_review"


def _with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_a_completed_export_waiting_for_release_past_its_due_date_is_overdue_and_a_released_one_is_not(reviewer):
    past = timezone.now() - dt.timedelta(days=3)
    held = request_make(status="completed", email="held@example.com")
    released = request_make(status="completed", email="released@example.com")
    for request, released_at in ((held, None), (released, past)):
        Request.objects.filter(pk=request.pk).update(due_at=past)
        Export.objects.create(request=request, path=f"exports/{request.pk}/x.zip", bytes=1, sha256="0" * 64, created_at=past,
                              expires_at=past + dt.timedelta(days=30), released_at=released_at)
    listed = {r["email"]: r["overdue"] for r in reviewer.get("/api/v1/staff/requests").json()["results"]}
    assert listed == {"held@example.com": True, "released@example.com": False}
    assert [r["email"] for r in reviewer.get("/api/v1/staff/requests?overdue=true").json()["results"]] == ["held@example.com"]
    assert reviewer.get(f"/api/v1/staff/requests/{held.pk}").json()["overdue"] is True


def test_the_queue_filters_and_sorts_by_due_date(reviewer):
    late = request_make(status="pending_review", email="late@example.com")
    Request.objects.filter(pk=late.pk).update(due_at=late.due_at - dt.timedelta(days=60))
    request_make(status="pending_review", email="soon@example.com")
    request_make(status="completed", type="deletion", email="done@example.com")
    body = reviewer.get("/api/v1/staff/requests").json()
    assert body["count"] == 3
    assert body["results"][0]["email"] == "late@example.com" and body["results"][0]["overdue"] is True
    assert [r["email"] for r in reviewer.get("/api/v1/staff/requests?overdue=true").json()["results"]] == ["late@example.com"]
    assert [r["email"] for r in reviewer.get("/api/v1/staff/requests?type=deletion").json()["results"]] == ["done@example.com"]
    assert reviewer.get("/api/v1/staff/requests?status=completed").json()["count"] == 1
    assert reviewer.get("/api/v1/staff/requests?status=bogus").status_code == 400


def test_deny_needs_a_reason_and_emails_it(api, reviewer, mailoutbox):
    request_id, _ = file_request(api, mailoutbox, type="access", email="deny@example.com")
    assert reviewer.post(f"/api/v1/staff/requests/{request_id}/deny", {}, format="json").status_code == 400
    assert reviewer.post(f"/api/v1/staff/requests/{request_id}/deny", {"reason": "  "}, format="json").status_code == 400
    answer = reviewer.post(f"/api/v1/staff/requests/{request_id}/deny", {"reason": "We could not match the account."}, format="json")
    assert answer.status_code == 200 and answer.json()["status"] == "denied"
    assert "We could not match the account." in mailoutbox[-1].body
    audit = answer.json()["audit"]
    assert [a["action"] for a in audit] == ["filed", "verified", "denied"]
    assert audit[-1]["actor"] == "staff:rita" and audit[-1]["note"] == "We could not match the account."


def test_extend_moves_the_deadline_once_within_the_legal_maximum(api, reviewer, mailoutbox):
    request_id, _ = file_request(api, mailoutbox, type="access", email="extend@example.com")
    request = Request.objects.get(pk=request_id)
    too_long = reviewer.post(f"/api/v1/staff/requests/{request_id}/extend", {"reason": "complex", "days": 93}, format="json")
    assert too_long.status_code == 400 and too_long.json()["error"] == "extension_too_long"
    answer = reviewer.post(f"/api/v1/staff/requests/{request_id}/extend", {"reason": "Many systems to search.", "days": 30}, format="json")
    assert answer.status_code == 200
    assert Request.objects.get(pk=request_id).due_at == request.due_at + dt.timedelta(days=30)
    assert "Many systems to search." in mailoutbox[-1].body
    again = reviewer.post(f"/api/v1/staff/requests/{request_id}/extend", {"reason": "more", "days": 1}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "already_extended"
    assert AuditEntry.objects.filter(request_id=request_id, action="extended").count() == 1


def _received_1_march_2026() -> Request:
    """A request under review, received 1 March 2026 under the GDPR: due 1 April 2026, 12:00 UTC."""
    request = request_make(status="pending_review")
    Request.objects.filter(pk=request.pk).update(created_at=dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC),
                                                 due_at=dt.datetime(2026, 4, 1, 12, tzinfo=dt.UTC))
    return request


def test_an_extension_asked_for_after_the_deadline_passed_is_a_409_and_changes_nothing(reviewer):
    request = _received_1_march_2026()
    with time_machine.travel(dt.datetime(2026, 4, 10, 12, tzinfo=dt.UTC), tick=False):
        answer = reviewer.post(f"/api/v1/staff/requests/{request.pk}/extend", {"reason": "Many systems.", "days": 30},
                               format="json")
    assert answer.status_code == 409
    assert answer.json() == {"error": "deadline_passed",
                             "detail": "This request's deadline passed on 2026-04-01; it can no longer be extended."}
    stored = Request.objects.get(pk=request.pk)
    assert (stored.due_at, stored.extended_at) == (dt.datetime(2026, 4, 1, 12, tzinfo=dt.UTC), None)
    assert not AuditEntry.objects.filter(request=request, action="extended").exists()
    assert not OutgoingEmail.objects.filter(request=request).exists()


def test_a_request_that_passed_its_deadline_unanswered_shows_it_and_still_does_once_answered(reviewer, mailoutbox):
    request = _received_1_march_2026()
    jobs.job_run("deadline_watch", now=dt.datetime(2026, 4, 1, 12, 1, tzinfo=dt.UTC))
    with time_machine.travel(dt.datetime(2026, 4, 2, 9, tzinfo=dt.UTC), tick=False):
        late = reviewer.get(f"/api/v1/staff/requests/{request.pk}").json()
        denied = reviewer.post(f"/api/v1/staff/requests/{request.pk}/deny", {"reason": "Not the account holder."}, format="json")
    assert (late["overdue"], late["overdue_since"]) == (True, "2026-04-01T12:00:00Z")
    assert denied.status_code == 200
    answered = denied.json()
    assert (answered["status"], answered["overdue"], answered["overdue_since"]) == ("denied", False, "2026-04-01T12:00:00Z")


def test_deadlines_follow_the_jurisdiction():
    received = dt.datetime(2026, 1, 31, 12, tzinfo=dt.UTC)
    assert due_at_for(received, "gdpr") == dt.datetime(2026, 2, 28, 12, tzinfo=dt.UTC)
    assert due_at_for(received, "ccpa") == dt.datetime(2026, 3, 17, 12, tzinfo=dt.UTC)


def test_a_filed_request_is_due_one_calendar_month_after_receipt(api):
    created = api.post("/api/v1/requests", {"type": "access", "email": "due@example.com"}, format="json").json()
    request = Request.objects.get(pk=created["id"])
    assert request.due_at == due_at_for(request.created_at, "gdpr")


def test_the_queue_takes_a_fixed_number_of_queries_for_fifty_rows(reviewer, django_assert_num_queries):
    for number in range(50):
        request_make(status="pending_review", email=f"q{number}@example.com")
    with django_assert_num_queries(LIST_QUERIES):
        body = reviewer.get("/api/v1/staff/requests").json()
    assert (body["count"], len(body["results"])) == (50, 50)


def test_a_request_with_its_tasks_and_trail_takes_a_fixed_number_of_queries(reviewer, django_assert_num_queries):
    from django.db import transaction

    from dsar.lifecycle import audit_record
    from dsar.models import ConnectorTask

    request = request_make(status="failed")
    for connector in ("accounts", "payments", "content", "support", "third_party", "probe"):
        ConnectorTask.objects.create(request=request, connector=connector, status="succeeded")
    with transaction.atomic():
        for number in range(20):
            audit_record(request, actor="system", action="noted", note=str(number))
    with django_assert_num_queries(DETAIL_QUERIES):
        body = reviewer.get(f"/api/v1/staff/requests/{request.pk}").json()
    assert (len(body["tasks"]), len(body["audit"])) == (6, 21)


# --- Assignment, internal notes, bulk review and the queue's new filters -------------------------------------


def test_a_request_is_assigned_through_the_api_and_the_queue_filters_by_it(reviewer):
    from dsar.staff import ROLE_REVIEWER, staff_user_ensure

    staff_user_ensure(username="rob", role=ROLE_REVIEWER)
    request = request_make(status="pending_review", email="one@example.com")
    request_make(status="pending_review", email="two@example.com")
    url = f"/api/v1/staff/requests/{request.pk}/assign"
    body = reviewer.post(url, {"assignee": "rita"}, format="json").json()
    assert body["assigned_to"] == "rita"
    assert [r["email"] for r in reviewer.get("/api/v1/staff/requests?assigned=me").json()["results"]] == ["one@example.com"]
    assert [r["email"] for r in reviewer.get("/api/v1/staff/requests?assigned=nobody").json()["results"]] == ["two@example.com"]
    assert reviewer.post(url, {"assignee": "rob"}, format="json").json()["assigned_to"] == "rob"
    assert reviewer.post(url, {"assignee": None}, format="json").json()["assigned_to"] is None
    entries = AuditEntry.objects.filter(request=request, action="assigned").order_by("id")
    assert [entry.data for entry in entries] == [{"from": None, "to": "rita"}, {"from": "rita", "to": "rob"}, {"from": "rob", "to": None}]

    refused = reviewer.post(url, {"assignee": "nobody-here"}, format="json")
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_assignee")
    assert reviewer.post(url, {"assignee": 7}, format="json").status_code == 400
    assert reviewer.post(url, {"who": "rob"}, format="json").status_code == 400
    assert AuditEntry.objects.filter(request=request, action="assigned").count() == 3


def test_an_internal_note_is_added_through_the_api_and_kept_from_the_person(reviewer):
    request = request_make(status="pending_review", email="one@example.com", token="person-token")
    body = reviewer.post(f"/api/v1/staff/requests/{request.pk}/notes", {"note": "Checked with the shop."}, format="json").json()
    assert [(entry["action"], entry["actor"], entry["note"]) for entry in body["audit"]][-1] == ("noted", "staff:rita", "Checked with the shop.")
    person = APIClient()
    seen = person.get(f"/api/v1/requests/{request.pk}", HTTP_AUTHORIZATION="Bearer person-token")
    assert seen.status_code == 200 and "Checked with the shop" not in seen.content.decode()
    for bad in ({"note": "   "}, {}, {"note": "x" * 2001}):
        assert reviewer.post(f"/api/v1/staff/requests/{request.pk}/notes", bad, format="json").status_code == 400
    assert AuditEntry.objects.filter(request=request, action="noted").count() == 1


def test_bulk_review_through_the_api_says_what_became_of_each(reviewer):
    first, moved_on = request_make(status="pending_review", email="one@example.com"), request_make(status="processing")
    missing = "00000000-0000-0000-0000-000000000001"
    body = reviewer.post("/api/v1/staff/requests/bulk", {"action": "deny", "reason": "No data held.",
                                                         "requests": [str(first.pk), str(moved_on.pk), missing]}, format="json").json()
    assert body == [{"id": str(first.pk), "done": True, "reason": ""},
                    {"id": str(moved_on.pk), "done": False, "reason": "This request is processing; it cannot be denied."},
                    {"id": missing, "done": False, "reason": "No such request."}]
    assert Request.objects.get(pk=first.pk).status == "denied"
    second = request_make(status="pending_review", email="two@example.com")
    for bad in ({"action": "deny", "requests": [str(second.pk)]}, {"action": "deny", "reason": " ", "requests": [str(second.pk)]},
                {"action": "approve", "reason": "ok", "requests": []}, {"action": "close", "reason": "ok", "requests": [str(second.pk)]},
                {"action": "approve", "reason": "ok", "requests": [False]}):
        assert reviewer.post("/api/v1/staff/requests/bulk", bad, format="json").status_code == 400, bad
    assert Request.objects.get(pk=second.pk).status == "pending_review"


def test_the_queue_filters_by_what_needs_action_and_by_received_and_due_days(reviewer):
    with time_machine.travel(dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC), tick=False):
        pending = request_make(status="pending_review", email="pending@example.com")
        Request.objects.filter(pk=pending.pk).update(due_at=dt.datetime(2026, 4, 20, 12, tzinfo=dt.UTC))
        request_make(status="unverified", email="unverified@example.com")
        old = request_make(status="denied", email="denied@example.com")
        Request.objects.filter(pk=old.pk).update(created_at=dt.datetime(2026, 2, 1, 9, tzinfo=dt.UTC))

        def emails(query: str) -> list[str]:
            return sorted(r["email"] for r in reviewer.get(f"/api/v1/staff/requests?{query}").json()["results"])

        assert emails("needs_action=true") == ["pending@example.com"]
        assert emails("received_to=2026-02-01") == ["denied@example.com"]
        assert emails("received_from=2026-03-10&type=access") == ["pending@example.com", "unverified@example.com"]
        assert emails("due_from=2026-04-20&due_to=2026-04-20") == ["pending@example.com"]
        assert emails("due_to=2026-04-19") == ["denied@example.com", "unverified@example.com"]  # due 10 April, a month after filing
        assert emails("due_from=2026-04-10&due_to=2026-04-01") == []  # a range ending before it starts holds nothing
        assert emails("received_from=0001-01-01&received_to=9999-12-31") == ["denied@example.com", "pending@example.com",
                                                                              "unverified@example.com"]
        assert reviewer.get("/api/v1/staff/requests?received_from=yesterday").status_code == 400
