"""The outgoing emails: written with the change they tell of, sent after it commits by whoever
delivers (a worker, rung once a burst), over a real SMTP relay where the relay's answers matter."""

from __future__ import annotations

import datetime as dt
import re
from email import message_from_bytes, policy

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.core.cache import cache
from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dsar import jobs, notifications, services, verification
from dsar.cache import cache_redis
from dsar.models import AuditEntry, OutgoingEmail, Request
from devstack import free_port

from ..conftest import CODE, code_from
from ..factories import request_make
from ..support.waiting import wait_for


class _Relay:
    """An SMTP server's answers, per recipient: 550 refuses for good, 451 asks to come back later."""

    def __init__(self, refuse: dict[str, str] | None = None) -> None:
        self.refuse = refuse or {}
        self.received: list[tuple[int, list[str], str]] = []  # (session, recipients, message)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((id(session), envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def smtp(settings):
    """Mail goes to a real SMTP relay on loopback; `start(relay)` brings it up, until then its port is closed."""
    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.DSAR_RETRY_BASE_SECONDS, settings.DSAR_RETRY_MAX_SECONDS = 0.05, 0.1
    controllers = []

    def start(relay: _Relay) -> _Relay:
        controller = Controller(relay, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return relay

    yield start
    for controller in controllers:
        controller.stop()


def _queued(*requests_and_templates) -> list[OutgoingEmail]:
    """Queue emails in a committed transaction without sending them (the doorbell is not rung)."""
    emails = [notifications.email_new(request, template) for request, template in requests_and_templates]
    with transaction.atomic():
        for email in emails:
            email.save()
    return emails


def test_filing_writes_the_request_its_entry_and_its_code_email_in_one_statement_and_stores_no_code(db, django_capture_on_commit_callbacks, mailoutbox):
    with CaptureQueriesContext(transaction.get_connection()) as queries, django_capture_on_commit_callbacks() as rung:
        request = services.request_create(type="access", email="one.statement@example.com")
    assert len(queries) == 1 and queries[0]["sql"].startswith("WITH ")
    email = OutgoingEmail.objects.get(request=request)
    assert (email.template, email.to, email.attempts) == ("code", [], 0)
    assert mailoutbox == [] and len(rung) == 1  # nothing is sent before the commit rings
    rung[0]()
    code = code_from(mailoutbox, "one.statement@example.com")
    assert verification.code_matches(code, Request.objects.get(pk=request.pk).code_hash)
    assert code not in str(email.context) and not OutgoingEmail.objects.exists()


def test_an_email_queued_in_a_transaction_that_rolls_back_never_exists(db, mailoutbox):
    request = request_make(status="pending_review")
    with pytest.raises(RuntimeError), transaction.atomic():
        notifications.email_on_commit(request, "denied", reason="not the holder")
        raise RuntimeError("the change fails")
    assert not OutgoingEmail.objects.exists() and mailoutbox == []


def test_a_context_holds_json_values_and_datetimes_which_come_back_as_datetimes(db, mailoutbox, django_capture_on_commit_callbacks):
    request = request_make(status="pending_review")
    with pytest.raises(TypeError, match="not Request"), transaction.atomic():
        notifications.email_on_commit(request, "denied", reason=request)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        notifications.email_on_commit(request, "extended", reason="Many systems.", new_due_at=dt.datetime(2027, 3, 4, 12, tzinfo=dt.UTC))
    [sent] = mailoutbox
    assert "by 4 March 2027 at the latest" in sent.body


# --- What the emails tell the person the law gives them ----------------------------------------------------

UTC = dt.UTC


def _filed_and_verified(email: str, capture, mailoutbox, *, jurisdiction: str, settings, language: str = "en"):
    """File and verify a request through the services on 2 March 2026 at noon UTC, under `jurisdiction`, in `language`."""
    settings.DSAR_JURISDICTION = jurisdiction
    with time_machine.travel(dt.datetime(2026, 3, 2, 12, tzinfo=UTC), tick=False):
        with capture(execute=True):
            request = services.request_create(type="access", email=email, language=language)
        with capture(execute=True):
            services.request_verify(request_id=request.pk, code=code_from(mailoutbox, email))
    return mailoutbox[-1]


@pytest.mark.parametrize(("jurisdiction", "timeline"), [
    ("ccpa", "We will answer it by 16 April 2026 at the latest: the law gives us 45 days from when we received it. If we "
             "need more time, the law lets us extend that once, by up to 45 more days; we would email you before 16 April 2026 "
             "to tell you why and the new date."),
    ("gdpr", "We will answer it by 2 April 2026 at the latest: the law gives us one month from when we received it. If we need "
             "more time, the law lets us extend that by up to two further months; we would email you before 2 April 2026 to tell "
             "you why and the new date."),
])
def test_the_email_acknowledging_a_verified_request_states_the_timeline_the_law_gives(
        estate, db, settings, mailoutbox, django_capture_on_commit_callbacks, jurisdiction, timeline):
    received = _filed_and_verified(f"timeline.{jurisdiction}@example.com", django_capture_on_commit_callbacks, mailoutbox,
                                   jurisdiction=jurisdiction, settings=settings)
    assert received.subject == "Example Company: We have received your request"
    assert timeline in " ".join(received.body.split())
    html = received.alternatives[0][0]
    assert timeline in " ".join(re.sub(r"<[^>]+>", "", html).split())


@pytest.mark.parametrize(("jurisdiction", "timeline"), [
    ("ccpa", "Wir beantworten Ihre Anfrage spätestens bis zum 16. April 2026: Das Gesetz gibt uns dafür 45 Tage ab Eingang Ihrer "
             "Anfrage. Wenn wir mehr Zeit benötigen, erlaubt uns das Gesetz, diese Frist einmalig um bis zu 45 weitere Tage zu "
             "verlängern; in diesem Fall würden wir Ihnen vor dem 16. April 2026 per E-Mail den Grund und das neue Datum mitteilen."),
    ("gdpr", "Wir beantworten Ihre Anfrage spätestens bis zum 2. April 2026: Das Gesetz gibt uns dafür einen Monat ab Eingang Ihrer "
             "Anfrage. Wenn wir mehr Zeit benötigen, erlaubt uns das Gesetz, diese Frist um bis zu zwei weitere Monate zu "
             "verlängern; in diesem Fall würden wir Ihnen vor dem 2. April 2026 per E-Mail den Grund und das neue Datum mitteilen."),
])
def test_a_request_filed_in_german_is_told_the_timeline_the_law_gives_in_german(
        estate, db, settings, mailoutbox, django_capture_on_commit_callbacks, jurisdiction, timeline):
    received = _filed_and_verified(f"zeitplan.{jurisdiction}@example.com", django_capture_on_commit_callbacks, mailoutbox,
                                   jurisdiction=jurisdiction, settings=settings, language="de")
    assert received.subject == "Example Company: Wir haben Ihre Anfrage erhalten"
    assert timeline in " ".join(received.body.split())
    html = received.alternatives[0][0]
    assert timeline in " ".join(re.sub(r"<[^>]+>", "", html).split())


def test_the_extension_email_gives_the_person_the_reason_and_the_new_date_when_the_deadline_is_extended(
        db, mailoutbox, django_capture_on_commit_callbacks):
    request = request_make(status="processing", email="extended@example.com")
    Request.objects.filter(pk=request.pk).update(jurisdiction="ccpa", due_at=dt.datetime(2026, 4, 16, 12, tzinfo=UTC))
    reason = "Your data is spread over eleven systems."
    six_days_before = time_machine.travel(dt.datetime(2026, 4, 10, 12, tzinfo=UTC), tick=False)
    with six_days_before, django_capture_on_commit_callbacks(execute=True):
        services.request_extend(request_id=request.pk, actor="staff:rita", reason=reason, days=45)
    [sent] = mailoutbox
    assert (sent.to, sent.subject) == (["extended@example.com"], "Example Company: We need more time for your request")
    for text in (sent.body, sent.alternatives[0][0]):
        assert "Your data is spread over eleven systems." in text
        assert "31 May 2026" in text


def test_a_german_request_gets_its_extension_and_denial_in_german_and_staff_are_told_of_it_in_english(
        db, settings, mailoutbox, django_capture_on_commit_callbacks):
    extended = request_make(status="processing", email="verlaengert@example.com")
    denied = request_make(status="pending_review", email="abgelehnt@example.com")
    Request.objects.filter(pk__in=[extended.pk, denied.pk]).update(language="de", jurisdiction="gdpr", time_zone="Europe/Berlin",
                                                                   due_at=dt.datetime(2026, 4, 2, 12, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2026, 3, 30, 12, tzinfo=UTC), tick=False), django_capture_on_commit_callbacks(execute=True):
        services.request_extend(request_id=extended.pk, actor="staff:rita", reason="Ihre Daten liegen in elf Systemen.", days=60)
        services.request_deny(request_id=denied.pk, actor="staff:rita", reason="Das Konto passt nicht.", ground="manifestly_unfounded")
        notifications.staff_email_on_commit(["rita@example.com"], "staff_deadline", request=Request.objects.get(pk=denied.pk),
                                            kind="2d")
    sent = {message.to[0]: message for message in mailoutbox}
    extension, denial, staff = sent["verlaengert@example.com"], sent["abgelehnt@example.com"], sent["rita@example.com"]
    assert extension.subject == "Example Company: Wir benötigen mehr Zeit für Ihre Anfrage"
    assert denial.subject == "Example Company: Zu Ihrer Anfrage"
    for text in (extension.body, extension.alternatives[0][0]):
        flat = " ".join(re.sub(r"<[^>]+>", "", text).split())
        assert ("Wir arbeiten noch an Ihrer Anfrage auf eine Kopie Ihrer Daten, benötigen aber mehr Zeit, um sie abzuschließen. "
                "Der Grund: Ihre Daten liegen in elf Systemen. Wir beantworten Ihre Anfrage nun spätestens bis zum 1. Juni 2026.") in flat
    for text in (denial.body, denial.alternatives[0][0]):
        flat = " ".join(re.sub(r"<[^>]+>", "", text).split())
        assert ("Wir haben Ihre Anfrage auf eine Kopie Ihrer Daten geprüft und abgelehnt. Wir haben sie als offenkundig unbegründet "
                "abgelehnt") in flat
        assert "Unser Datenschutzteam hat dies wie folgt begründet: Das Konto passt nicht." in flat
        assert "Sie haben außerdem das Recht, sich bei einer Datenschutzbehörde (Aufsichtsbehörde) zu beschweren" in flat
    assert staff.subject == "Example Company: Request deadline"
    assert staff.body.startswith("Reminder: an access request is due in 2 days.\n\n")
    assert '<html lang="en">' in staff.alternatives[0][0]


GDPR_COMPLAINT = ("You also have the right to complain to a data protection authority (a supervisory authority), "
                  "in particular the one in the country where you live or work, or where you think the law was broken, and the "
                  "right to take the matter to court.")
CCPA_COMPLAINT = ("You can also file a complaint with the California Privacy Protection Agency, the state agency that enforces "
                  "California privacy law, or with the California Attorney General.")


@pytest.mark.parametrize(("jurisdiction", "rights"), [("gdpr", GDPR_COMPLAINT), ("ccpa", CCPA_COMPLAINT)])
def test_a_denial_tells_the_person_where_they_can_complain_and_under_the_gdpr_that_they_can_go_to_court(
        db, mailoutbox, django_capture_on_commit_callbacks, jurisdiction, rights):
    request = request_make(status="pending_review", email="refused@example.com")
    Request.objects.filter(pk=request.pk).update(jurisdiction=jurisdiction)
    with django_capture_on_commit_callbacks(execute=True):
        services.request_deny(request_id=request.pk, actor="staff:rita", reason="We could not match the account.")
    [sent] = mailoutbox
    for text in (sent.body, sent.alternatives[0][0]):
        assert rights in " ".join(text.split())
    assert ("court" in sent.body, "California" in sent.body) == ((True, False) if jurisdiction == "gdpr" else (False, True))


@pytest.mark.parametrize(("jurisdiction", "rights"), [("gdpr", GDPR_COMPLAINT), ("ccpa", CCPA_COMPLAINT)])
def test_a_referral_to_the_organisation_tells_the_person_where_they_can_complain(
        estate, organisation_systems_only, db, settings, mailoutbox, django_capture_on_commit_callbacks, jurisdiction, rights):
    referred = _filed_and_verified("carol@school.example.org", django_capture_on_commit_callbacks, mailoutbox,
                                   jurisdiction=jurisdiction, settings=settings)
    assert referred.subject == "Example Company: Your request is handled by your organisation"
    for text in (referred.body, referred.alternatives[0][0]):
        assert rights in " ".join(text.split())


@pytest.mark.parametrize(("jurisdiction", "rights"), [("gdpr", GDPR_COMPLAINT), ("ccpa", CCPA_COMPLAINT)])
def test_an_erasure_that_kept_some_data_tells_the_person_where_they_can_complain_and_one_that_kept_none_does_not(
        db, mailoutbox, django_capture_on_commit_callbacks, jurisdiction, rights):
    kept = request_make(status="completed", type="deletion", email="kept@example.com")
    whole = request_make(status="completed", type="deletion", email="whole@example.com")
    Request.objects.filter(pk__in=[kept.pk, whole.pk]).update(jurisdiction=jurisdiction)
    Request.objects.filter(pk=kept.pk).update(result={"erased": {"name_contact": 1}, "retained": [
        {"category": "payment", "count": 2, "reason": "Tax law requires invoices for 10 years", "until": "2034-03-01"}]})
    Request.objects.filter(pk=whole.pk).update(result={"erased": {"name_contact": 1}, "retained": []})
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        for request in Request.objects.filter(pk__in=[kept.pk, whole.pk]):
            notifications.email_on_commit(request, "completed")
    sent = {message.to[0]: message for message in mailoutbox}
    for text in (sent["kept@example.com"].body, sent["kept@example.com"].alternatives[0][0]):
        flat = " ".join(re.sub(r"<[^>]+>", " ", text).split())
        assert "Payment details (2 records) Why: Tax law requires invoices for 10 years" in flat
        assert "If you think we should not keep it, you can reply to this email to contact our privacy team." in flat
        assert rights in flat
    assert "complain" not in sent["whole@example.com"].body


def test_a_code_replaced_by_a_newer_one_an_expired_code_and_an_anonymised_subject_get_no_email(db, mailoutbox):
    replaced = request_make(email="replaced@example.com", code_issued=True)
    expired = request_make(email="expired@example.com", code_issued=True)
    anonymised = request_make(status="completed", email="anon:0123")
    with transaction.atomic():
        notifications.email_enqueue(notifications.code_email(replaced))
        notifications.email_enqueue(notifications.code_email(expired))
        notifications.email_on_commit(anonymised, "completed")
        verification.code_issue(replaced, timezone.now())
        replaced.save()
        notifications.email_enqueue(notifications.code_email(replaced))
        Request.objects.filter(pk=expired.pk).update(code_expires_at=timezone.now() - dt.timedelta(seconds=1))
        Request.objects.filter(pk=anonymised.pk).update(anonymized_at=timezone.now())
    assert notifications.emails_send() == 1
    [sent] = mailoutbox
    assert sent.to == ["replaced@example.com"]
    assert verification.code_matches(CODE.search(sent.body).group(1), Request.objects.get(pk=replaced.pk).code_hash)
    assert not OutgoingEmail.objects.exists()


def test_a_relay_that_is_down_keeps_the_email_which_goes_once_when_the_relay_is_back(db, smtp):
    request = request_make(email="patient@example.com", code_issued=True)
    with transaction.atomic():
        notifications.email_enqueue(notifications.code_email(request))
    assert notifications.emails_send() == 0
    kept = OutgoingEmail.objects.get()
    assert kept.attempts == 1 and "refused" in kept.last_error.lower() and kept.not_before > kept.created_at
    relay = smtp(_Relay())
    wait_for(lambda: notifications.emails_send(), timeout=10, what="the email to go once its backoff ends")
    [(_, recipients, message)] = relay.received
    assert recipients == ["patient@example.com"] and verification.code_for(request) in message
    assert not OutgoingEmail.objects.exists()


def test_an_email_goes_as_plain_text_with_an_html_alternative_from_the_deployments_sender(db, smtp, settings):
    settings.DEFAULT_FROM_EMAIL = "privacy@company.example"
    relay = smtp(_Relay())
    request = request_make(status="pending_review", email="reader@example.com")
    with transaction.atomic():
        notifications.email_on_commit(request, "denied", reason="Not the account holder.\r\nSecond line, é.")
    assert notifications.emails_send() == 1
    [(_, recipients, raw)] = relay.received
    message = message_from_bytes(raw.encode(), policy=policy.default)
    assert recipients == ["reader@example.com"]
    assert (message["Subject"], message["From"], message["To"]) == ("Example Company: About your request", "privacy@company.example", "reader@example.com")
    assert message["Message-ID"] and message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    lines = text.get_content().splitlines()
    assert lines[lines.index("Not the account holder.") + 1] == "Second line, é."
    assert "Second line, é." in html.get_content()


def test_one_smtp_session_carries_a_batch_and_each_refusal_is_handled_alone(db, smtp):
    relay = smtp(_Relay(refuse={"gone@example.com": "550 5.1.1 No such mailbox", "busy@example.com": "451 4.3.0 Try later"}))
    addresses = ["first@example.com", "gone@example.com", "second@example.com", "busy@example.com", "after@example.com"]
    emails = _queued(*[(request_make(status="pending_review", email=address), "received") for address in addresses])
    assert notifications.emails_send() == 2
    assert [recipients for _, recipients, _ in relay.received] == [["first@example.com"], ["second@example.com"]]
    assert len({session for session, _, _ in relay.received}) == 1  # one SMTP session for the batch
    refused = AuditEntry.objects.get(request_id=emails[1].request_id, action="email_undelivered")
    assert "550 5.1.1 No such mailbox" in refused.note
    postponed = OutgoingEmail.objects.get(pk=emails[3].pk)  # 451: kept, and the rest waits for the relay
    assert postponed.attempts == 1 and "451" in postponed.last_error
    assert OutgoingEmail.objects.get(pk=emails[4].pk).attempts == 0
    assert notifications.emails_send() == 1  # the next send takes the one left, not the one backing off
    assert relay.received[-1][1] == ["after@example.com"]
    assert set(OutgoingEmail.objects.values_list("pk", flat=True)) == {emails[3].pk}


@pytest.mark.parametrize(("age", "given_up"), [(dt.timedelta(hours=71, minutes=59), False), (dt.timedelta(hours=72, minutes=1), True)])
def test_an_email_failing_for_longer_than_three_days_is_given_up_and_the_trail_says_so(db, smtp, age, given_up):
    request = request_make(status="pending_review")
    [email] = _queued((request, "received"))
    OutgoingEmail.objects.filter(pk=email.pk).update(created_at=timezone.now() - age)
    assert notifications.emails_send() == 0  # the relay's port is closed
    assert OutgoingEmail.objects.filter(pk=email.pk).exists() is not given_up
    entries = AuditEntry.objects.filter(request_id=request.pk, action="email_undelivered")
    assert [entry.note.startswith("received email: still failing after 72 hours") for entry in entries] == ([True] if given_up else [])


def test_an_email_that_cannot_be_rendered_is_kept_and_holds_back_no_other(db, mailoutbox):
    broken = request_make(email="broken@example.com", code_issued=True)
    fine = request_make(status="pending_review", email="fine@example.com")
    _queued((broken, "code"), (fine, "received"))  # a code email without its moment of issue
    assert notifications.emails_send() == 1
    assert [m.to for m in mailoutbox] == [["fine@example.com"]]
    kept = OutgoingEmail.objects.get()
    assert (kept.request_id, kept.attempts) == (broken.pk, 1) and "issued" in kept.last_error


def test_the_sweeper_sends_an_email_whose_doorbell_was_lost(db, mailoutbox):
    _queued((request_make(status="pending_review", email="swept@example.com"), "received"))
    assert jobs.job_run("sweeper").endswith("1 emails due")
    assert [m.to for m in mailoutbox] == [["swept@example.com"]]
    assert not OutgoingEmail.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_worker_rung_by_the_doorbell_sends_what_a_filing_queued(api, worker, settings, unique_email):
    settings.DSAR_EMAIL_DELIVERY = "worker"
    email = unique_email("rung")
    created = api.post("/api/v1/requests", {"type": "access", "email": email}, format="json")
    assert created.status_code == 201

    def delivered() -> str | None:
        for path in worker.mail_dir.iterdir():
            for message in path.read_text().split("-" * 79):  # the file backend's separator
                if f"\nTo: {email}\n" in message:
                    return CODE.search(message.split("\n\n", 1)[1]).group(1)
        return None

    code = wait_for(delivered, timeout=30, what="the worker to send the code email")
    verified = api.post(f"/api/v1/requests/{created.json()['id']}/verify", {"code": code}, format="json")
    assert verified.status_code == 200
    wait_for(lambda: not OutgoingEmail.objects.filter(request_id=created.json()["id"]).exists(), timeout=10,
             what="the worker to commit what it sent")
    wait_for(lambda: cache.get(notifications.DOORBELL) is None, timeout=10,
             what="the task to take the doorbell's key down once no more emails came")


@pytest.mark.django_db(transaction=True)
def test_a_doorbell_held_by_a_task_that_died_keeps_emails_waiting_only_until_its_key_runs_out(api, worker, settings, unique_email):
    settings.DSAR_EMAIL_DELIVERY = "worker"
    key = cache.make_key(notifications.DOORBELL)
    cache_redis().set(key, 1, ex=notifications.DOORBELL_SECONDS)  # as a task killed mid-run leaves it
    first = api.post("/api/v1/requests", {"type": "access", "email": unique_email("held")}, format="json").json()["id"]
    assert OutgoingEmail.objects.filter(request_id=first).exists()  # queued, and no doorbell rang for it
    wait_for(lambda: not cache_redis().exists(key), timeout=notifications.DOORBELL_SECONDS + 5, what="the dead task's key to run out")
    second = api.post("/api/v1/requests", {"type": "access", "email": unique_email("after")}, format="json").json()["id"]
    wait_for(lambda: not OutgoingEmail.objects.filter(request_id__in=[first, second]).exists(), timeout=30,
             what="the next doorbell's task to send both emails")
