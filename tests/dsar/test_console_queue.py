"""The reviewer's day in the console: the queue opening on what needs action, bulk review,
assignment, internal notes, date filters, and times in the reviewer's own time zone."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from dsar.models import AuditEntry, Export, Request
from dsar.notifications import status_url
from dsar.staff import ROLE_REVIEWER

from ..factories import request_make
from .test_console_views import PASSWORD, QUEUE_QUERIES, _code, _messages, _signed_in, _staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def rita():
    return _signed_in("rita", ROLE_REVIEWER, "/console/")


def _make(email: str, status: str, *, due_in: float = 30, created_ago: float = 0, **fields) -> Request:
    request = request_make(status=status, email=email)
    now = timezone.now()
    Request.objects.filter(pk=request.pk).update(due_at=now + dt.timedelta(days=due_in), created_at=now - dt.timedelta(days=created_ago),
                                                 **fields)
    return Request.objects.get(pk=request.pk)


def _export(request: Request, *, released: bool) -> None:
    now = timezone.now()
    Export.objects.create(request=request, path="exports/x.zip", bytes=10, sha256="0" * 64, created_at=now,
                          expires_at=now + dt.timedelta(days=7), released_at=now if released else None)


def _queue(client: Client, query: str = "") -> list[str]:
    response = client.get(reverse("console:queue") + query)
    assert response.status_code == 200
    return sorted(row.email for row in response.context["page"])


# --- 1. What the queue opens on ---------------------------------------------------------------------------


def test_the_queue_opens_on_what_needs_action_and_a_filter_still_shows_everything(rita):
    _make("pending@example.com", "pending_review")
    _make("failed@example.com", "failed")
    _make("soon@example.com", "processing", due_in=3)
    _make("later@example.com", "processing", due_in=20)
    _make("asked@example.com", "awaiting_subject", due_in=20)
    _export(_make("held@example.com", "completed"), released=False)
    _export(_make("released@example.com", "completed"), released=True)
    _make("unverified@example.com", "unverified", due_in=2)
    _make("denied@example.com", "denied")
    _make("kept@example.com", "completed", retention_finding=[{"system": "payments", "category": "payment"}])

    assert _queue(rita) == ["failed@example.com", "held@example.com", "pending@example.com", "soon@example.com"]
    assert _queue(rita, "?show=all") == [
        "asked@example.com", "denied@example.com", "failed@example.com", "held@example.com", "kept@example.com", "later@example.com",
        "pending@example.com", "released@example.com", "soon@example.com", "unverified@example.com"]
    assert _queue(rita, "?status=unverified") == ["unverified@example.com"]
    assert _queue(rita, "?status=denied") == ["denied@example.com"]
    assert _queue(rita, "?q=released@") == ["released@example.com"]  # a search looks through every request
    assert _queue(rita, "?retention=yes") == ["kept@example.com"]  # and so does the retention finding


def test_locked_and_lapsed_requests_are_labelled_as_such_not_as_unverified(rita):
    _make("locked@example.com", "unverified", code_attempts=5)
    _make("lapsed@example.com", "unverified", created_ago=8)
    fresh = _make("fresh@example.com", "unverified")
    page = rita.get(reverse("console:queue") + "?status=unverified").content.decode()
    assert "Locked: too many wrong codes</span>" in page
    assert "Lapsed: never verified</span>" in page
    assert page.count('status-unverified">Unverified</span>') == 1
    locked = Request.objects.get(email="locked@example.com")
    assert "Locked: too many wrong codes</span>" in rita.get(reverse("console:request", args=[locked.pk])).content.decode()
    assert 'status-unverified">Unverified</span>' in rita.get(reverse("console:request", args=[fresh.pk])).content.decode()


def test_the_dashboard_does_not_count_unverified_requests_as_open(rita):
    _make("pending@example.com", "pending_review")
    _make("unverified@example.com", "unverified", due_in=2)
    _make("old@example.com", "unverified", due_in=-2)
    page = rita.get(reverse("console:dashboard")).content.decode()
    assert '<span class="figure-value">1</span> <span class="figure-label">open requests</span>' in page
    assert '<span class="figure-value">0</span> <span class="figure-label">due in the next 7 days</span>' in page
    assert "?status=unverified" not in page


# --- 2. Bulk approve and deny ---------------------------------------------------------------------------


def _bulk(client: Client, requests: list[Request], **data):
    return client.post(reverse("console:queue-bulk"), {"requests": [str(request.pk) for request in requests],
                                                       "next": "/console/?show=all", **data}, follow=True)


def test_bulk_deny_denies_each_with_the_one_reason_and_says_which_was_refused_and_why(rita):
    first, second = _make("one@example.com", "pending_review"), _make("two@example.com", "pending_review")
    moved_on = _make("three@example.com", "processing")
    response = _bulk(rita, [first, moved_on, second], action="deny", reason="We hold no data about you.")
    assert response.redirect_chain[-1][0] == "/console/?show=all"
    said = _messages(response)
    assert said[0] == "Denied 2 requests: one@example.com, two@example.com. Each person is emailed the reason."
    assert said[1] == "Not done for three@example.com: This request is processing; it cannot be denied."
    for request in (first, second):
        entry = AuditEntry.objects.filter(request=request).order_by("-id").first()
        assert (entry.action, entry.actor, entry.note, entry.to_status) == ("denied", "staff:rita", "We hold no data about you.", "denied")
    assert Request.objects.get(pk=moved_on.pk).status == "processing"
    assert not AuditEntry.objects.filter(request=moved_on, action="denied").exists()


def test_bulk_approve_goes_through_the_same_rules_as_one_at_a_time(rita):
    adult = _make("adult@example.com", "pending_review")
    child = _make("child@example.com", "pending_review", minor_age=12, minor_age_source="accounts: users.birth_year")
    said = _messages(_bulk(rita, [adult, child], action="approve", reason="Identity checked."))
    assert said[0] == "Approved 1 request: adult@example.com."
    assert said[1].startswith("Not done for child@example.com: The subject may be a child (as young as 12")
    assert Request.objects.get(pk=adult.pk).status == "processing"
    assert Request.objects.get(pk=child.pk).status == "pending_review"
    entry = AuditEntry.objects.filter(request=adult).order_by("-id").first()
    assert (entry.action, entry.actor, entry.note) == ("approved", "staff:rita", "Identity checked.")


def test_a_bulk_denial_without_a_reason_or_with_nothing_ticked_changes_nothing(rita):
    pending = _make("one@example.com", "pending_review")
    assert _messages(_bulk(rita, [pending], action="deny", reason="  ")) == [
        "Enter the reason for denying them: each person is emailed it."]
    assert _messages(_bulk(rita, [], action="approve")) == ["Tick at least one request."]
    bad = rita.post(reverse("console:queue-bulk"), {"requests": ["not-an-id"], "action": "approve"}, follow=True)
    assert _messages(bad) == ["Tick requests in the queue."]
    assert Request.objects.get(pk=pending.pk).status == "pending_review"
    assert not AuditEntry.objects.filter(request=pending).exclude(action="filed").exists()


def test_the_queue_offers_a_tick_box_for_each_request_in_one_form_that_works_without_javascript(rita):
    pending = _make("one@example.com", "pending_review")
    page = rita.get(reverse("console:queue")).content.decode()
    assert f'<form method="post" action="{reverse("console:queue-bulk")}" class="bulk">' in page
    assert f'<input type="checkbox" name="requests" value="{pending.pk}" id="pick-{pending.pk}">' in page
    assert f'<label for="pick-{pending.pk}" class="visually-hidden">Select the request from one@example.com</label>' in page


# --- 3. Assignment -----------------------------------------------------------------------------------------


def test_a_reviewer_assigns_a_request_to_themselves_then_to_another_and_the_mine_filter_follows(rita):
    _staff("rob", ROLE_REVIEWER)
    request, other = _make("one@example.com", "pending_review"), _make("two@example.com", "pending_review")
    assign = reverse("console:request-assign", args=[request.pk])
    assert _messages(rita.post(assign, {"me": "1"}, follow=True)) == ["Assigned to you."]
    assert _queue(rita, "?assigned=mine") == ["one@example.com"]
    assert _queue(rita, "?assigned=nobody") == ["two@example.com"]
    assert _messages(rita.post(assign, {"assignee": "rob"}, follow=True)) == ["Assigned to rob."]
    assert _queue(rita, "?assigned=mine") == []
    entries = AuditEntry.objects.filter(request=request, action="assigned").order_by("id")
    assert [(entry.actor, entry.data) for entry in entries] == [
        ("staff:rita", {"from": None, "to": "rita"}), ("staff:rita", {"from": "rita", "to": "rob"})]
    assert Request.objects.get(pk=other.pk).assigned_to is None


def test_a_request_cannot_be_assigned_to_someone_who_is_not_staff(rita):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user(username="customer", password=PASSWORD)
    request = _make("one@example.com", "pending_review")
    response = rita.post(reverse("console:request-assign", args=[request.pk]), {"assignee": "customer"}, follow=True)
    assert _messages(response) == ["Choose a reviewer or admin to assign it to."]
    assert Request.objects.get(pk=request.pk).assigned_to is None
    assert not AuditEntry.objects.filter(request=request, action="assigned").exists()


# --- 4. Internal notes ---------------------------------------------------------------------------------------


def test_a_note_is_in_the_audit_trail_and_on_the_request_page_but_never_shown_to_the_person(rita):
    request = request_make(status="pending_review", email="person@example.com", token="person-token")
    url = reverse("console:request-note", args=[request.pk])
    response = rita.post(url, {"note": "Called the shop: the account is a duplicate."}, follow=True)
    assert _messages(response) == ["Note added. Only staff see it."]
    entry = AuditEntry.objects.filter(request=request).order_by("-id").first()
    assert (entry.action, entry.actor, entry.note) == ("noted", "staff:rita", "Called the shop: the account is a duplicate.")
    assert "Called the shop: the account is a duplicate.</p>" in response.content.decode()

    person = Client()
    link = urlsplit(status_url(request))
    portal = person.get(f"{link.path}?{link.query}", follow=True)
    assert portal.status_code == 200 and "We are checking your request" in portal.content.decode()
    assert "Called the shop" not in portal.content.decode()
    api = person.get(f"/api/v1/requests/{request.pk}", HTTP_AUTHORIZATION="Bearer person-token")
    assert api.status_code == 200 and "Called the shop" not in api.content.decode()


def test_an_empty_note_is_refused_on_the_page_and_writes_nothing(rita):
    request = _make("one@example.com", "pending_review")
    response = rita.post(reverse("console:request-note", args=[request.pk]), {"note": "   "})
    assert response.status_code == 200 and "Write the note." in response.content.decode()
    assert not AuditEntry.objects.filter(request=request, action="noted").exists()


# --- 5. Received and due dates -----------------------------------------------------------------------------


def test_the_queue_filters_by_received_and_due_dates_with_the_other_filters(rita):
    with time_machine.travel(dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC), tick=False):
        _make("march@example.com", "pending_review", due_in=5)  # received 10 March, due 15 March
        _make("feb@example.com", "pending_review", due_in=40, created_ago=20)  # received 18 February, due 19 April
        _make("done@example.com", "denied", due_in=5)
        assert _queue(rita, "?received_from=2026-03-01") == ["march@example.com"]
        assert _queue(rita, "?received_to=2026-02-18") == ["feb@example.com"]
        assert _queue(rita, "?due_from=2026-03-15&due_to=2026-03-15") == ["march@example.com"]
        assert _queue(rita, "?due_from=2026-03-15&due_to=2026-03-15&show=all") == ["done@example.com", "march@example.com"]
        assert _queue(rita, "?due_to=2026-03-14") == []
        backwards = rita.get(reverse("console:queue") + "?received_from=2026-03-01&received_to=2026-02-01")
        assert "Choose a day on or after the first one." in backwards.content.decode()
        assert sorted(row.email for row in backwards.context["page"]) == ["march@example.com"]  # the bad bound filters nothing
        calendar_end = rita.get(reverse("console:queue") + "?received_to=9999-12-31&due_from=0001-01-01")
        assert calendar_end.content.decode().count("Choose a day from 1900 to 9999.") == 2


# --- 6. Times ----------------------------------------------------------------------------------------------


def test_relative_times_never_say_zero_minutes(rita):
    with time_machine.travel(dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC), tick=False):
        new = _make("new@example.com", "pending_review", due_in=3)
        old = _make("old@example.com", "pending_review", due_in=2 / 24, created_ago=2 / 24)
        queue = rita.get(reverse("console:queue")).content.decode()
        new_page = rita.get(reverse("console:request", args=[new.pk])).content.decode()
        old_page = rita.get(reverse("console:request", args=[old.pk])).content.decode()
    assert "0 minutes" not in queue and "0 minutes" not in new_page
    assert "(just now)" in new_page and "(in 3 days)" in new_page
    assert "(2 hours ago)" in old_page and "(in 2 hours)" in old_page
    assert ">just now</time>" in queue and ">2 hours ago</time>" in queue


def test_times_are_in_the_reviewers_time_zone_from_the_browser_at_sign_in_or_chosen_on_their_settings_page():
    user = _staff("rita", ROLE_REVIEWER)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    with time_machine.travel(dt.datetime(2026, 1, 15, 10, tzinfo=dt.UTC), tick=True):
        request = _make("one@example.com", "pending_review", due_in=30)

        def signed_in(browser_zone: str) -> Client:
            client = Client()
            client.post(reverse("console:login"), {"username": "rita", "password": PASSWORD, "time_zone": browser_zone})
            client.post(reverse("console:otp-verify"), {"code": _code(device), "next": "/console/"})
            TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)  # the same code again at the next sign-in
            return client

        berlin = signed_in("Europe/Berlin")
        page = berlin.get(reverse("console:request", args=[request.pk])).content.decode()
        assert "Times are in Europe/Berlin." in page
        assert "15 Jan 2026, 11:00" in page  # received at 10:00 UTC

        chosen = berlin.post(reverse("console:preferences"), {"time_zone": "Asia/Tokyo"}, follow=True)
        assert _messages(chosen) == ["Times are now given in Asia/Tokyo."]
        assert "15 Jan 2026, 19:00" in berlin.get(reverse("console:request", args=[request.pk])).content.decode()

        # The browser's zone no longer replaces the one chosen.
        again = signed_in("America/New_York").get(reverse("console:request", args=[request.pk])).content.decode()
        assert "Times are in Asia/Tokyo." in again and "15 Jan 2026, 19:00" in again

        refused = berlin.post(reverse("console:preferences"), {"time_zone": "Mars/Olympus"})
        assert refused.status_code == 200 and "Select a valid choice." in refused.content.decode()
        assert "Times are in Asia/Tokyo." in berlin.get(reverse("console:queue")).content.decode()


def test_without_a_browser_zone_times_are_in_utc():
    client = _signed_in("rita", ROLE_REVIEWER, "/console/")
    assert "Times are in UTC." in client.get(reverse("console:queue")).content.decode()


# --- Queries ----------------------------------------------------------------------------------------------


def test_the_queue_takes_a_fixed_number_of_queries_with_assignees_and_filters(rita, django_assert_num_queries):
    from django.contrib.auth import get_user_model

    rob = _staff("rob", ROLE_REVIEWER)
    for number in range(50):
        _make(f"q{number}@example.com", "pending_review")
    Request.objects.update(assigned_to=rob)
    with django_assert_num_queries(QUEUE_QUERIES):
        response = rita.get(reverse("console:queue") + "?received_from=2020-01-01&due_to=2099-01-01&show=all")
    assert len(response.context["page"]) == 50 and response.content.count(b">rob</td>") == 50
    Request.objects.update(assigned_to=get_user_model().objects.get(username="rita"))
    with django_assert_num_queries(QUEUE_QUERIES):
        response = rita.get(reverse("console:queue") + "?assigned=mine")
    assert len(response.context["page"]) == 50 and response.content.count(b">You</td>") == 50
