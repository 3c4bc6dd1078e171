"""dsar/recipients/: telling the recipients of a person's data that a deletion erased it (GDPR
Art. 19, CCPA regulations §7022(b)). One notification a recipient of each system that erased what
it receives, made as the deletion completes; webhooks signed, retried with backoff, given up with
an audit entry and an alert; emails through the outbox; the manual ones left with staff; the
sweeper and a real worker sending what was left queued."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import time_machine

from dsar import jobs, notifications, processing, recipients
from dsar.errors import Conflict, InvalidInput
from dsar.models import AuditEntry, RecipientNotification, Request
from dsar.staff import ROLE_ADMIN, staff_user_ensure
from estate.loader import estate_load, estate_parse

from ..factories import request_make
from ..support.flows import approve, file_request, subject_view, wait_until_final
from ..support.recipients import CRM_WITHOUT_RECIPIENTS, SECRET, crm, crm_configure, deletion_completed, hook  # noqa: F401 (fixtures)
from ..support.waiting import wait_for

UTC = dt.UTC
AT = dt.datetime(2026, 3, 9, 13, tzinfo=UTC)  # when each test's deletion completes: 1773061200


def _deleted(email: str, *, records: int = 2) -> Request:
    return deletion_completed(email, at=AT, records=records)


def _notification(request: Request, recipient: str) -> RecipientNotification:
    return RecipientNotification.objects.get(request=request, recipient=recipient)


def _send(notification: RecipientNotification, at: dt.datetime = AT) -> RecipientNotification:
    """What a worker rung for the notification does, at `at`; the row as it is after."""
    with time_machine.travel(at, tick=False):
        recipients.recipient_notification_send(notification.pk)
    return RecipientNotification.objects.get(pk=notification.pk)


def _entries(request: Request, *actions: str) -> list[tuple]:
    return list(AuditEntry.objects.filter(request=request, action__in=actions).order_by("id").values_list("actor", "action", "note", "data"))


# --- Made as the deletion completes -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_deletion_that_erased_what_recipients_receive_makes_one_notification_each_and_its_receipt_names_them(crm, unique_email):
    email = unique_email("told")
    request = _deleted(email)

    assert request.status == "completed"
    assert request.result == {"erased": {"feedback_ratings": 2}, "retained": [],
                              "recipients_notified": ["Hostly GmbH", "Mailbird Inc.", "Tax office"]}
    rows = RecipientNotification.objects.filter(request=request).order_by("recipient")
    assert [(n.system, n.recipient, n.method, n.status, n.categories, n.identities, n.attempts, n.not_before, n.created_at)
            for n in rows] == [
        ("crm", "Hostly GmbH", "webhook", "queued", ["feedback_ratings"], {"email": [email], "customer_no": ["C-1042"]}, 0, AT, AT),
        ("crm", "Mailbird Inc.", "email", "queued", ["feedback_ratings"], {"email": [email], "customer_no": ["C-1042"]}, 0, AT, AT),
        ("crm", "Tax office", "manual", "with_staff", ["feedback_ratings"], {"email": [email], "customer_no": ["C-1042"]}, 0, AT, AT),
    ]


@pytest.mark.django_db
def test_a_system_that_erased_nothing_of_the_person_tells_its_recipients_nothing(crm, unique_email):
    request = _deleted(unique_email("unknown"), records=0)

    assert request.result == {"erased": {}, "retained": []}
    assert not RecipientNotification.objects.filter(request=request).exists()


@pytest.mark.django_db
def test_a_final_step_run_again_makes_no_second_set_of_notifications(crm, unique_email):
    request = _deleted(unique_email("twice"))
    processing.final_step_run(request.pk)

    assert RecipientNotification.objects.filter(request=request).count() == 3


# --- The webhook -------------------------------------------------------------------------------------------


def test_the_signature_is_the_hmac_sha256_of_the_time_a_dot_and_the_body_under_the_secret():
    # hmac.new(b"hostly-hook-secret", b'1767225600.{"version":"1"}', hashlib.sha256).hexdigest(), worked out by hand
    assert recipients.webhook_signature(secret=SECRET, body=b'{"version":"1"}', timestamp=1767225600) == (
        "t=1767225600,v1=71a1e8e31ed33f6ce569963d427775c5fd6683b1581098fca5702a8dcd1b3de2")


@pytest.mark.django_db
def test_a_webhook_receiver_gets_a_signed_json_notice_it_can_check_with_the_shared_secret(crm, hook, unique_email):
    email = unique_email("hooked")
    request = _deleted(email)
    sent = _send(_notification(request, "Hostly GmbH"))

    (received,) = hook.received
    assert (received.path, received.headers["Content-Type"], received.headers["User-Agent"]) == (
        "/erasure", "application/json", "dsar-erasure-webhook/1")
    assert (received.timestamp, received.signed) == (1773061200, True)
    assert received.notice == {
        "version": "1", "event": "erasure", "event_id": str(sent.pk), "reference": str(request.pk), "categories": ["feedback_ratings"],
        "identities": {"email": [email], "customer_no": ["C-1042"]}, "erased_at": "2026-03-09T13:00:00+00:00", "reply_to": "privacy@example.com"}
    assert (sent.status, sent.attempts, sent.sent_at, sent.last_error, sent.identities) == ("sent", 1, AT, "", {})
    assert _entries(request, "recipient_notified") == [
        ("system", "recipient_notified", "Hostly GmbH told of the erasure: the webhook answered 204 No Content",
         {"recipient": "Hostly GmbH", "system": "crm", "method": "webhook"})]


@pytest.mark.django_db
def test_a_receiver_that_answers_500_then_200_gets_it_again_after_a_backoff_with_the_same_event_id(crm, hook, unique_email):
    hook.statuses = [500, 200]
    request = _deleted(unique_email("flaky"))
    notification = _notification(request, "Hostly GmbH")

    first = _send(notification)
    assert (first.status, first.attempts, first.last_error) == ("queued", 1, "the webhook answered 500 Internal Server Error")
    # The first retry waits between half and all of DSAR_RETRY_BASE_SECONDS (2 s), with jitter.
    assert AT + dt.timedelta(seconds=1) <= first.not_before <= AT + dt.timedelta(seconds=2)
    assert _send(notification, AT + dt.timedelta(milliseconds=900)).attempts == 1  # not due yet: nothing sent
    assert len(hook.received) == 1

    second = _send(notification, AT + dt.timedelta(seconds=2))
    assert (second.status, second.attempts, second.sent_at, second.last_error) == ("sent", 2, AT + dt.timedelta(seconds=2), "")
    assert [r.notice["event_id"] for r in hook.received] == [str(notification.pk), str(notification.pk)]
    assert [(r.timestamp, r.signed) for r in hook.received] == [(1773061200, True), (1773061202, True)]
    assert [note for _, _, note, _ in _entries(request, "recipient_notified", "recipient_notify_failed")] == [
        "Hostly GmbH told of the erasure: the webhook answered 200 OK"]


@pytest.mark.django_db
def test_a_receiver_that_never_answers_2xx_fails_after_the_last_attempt_with_an_audit_entry_and_an_alert_to_admins(
        crm, hook, settings, unique_email, mailoutbox):
    settings.DSAR_RECIPIENT_NOTIFY_MAX_ATTEMPTS = 3
    settings.DSAR_PUBLIC_URL = "https://privacy.example.com"
    admin = staff_user_ensure(username="ada", role=ROLE_ADMIN)
    admin.email = "ada@privacy.example"
    admin.save(update_fields=["email"])
    hook.statuses = [503]
    request = _deleted(unique_email("down"))
    notification = _notification(request, "Hostly GmbH")

    for minutes in range(3):  # each attempt well after the backoff before it
        last = _send(notification, AT + dt.timedelta(minutes=minutes))
    assert (last.status, last.attempts, last.sent_at) == ("failed", 3, None)
    assert last.last_error == "gave up after 3 attempts; last error: the webhook answered 503 Service Unavailable"
    assert _send(notification, AT + dt.timedelta(minutes=10)).attempts == 3  # failed: no worker tries it again
    assert len(hook.received) == 3
    assert _entries(request, "recipient_notified", "recipient_notify_failed") == [
        ("system", "recipient_notify_failed", "Hostly GmbH could not be told of the erasure: gave up after 3 attempts; last error: "
                                              "the webhook answered 503 Service Unavailable",
         {"recipient": "Hostly GmbH", "system": "crm", "method": "webhook"})]

    notifications.emails_send()
    (alert,) = [message for message in mailoutbox if message.to != [request.email]]  # beside the person's completion email
    assert (alert.to, alert.subject) == (["ada@privacy.example"], "Example Company: A recipient could not be told of an erasure")
    assert alert.body == (
        "A deletion was completed, but one of the organisations that received the person's data could not be told of it.\n\n"
        f"Request: {request.pk}\n"
        "Recipient: Hostly GmbH (of the system crm)\n"
        "Why: gave up after 3 attempts; last error: the webhook answered 503 Service Unavailable\n\n"
        f"Retry it, or tell them by hand and say how: https://privacy.example.com/console/requests/{request.pk}\n")


@pytest.mark.django_db
def test_a_redirect_is_not_followed_and_counts_as_a_failed_attempt(crm, hook, unique_email):
    hook.statuses = [302]
    request = _deleted(unique_email("moved"))
    sent = _send(_notification(request, "Hostly GmbH"))

    assert (sent.status, sent.attempts, sent.last_error) == ("queued", 1, "the webhook answered 302 Found, a redirect, which is not followed")
    assert [r.path for r in hook.received] == ["/erasure"]


@pytest.mark.django_db
def test_a_receiver_that_does_not_answer_within_the_timeout_is_a_failed_attempt(crm, hook, settings, unique_email):
    settings.DSAR_WEBHOOK_TIMEOUT_SECONDS = 0.5
    hook.hold = threading.Event()  # the receiver answers only once the attempt has ended
    request = _deleted(unique_email("slow"))
    sent = _send(_notification(request, "Hostly GmbH"))
    hook.hold.set()

    assert (sent.status, sent.attempts) == ("queued", 1)
    assert sent.last_error.startswith("the webhook did not answer: ") and "timed out" in sent.last_error


@pytest.mark.django_db
def test_a_recipient_no_longer_declared_fails_at_once_saying_why(settings, tmp_path, crm, unique_email):
    request = _deleted(unique_email("undeclared"))
    crm_configure(settings, tmp_path, CRM_WITHOUT_RECIPIENTS)
    failed = _send(_notification(request, "Hostly GmbH"))

    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.last_error == "the system file of crm no longer gives Hostly GmbH a webhook to be told by"


# --- Email and by hand ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_email_notification_goes_through_the_outbox_to_the_recipient_saying_what_to_erase_and_nothing_more(
        crm, unique_email, mailoutbox):
    email = unique_email("mailed")
    request = _deleted(email)
    sent = _send(_notification(request, "Mailbird Inc."))
    assert (sent.status, sent.attempts, sent.sent_at, sent.identities) == ("sent", 1, AT, {})
    assert _entries(request, "recipient_notified") == [
        ("system", "recipient_notified", "Mailbird Inc. told of the erasure: emailed to dpo@mailbird.example",
         {"recipient": "Mailbird Inc.", "system": "crm", "method": "email"})]

    assert notifications.emails_send() == 3  # the person's that work started, the recipient's, and the person's saying whom we told
    (message,) = [message for message in mailoutbox if message.to == ["dpo@mailbird.example"]]
    assert (message.to, message.subject, message.from_email) == (
        ["dpo@mailbird.example"], "Example Company: Erasure notice: please erase a person's data we shared with you", "privacy@example.com")
    assert message.body == (
        "To Mailbird Inc.,\n\n"
        "A person asked us to erase their personal data, and we have erased it. You received some of it from us, so we ask you to "
        "erase what you hold of it too, and to tell anyone you passed it on to.\n\n"
        "What to erase (our category ids in brackets):\n"
        "- Feedback, surveys and reviews (feedback_ratings)\n\n"
        "The person, as we know them:\n"
        f"- email: {email}\n"
        "- customer_no: C-1042\n\n"
        "We erased it on 9 March 2026, 13:00 UTC.\n"
        f"Our reference: {request.pk}\n\n"
        "Please reply to privacy@example.com if you cannot erase it, or have questions. Quote our reference.\n")
    html = message.alternatives[0][0]
    assert "<li>Feedback, surveys and reviews (<code>feedback_ratings</code>)</li>" in html and f"<li>email: {email}</li>" in html
    assert "probe feedback" not in message.body + html  # the person's records are never sent

    (completed,) = [message for message in mailoutbox if message.to == [email] and message.subject.endswith("Your request is complete")]
    assert ("These organisations received some of your data from us. We told each of them that we deleted it, and asked them to "
            "delete what they hold of it too:\n- Hostly GmbH\n- Mailbird Inc.\n- Tax office\n") in completed.body
    assert "<li style=\"margin:0 0 4px 0;\">Mailbird Inc.</li>" in completed.alternatives[0][0]


@pytest.mark.django_db
def test_a_recipient_told_by_hand_waits_with_staff_and_no_worker_takes_it(crm, unique_email):
    request = _deleted(unique_email("by-hand"))
    kept = _send(_notification(request, "Tax office"))

    assert (kept.status, kept.attempts, kept.sent_at) == ("with_staff", 0, None)
    assert recipients.recipient_notification_get(notification_id=kept.pk).instructions == "Note the erasure in the tax file."


@pytest.mark.django_db
def test_staff_mark_one_told_by_hand_done_with_a_note_and_it_keeps_no_identity(crm, unique_email):
    request = _deleted(unique_email("noted"))
    notification = _notification(request, "Tax office")
    with pytest.raises(InvalidInput) as missing:
        recipients.recipient_notification_done(notification_id=notification.pk, actor="staff:rita", note="  ")
    assert (missing.value.code, _notification(request, "Tax office").status) == ("note_required", "with_staff")

    with time_machine.travel(AT + dt.timedelta(hours=1), tick=False):
        recipients.recipient_notification_done(notification_id=notification.pk, actor="staff:rita", note=" Noted in the tax file, ref 42. ")
    done = _notification(request, "Tax office")
    assert (done.status, done.done_at, done.done_by, done.identities) == ("done", AT + dt.timedelta(hours=1), "staff:rita", {})
    assert _entries(request, "recipient_notify_done") == [
        ("staff:rita", "recipient_notify_done", "Noted in the tax file, ref 42.",
         {"recipient": "Tax office", "system": "crm", "method": "manual"})]
    with pytest.raises(Conflict) as again:
        recipients.recipient_notification_done(notification_id=notification.pk, actor="staff:ada", note="again")
    assert (again.value.code, again.value.detail) == ("not_open", "This notification is done: there is nothing left to do by hand.")


@pytest.mark.django_db
def test_staff_retry_a_failed_notification_from_its_first_attempt_and_the_retry_is_audited(crm, hook, settings, unique_email):
    settings.DSAR_RECIPIENT_NOTIFY_MAX_ATTEMPTS = 1
    hook.statuses = [500, 204]
    request = _deleted(unique_email("retried"))
    notification = _notification(request, "Hostly GmbH")
    with pytest.raises(Conflict) as queued:
        recipients.recipient_notification_retry(notification_id=notification.pk, actor="staff:rita")
    assert (queued.value.code, queued.value.detail) == ("not_failed", "This notification is queued: only a failed one can be retried.")
    assert _send(notification).status == "failed"

    with time_machine.travel(AT + dt.timedelta(minutes=5), tick=False):
        recipients.recipient_notification_retry(notification_id=notification.pk, actor="staff:rita")
    requeued = _notification(request, "Hostly GmbH")
    assert (requeued.status, requeued.attempts, requeued.not_before) == ("queued", 0, AT + dt.timedelta(minutes=5))
    assert _entries(request, "recipient_notify_retried") == [
        ("staff:rita", "recipient_notify_retried", "Hostly GmbH: trying again after: gave up after 1 attempts; last error: the webhook "
                                                  "answered 500 Internal Server Error",
         {"recipient": "Hostly GmbH", "system": "crm", "method": "webhook"})]
    assert _send(notification, AT + dt.timedelta(minutes=5)).status == "sent"


@pytest.mark.django_db
def test_a_closed_requests_record_kept_past_its_period_keeps_no_identity_in_its_notifications(crm, unique_email):
    request = _deleted(unique_email("old"))
    jobs.record_retention(now=AT + dt.timedelta(days=800), limit=10)

    assert list(RecipientNotification.objects.filter(request=request).values_list("identities", flat=True)) == [{}, {}, {}]


# --- On the real worker ---------------------------------------------------------------------------------------


def _mailed(worker, to: str) -> list[str]:
    """The messages the worker wrote to `to`, each as the file backend wrote it."""
    found = []
    for path in worker.mail_dir.iterdir():
        found.extend(message for message in path.read_text().split("-" * 79) if f"\nTo: {to}\n" in message)
    return found


@pytest.mark.django_db(transaction=True)
def test_a_deletion_run_by_the_worker_tells_its_recipients_by_email_and_leaves_the_one_told_by_hand_with_staff(
        api, reviewer, worker, mailoutbox, unique_email):
    email = unique_email("estate")
    estate_load(estate_parse({"subjects": [{"email": email, "accounts": {"name": "Rosa Told", "interests": ["chess"]}}]}))
    request_id, token = file_request(api, mailoutbox, type="deletion", email=email)
    approve(reviewer, request_id)
    final = wait_until_final(request_id)
    assert final.status == "completed", final.failure_reason

    assert subject_view(api, request_id, token)["result"]["recipients_notified"] == [
        "Brightreach Ads Inc.", "Nimbus Hosting GmbH", "Postwave Inc.", "Tallymark Analytics SAS"]

    def told() -> list[tuple]:
        return sorted(RecipientNotification.objects.filter(request_id=request_id).values_list("recipient", "method", "status", "categories",
                                                                                              "attempts"))

    wait_for(lambda: all(row[2] != "queued" for row in told()), timeout=30, what="the worker to send the emails")
    assert told() == [("Brightreach Ads Inc.", "manual", "with_staff", ["interests"], 0),
                      ("Nimbus Hosting GmbH", "email", "sent", ["credentials", "demographic", "interests", "name_contact"], 1),
                      ("Postwave Inc.", "email", "sent", ["name_contact"], 1),
                      ("Tallymark Analytics SAS", "email", "sent", ["demographic"], 1)]
    (nimbus,) = wait_for(lambda: [m for m in _mailed(worker, "dpo@nimbus-hosting.example") if request_id in m], timeout=30,
                         what="the email to Nimbus")
    assert ("- Sign-in and security details (credentials)\n- Basic facts about you (demographic)\n- Interests and favourites (interests)\n"
            "- Name and contact details (name_contact)\n") in nimbus
    assert f"- email: {email}\n" in nimbus and "Rosa Told" not in nimbus and "chess" not in nimbus
    (completed,) = [m for m in _mailed(worker, email) if "Your request is complete" in m]
    assert ("These organisations received some of your data from us. We told each of them that we deleted it, and asked them to "
            "delete what they hold of it too:\n- Brightreach Ads Inc.\n- Nimbus Hosting GmbH\n- Postwave Inc.\n- Tallymark Analytics SAS\n") in completed


@pytest.mark.django_db(transaction=True)
def test_a_notification_left_queued_by_a_lost_doorbell_or_a_dead_worker_is_rung_for_by_the_sweeper_and_sent(worker):
    request = request_make(status="completed", type="deletion", email="left.queued@example.com")
    Request.objects.filter(pk=request.pk).update(completed_at=AT)
    left = RecipientNotification.objects.create(
        request=request, system="accounts", recipient="Postwave Inc.", method="email", categories=["name_contact"],
        identities={"email": ["left.queued@example.com"]}, status="queued", not_before=AT, created_at=AT)

    assert jobs.job_run("sweeper", now=AT + dt.timedelta(minutes=5)).endswith("0 recipient notifications rung, 0 emails due")
    assert jobs.job_run("sweeper", now=AT + dt.timedelta(minutes=11)).endswith("1 recipient notifications rung, 0 emails due")
    wait_for(lambda: RecipientNotification.objects.get(pk=left.pk).status == "sent", timeout=30, what="the worker to send it")
    (message,) = wait_for(lambda: [m for m in _mailed(worker, "privacy@postwave.example") if str(request.pk) in m], timeout=30,
                          what="the email to Postwave")
    assert "- email: left.queued@example.com\n" in message and "We erased it on 9 March 2026, 13:00 UTC.\n" in message
