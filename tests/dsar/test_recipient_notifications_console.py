"""Staff and the person see whom an erasure was told of: the console's request page and its list
of recipients to tell, marking one told by hand, retrying a failed one; the staff API's request;
the person's status page."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from dsar import notifications, recipients
from dsar.models import AuditEntry, RecipientNotification, Request
from dsar.staff import ROLE_REVIEWER, staff_user_ensure

from ..support.recipients import crm, deletion_completed, hook  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

AT = dt.datetime(2026, 3, 9, 13, tzinfo=dt.UTC)
PASSWORD = "a-long-staff-passphrase"


@pytest.fixture
def rita() -> Client:
    """The reviewer rita, signed in with her password and a code from her authenticator."""
    user = staff_user_ensure(username="rita", role=ROLE_REVIEWER)
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client = Client()
    assert client.post(reverse("console:login"), {"username": "rita", "password": PASSWORD}).status_code == 302
    code = f"{totp(device.bin_key, step=device.step, digits=device.digits):0{device.digits}d}"
    assert client.post(reverse("console:otp-verify"), {"code": code, "next": "/console/"}).status_code == 302
    return client


@pytest.fixture
def told(crm, hook, settings, unique_email) -> Request:
    """A completed deletion whose webhook recipient failed for good (its receiver answers 500),
    whose email recipient waits in the queue, and whose tax office waits for staff."""
    settings.DSAR_RECIPIENT_NOTIFY_MAX_ATTEMPTS = 1
    hook.statuses = [500, 204]
    request = deletion_completed(unique_email("console"), at=AT)
    with time_machine.travel(AT, tick=False):
        recipients.recipient_notification_send(_notification(request, "Hostly GmbH").pk)
    return request


def _notification(request: Request, recipient: str) -> RecipientNotification:
    return RecipientNotification.objects.get(request=request, recipient=recipient)


def _text(response) -> str:
    return " ".join(response.content.decode().split())


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_the_request_page_lists_each_recipient_with_its_status_attempts_and_last_error(rita, told):
    page = _text(rita.get(reverse("console:request", args=[told.pk])))
    section = page.split('id="recipients-heading">Recipients told of the erasure</h2>')[1].split("</section>")[0]

    hostly = _notification(told, "Hostly GmbH")
    assert (f'<a href="/console/recipients/{hostly.pk}">Hostly GmbH</a></th> <td>crm</td> <td>Webhook</td> <td><span class="status '
            'status-failed">Failed</span> </td> <td class="num">1</td> <td><details class="task-error"><summary>gave up after 1 attempts; '
            "last error: the webhook answered 500 Internal Server …</summary><pre>gave up after 1 attempts; last error: the webhook "
            "answered 500 Internal Server Error</pre></details>") in section
    assert f'<form method="post" action="/console/recipients/{hostly.pk}/retry">' in section
    assert ('Mailbird Inc.</a></th> <td>crm</td> <td>Email</td> <td><span class="status status-queued">Queued</span> </td> '
            '<td class="num">0</td> <td><span class="muted">None</span></td> <td> <span class="muted">None</span>') in section
    tax = _notification(told, "Tax office")
    assert (f'Tax office</a></th> <td>crm</td> <td>Manual</td> <td><span class="status status-with_staff">With staff</span> </td> '
            f'<td class="num">0</td> <td><span class="muted">None</span></td> <td> <a href="/console/recipients/{tax.pk}">Tell them') in section


def test_the_recipients_to_tell_page_lists_those_left_to_staff_and_those_that_failed(rita, told):
    page = _text(rita.get(reverse("console:recipient-notifications")))

    assert "2 recipients waiting for staff" in page
    assert "Hostly GmbH" in page and "Tax office" in page and "Mailbird Inc." not in page


def test_marking_a_recipient_told_by_hand_needs_a_note_then_is_done_and_audited(rita, told):
    tax = _notification(told, "Tax office")
    url = reverse("console:recipient-notification", args=[tax.pk])
    page = _text(rita.get(url))
    assert '<p class="pre">Note the erasure in the tax file.</p>' in page
    assert f"<dt>email</dt><dd>{told.email}</dd><dt>customer_no</dt><dd>C-1042</dd>" in page and "<dt>Erased</dt><dd>feedback_ratings</dd>" in page

    refused = rita.post(url, {"note": "  "})
    assert refused.status_code == 200 and "Enter a note." in refused.content.decode()
    assert _notification(told, "Tax office").status == "with_staff"

    done = rita.post(url, {"note": "Phoned the tax office; they noted it in file 42."}, follow=True)
    assert done.redirect_chain == [(f"/console/requests/{told.pk}", 302)]
    assert _messages(done) == ["Tax office: done, and noted in the request's audit trail."]
    stored = _notification(told, "Tax office")
    assert (stored.status, stored.done_by, stored.identities) == ("done", "staff:rita", {})
    assert list(AuditEntry.objects.filter(request=told, action="recipient_notify_done").values_list("actor", "note")) == [
        ("staff:rita", "Phoned the tax office; they noted it in file 42.")]
    assert "Mark as told" not in _text(rita.get(url))


def test_retrying_a_failed_recipient_queues_it_again_and_one_not_failed_is_refused_with_nothing_changed(rita, told):
    hostly, mailbird = _notification(told, "Hostly GmbH"), _notification(told, "Mailbird Inc.")

    retried = rita.post(reverse("console:recipient-notification-retry", args=[hostly.pk]), follow=True)
    assert retried.redirect_chain == [(f"/console/requests/{told.pk}", 302)]
    assert _messages(retried) == ["Hostly GmbH: trying again."]
    assert (_notification(told, "Hostly GmbH").status, _notification(told, "Hostly GmbH").attempts) == ("queued", 0)
    assert list(AuditEntry.objects.filter(request=told, action="recipient_notify_retried").values_list("actor", flat=True)) == ["staff:rita"]

    refused = rita.post(reverse("console:recipient-notification-retry", args=[mailbird.pk]), follow=True)
    assert _messages(refused) == ["This notification is queued: only a failed one can be retried."]
    assert (_notification(told, "Mailbird Inc.").status, _notification(told, "Mailbird Inc.").updated_at) == ("queued", mailbird.updated_at)
    assert AuditEntry.objects.filter(request=told, action="recipient_notify_retried").count() == 1


def test_an_unknown_notification_is_a_404(rita):
    unknown = "00000000-0000-4000-8000-000000000000"
    assert rita.get(reverse("console:recipient-notification", args=[unknown])).status_code == 404
    assert rita.post(reverse("console:recipient-notification-retry", args=[unknown])).status_code == 404


def test_the_staff_api_request_holds_its_recipient_notifications_without_the_persons_identities(reviewer, told):
    body = reviewer.get(f"/api/v1/staff/requests/{told.pk}").json()

    hostly, mailbird, tax = (_notification(told, name) for name in ("Hostly GmbH", "Mailbird Inc.", "Tax office"))
    assert body["recipient_notifications"] == [
        {"id": str(hostly.pk), "recipient": "Hostly GmbH", "system": "crm", "method": "webhook", "categories": ["feedback_ratings"],
         "status": "failed", "attempts": 1, "not_before": "2026-03-09T13:00:00Z",
         "last_error": "gave up after 1 attempts; last error: the webhook answered 500 Internal Server Error", "sent_at": None,
         "done_at": None, "done_by": ""},
        {"id": str(mailbird.pk), "recipient": "Mailbird Inc.", "system": "crm", "method": "email", "categories": ["feedback_ratings"],
         "status": "queued", "attempts": 0, "not_before": "2026-03-09T13:00:00Z", "last_error": "", "sent_at": None, "done_at": None,
         "done_by": ""},
        {"id": str(tax.pk), "recipient": "Tax office", "system": "crm", "method": "manual", "categories": ["feedback_ratings"],
         "status": "with_staff", "attempts": 0, "not_before": "2026-03-09T13:00:00Z", "last_error": "", "sent_at": None,
         "done_at": None, "done_by": ""},
    ]


def test_the_persons_status_page_names_the_recipients_told_and_promises_nothing_of_the_sources(client, told):
    Request.objects.filter(pk=told.pk).update(result={**told.result, "notify_sources": ["Acme Data Brokers"]})
    link = urlsplit(notifications.status_url(told))
    page = _text(client.get(f"{link.path}?{link.query}", follow=True))

    assert ("<h2>Who we told</h2> <p>These organisations received some of your data from us. We told each of them that we deleted it, "
            'and asked them to delete what they hold of it too:</p> <ul class="recipients-notified"><li>Hostly GmbH</li><li>Mailbird '
            "Inc.</li><li>Tax office</li></ul>") in page
    assert ("<h2>Where some of your data came from</h2> <p>Some of your data came from other organisations. We will not accept your "
            "data from them again:</p> <ul><li>Acme Data Brokers</li></ul>") in page
    assert "We will tell them" not in page and "hook" not in page and "mailbird.example" not in page


def test_the_request_page_takes_as_many_queries_with_many_recipients_as_the_page_with_none(rita, told, django_assert_num_queries):
    for number in range(20):
        RecipientNotification.objects.create(request=told, system="crm", recipient=f"Processor {number}", method="email",
                                             categories=["feedback_ratings"], status="sent", not_before=AT, created_at=AT)
    # The session, the user, their roles, their second factor; the request (with its export and
    # assignee), its tasks, its recipient notifications, its audit trail, its questions to the person
    # and the staff it can be assigned to: 10, as test_console_views counts them.
    with django_assert_num_queries(10):
        page = rita.get(reverse("console:request", args=[told.pk]))
    assert page.content.count(b'<span class="status status-sent">Sent</span>') == 20


def test_the_recipient_pages_and_the_retry_send_a_signed_out_visitor_to_sign_in_and_change_nothing(told):
    hostly = _notification(told, "Hostly GmbH")
    visitor = Client()
    for answer in (visitor.get(reverse("console:recipient-notifications")),
                   visitor.get(reverse("console:recipient-notification", args=[hostly.pk])),
                   visitor.post(reverse("console:recipient-notification", args=[hostly.pk]), {"note": "told"}),
                   visitor.post(reverse("console:recipient-notification-retry", args=[hostly.pk]))):
        assert answer.status_code == 302 and answer["Location"].startswith("/console/login/?next="), answer["Location"]
    assert (_notification(told, "Hostly GmbH").status, _notification(told, "Hostly GmbH").attempts) == ("failed", 1)
