"""Every change a person's request goes through is told to them in one email, in their words: an
access request and a deletion walked through each state they can take, through the real services,
connectors and final step, and what the person reads at each step, written out by hand.

The journeys run on 2 March 2026 at noon UTC, for a person far from UTC (Auckland is 13 hours
ahead then, so a time there falls on the next day), with only the systems the journey needs."""

from __future__ import annotations

import datetime as dt
import json
import re
from email import message_from_string, policy
from pathlib import Path

import pytest
import time_machine
from django.conf import settings as django_settings

from connectors.registry import connectors_reset
from dsar import jobs, processing, services
from dsar.models import ConnectorTask, Request
from estate.loader import estate_load, estate_parse

from ..conftest import code_from
from ..support.flows import wait_until_final
from ..support.probe import probe_plan
from ..support.waiting import wait_for

NOON = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
COMPANY = "Example Company: "
ROOT = Path(__file__).resolve().parent.parent.parent


def _words(text: str) -> str:
    """Text with its tags gone and its white space as single spaces, as a reader takes it in."""
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


class Inbox:
    """The person's mailbox: each step reads what arrived since the one before."""

    def __init__(self, mailoutbox, email: str) -> None:
        self.mailoutbox, self.email, self.read = mailoutbox, email, 0

    def new(self) -> list[tuple[str, str, str]]:
        """(subject, plain text, HTML) of each email to the person since the last look, as words."""
        mine = [message for message in self.mailoutbox if message.to == [self.email]]
        arrived, self.read = mine[self.read:], len(mine)
        return [(message.subject, _words(message.body), _words(message.alternatives[0][0])) for message in arrived]

    def one(self, subject: str, *sentences: str) -> str:
        """Exactly one email arrived since the last look, with this subject, saying each sentence in
        its text and its HTML alike; its text."""
        [(got, text, html)] = self.new()
        assert got == COMPANY + subject
        for sentence in sentences:
            assert sentence in text, (sentence, text)
            assert sentence in html, (sentence, html)
        return text


def _subject(email: str) -> dict:
    """The demo's richest subject (a card, invoices, contacts) under a new address."""
    demo = json.loads((ROOT / "estate" / "demo.json").read_text())["subjects"][0]
    demo["email"] = email
    return demo


def _systems(settings, *names: str) -> None:
    settings.DSAR_SYSTEMS = {name: django_settings.DSAR_SYSTEMS[name] for name in names}
    connectors_reset()


@pytest.fixture
def journey(estate, settings, db, django_capture_on_commit_callbacks):
    """Run each step as its own committed change (its emails sent as it commits), at noon on 2 March 2026."""
    settings.DSAR_JURISDICTION = "gdpr"

    def step(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    with time_machine.travel(NOON, tick=False):
        yield step
    connectors_reset()


def _run_queued_tasks(step, request_id) -> None:
    """Run the request's queued connector tasks here, as a worker would, then the final step the last
    one rang for (the probe's short time limit leaves it to a worker of its own)."""
    for task in ConnectorTask.objects.filter(request_id=request_id, status="queued").order_by("connector"):
        step(processing.task_run, task.pk)
    if Request.objects.get(pk=request_id).status == "processing":
        step(processing.final_step_run, request_id)


def test_an_access_request_is_told_of_each_change_from_its_receipt_to_its_download_expiring(
        journey, settings, mailoutbox, unique_email):
    email = unique_email("journey.access")
    estate_load(estate_parse({"subjects": [_subject(email)]}))
    _systems(settings, "accounts", "probe")  # the person's contacts may be other people's data: the export is held
    probe_plan(email, permanent=True)
    inbox = Inbox(mailoutbox, email)

    request = journey(services.request_create, type="access", email=email, time_zone="Pacific/Auckland")
    inbox.one("Your verification code", "To confirm your privacy request, enter this code")

    journey(services.request_verify, request_id=request.pk, code=code_from(mailoutbox, email))
    inbox.one("We have received your request",
              "We will answer it by 3 April 2026 at the latest",
              "A member of our privacy team checks every request before we act on it. We will email you when we start "
              "gathering your data, and again when it is done.")

    journey(services.request_ask, request_id=request.pk, actor="staff:rita", question="Which account do you mean?", purpose="scope")
    inbox.one("We need more information about your request", "Which account do you mean?")

    journey(services.request_answer, request_id=request.pk, answer="The one I use for music.")
    inbox.one("Thank you for your answer", "We have your answer to our question. Our privacy team will now look at your request again.")

    journey(services.request_approve, request_id=request.pk, actor="staff:rita")
    inbox.one("We have started work on your request",
              "Our privacy team has checked your request. We have started gathering your data from our systems",
              "We will email you a download link when your file is ready.")

    journey(services.request_extend, request_id=request.pk, actor="staff:rita", reason="Your data is in many systems.", days=30)
    inbox.one("We need more time for your request", "Your data is in many systems.", "We will now answer it by 3 May 2026 at the latest.")

    _run_queued_tasks(journey, request.pk)  # the probe refuses for good
    assert Request.objects.get(pk=request.pk).status == "failed"
    inbox.one("Your request is delayed", "A technical problem on our side is delaying your request for a copy of your data.",
              "We still have to answer your request by 3 May 2026")

    probe_plan(email)
    journey(services.request_retry, request_id=request.pk, actor="staff:rita")
    assert inbox.new() == []  # the delay email promised to try again: that is no news
    _run_queued_tasks(journey, request.pk)
    assert Request.objects.get(pk=request.pk).status == "completed"
    inbox.one("We are checking your data before we send it", "Some of it may also concern other people, such as your contacts",
              "by 3 May 2026 at the latest")

    decisions = [{"item": item.id, "action": "release"} for item in services.request_review_items(request_id=request.pk)]
    journey(services.request_release_reviewed, request_id=request.pk, actor="staff:rita", decisions=decisions)
    completed = inbox.one("Your request is complete", "The copy of your data is ready.",
                          "The link works until 10 March 2026, 01:00 (Pacific/Auckland time)")
    assert "comes in" not in completed and "Part 1" not in completed  # one zip: no list of parts

    journey(jobs.job_run, "export_expiry", now=NOON + dt.timedelta(days=6, hours=12))
    inbox.one("Your download expires soon", "The copy of your data can be downloaded until 10 March 2026, 01:00 (Pacific/Auckland time)")
    assert inbox.new() == []


def test_a_deletion_is_told_of_each_change_and_its_receipt_says_in_words_what_was_deleted_and_kept(
        journey, settings, mailoutbox, unique_email):
    email = unique_email("journey.deletion")
    estate_load(estate_parse({"subjects": [_subject(email)]}))
    _systems(settings, "payments", "probe")  # invoices are kept ten years under tax law
    probe_plan(email, records=2)
    inbox = Inbox(mailoutbox, email)

    request = journey(services.request_create, type="deletion", email=email, time_zone="Europe/Berlin")
    inbox.one("Your verification code")
    journey(services.request_verify, request_id=request.pk, code=code_from(mailoutbox, email))
    inbox.one("We have received your request", "We will answer it by 2 April 2026 at the latest",
              "We will email you when we start deleting your data, and again when it is done.")

    journey(services.request_ask, request_id=request.pk, actor="staff:rita", question="Is this your only address?", purpose="identity")
    inbox.one("We need more information about your request", "Is this your only address?")
    journey(services.request_answer, request_id=request.pk, answer="Yes.")
    inbox.one("Thank you for your answer", "We will email you when we start deleting your data, and again when it is done.")

    journey(services.request_approve, request_id=request.pk, actor="staff:rita")
    inbox.one("We have started work on your request", "We have started deleting your data from our systems.")

    _run_queued_tasks(journey, request.pk)
    assert Request.objects.get(pk=request.pk).status == "completed"
    [(subject, text, html)] = inbox.new()
    assert subject == COMPANY + "Your request is complete"
    for said in (text, html):
        assert "We have erased your data, as you asked." in said
        assert "What we deleted: " in said
        assert "Feedback, surveys and reviews: 2 records" in said
        assert ("Purchases and account activity (1 record) Why: Invoices are kept for 10 years because tax law requires it "
                "Legal basis: The law requires it Kept in: our payments system Kept until: 1 September 2036") in said
        for word in ("legal_obligation", "interactions.account_history", "feedback_ratings", "2036-09-01", "transactions"):
            assert word not in said, word


def test_a_denied_request_is_told_once_with_the_reason(journey, settings, mailoutbox, unique_email):
    email = unique_email("journey.denied")
    inbox = Inbox(mailoutbox, email)
    request = journey(services.request_create, type="deletion", email=email)
    inbox.one("Your verification code")
    journey(services.request_verify, request_id=request.pk, code=code_from(mailoutbox, email))
    inbox.one("We have received your request", "We will email you when we start deleting your data, and again when it is done.")
    journey(services.request_deny, request_id=request.pk, actor="staff:rita", reason="We could not match the account.")
    inbox.one("About your request", "we have declined it", "We could not match the account.")


def test_a_confirmed_request_withdrawn_is_told_once_and_one_never_confirmed_is_not(journey, settings, mailoutbox, unique_email):
    email = unique_email("journey.withdrawn")
    inbox = Inbox(mailoutbox, email)
    request = journey(services.request_create, type="deletion", email=email)
    inbox.one("Your verification code")
    journey(services.request_verify, request_id=request.pk, code=code_from(mailoutbox, email))
    inbox.one("We have received your request")
    journey(services.request_cancel, request_id=request.pk)
    inbox.one("You have withdrawn your request",
              "You withdrew your request to delete your data. We have stopped work on it and will not delete anything.",
              f"If you change your mind, you can make a new request at any time: {settings.DSAR_PUBLIC_URL}/request/",
              "If you did not withdraw it, please reply to this email to tell our privacy team.")

    unconfirmed = unique_email("journey.withdrawn.unconfirmed")
    inbox = Inbox(mailoutbox, unconfirmed)
    request = journey(services.request_create, type="access", email=unconfirmed)
    inbox.one("Your verification code")
    journey(services.request_cancel, request_id=request.pk)
    assert inbox.new() == []  # nobody proved the address: it is told nothing more


def test_a_request_of_an_account_an_organisation_manages_is_told_once_that_it_was_referred(
        journey, organisation_systems_only, mailoutbox):
    email = "carol@school.example.org"
    inbox = Inbox(mailoutbox, email)
    request = journey(services.request_create, type="access", email=email)
    inbox.one("Your verification code")
    journey(services.request_verify, request_id=request.pk, code=code_from(mailoutbox, email))
    inbox.one("Your request is handled by your organisation", "We have not processed your request and have not changed anything in your account.")


def test_a_request_never_confirmed_is_told_once_that_it_lapsed(journey, settings, mailoutbox, unique_email):
    email = unique_email("journey.lapsed")
    inbox = Inbox(mailoutbox, email)
    journey(services.request_create, type="access", email=email, time_zone="Pacific/Auckland")
    inbox.one("Your verification code")
    later = NOON + dt.timedelta(days=settings.DSAR_UNVERIFIED_PURGE_DAYS, hours=1)
    journey(jobs.job_run, "unverified_purge", now=later)
    inbox.one("Your request has lapsed", "On 3 March 2026 someone made a request for a copy of the data we hold about this email address.")


def test_an_auto_approved_request_is_told_that_work_started_in_one_email_not_also_that_it_was_received(
        journey, settings, mailoutbox, unique_email):
    settings.DSAR_AUTO_APPROVE = True
    _systems(settings, "probe")
    email = unique_email("journey.auto")
    inbox = Inbox(mailoutbox, email)
    request = journey(services.request_create, type="access", email=email)
    inbox.one("Your verification code")
    journey(services.request_verify, request_id=request.pk, code=code_from(mailoutbox, email))
    assert Request.objects.get(pk=request.pk).status == "processing"
    inbox.one("We have started work on your request",
              "Thank you for confirming your email address. We have started gathering your data from our systems",
              "We will answer it by 2 April 2026 at the latest")


def test_an_export_held_for_a_check_before_release_is_told_once_that_it_is_checked_then_once_that_it_is_ready(
        journey, settings, mailoutbox, unique_email):
    settings.DSAR_REVIEW_BEFORE_RELEASE = True
    _systems(settings, "probe")
    email = unique_email("journey.held")
    probe_plan(email, records=1)
    inbox = Inbox(mailoutbox, email)
    request = journey(services.request_create, type="access", email=email)
    journey(services.request_verify, request_id=request.pk, code=code_from(mailoutbox, email))
    journey(services.request_approve, request_id=request.pk, actor="staff:rita")
    assert [subject for subject, _, _ in inbox.new()] == [COMPANY + "Your verification code", COMPANY + "We have received your request",
                                                         COMPANY + "We have started work on your request"]
    _run_queued_tasks(journey, request.pk)
    inbox.one("We are checking your data before we send it",
              "Before we send it, a member of our privacy team checks that it holds only your data.")
    journey(services.request_release, request_id=request.pk, actor="staff:rita")
    inbox.one("Your request is complete", "The link works until 9 March 2026, 12:00 (UTC time)")


def test_a_request_filed_in_german_is_told_each_step_in_german_and_one_filed_in_english_stays_english(
        journey, settings, mailoutbox, unique_email):
    settings.DSAR_AUTO_APPROVE = True
    _systems(settings, "probe")
    german, english = unique_email("journey.de"), unique_email("journey.en")
    probe_plan(german, records=1)
    inbox, english_inbox = Inbox(mailoutbox, german), Inbox(mailoutbox, english)

    request = journey(services.request_create, type="access", email=german, time_zone="Europe/Berlin", language="de")
    journey(services.request_create, type="access", email=english, time_zone="Europe/Berlin", language="en")
    [(subject, text, html)] = inbox.new()
    assert subject == COMPANY + "Ihr Bestätigungscode"
    code = code_from(mailoutbox, german)
    assert text == (
        "Ihr Bestätigungscode "
        "Um Ihre Datenschutzanfrage zu bestätigen, geben Sie diesen Code auf der Seite ein, auf der Sie die Anfrage gestellt haben: "
        f"{code} "
        "Falls Sie diese Seite geschlossen haben, geben Sie den Code stattdessen hier ein: "
        f"{settings.DSAR_PUBLIC_URL}/requests/{request.pk}/verify "
        "Der Code läuft in 10 Minuten ab. "
        "Geben Sie diesen Code niemals an andere weiter. Unsere Mitarbeitenden werden Sie niemals danach fragen. "
        "-- Diese E-Mail betrifft eine Datenschutzanfrage, die mit dieser E-Mail-Adresse gestellt wurde. Falls Sie diese Anfrage "
        "nicht gestellt haben, können Sie diese E-Mail ignorieren: Ohne den Code geschieht nichts. "
        f"Referenz der Anfrage: {request.pk}")
    assert '<html lang="de">' in next(message for message in mailoutbox if message.to == [german]).alternatives[0][0]
    assert "Falls Sie diese Seite geschlossen haben, geben Sie den Code stattdessen hier ein" in html
    english_inbox.one("Your verification code", "To confirm your privacy request, enter this code on the page where you made the request:",
                      "The code expires in 10 minutes.", "Never share this code with anyone. Our staff will never ask you for it.")

    journey(services.request_verify, request_id=request.pk, code=code)
    inbox.one("Wir haben mit der Bearbeitung Ihrer Anfrage begonnen",
              "Vielen Dank, dass Sie Ihre E-Mail-Adresse bestätigt haben. Wir haben begonnen, Ihre Daten aus unseren Systemen "
              "zusammenzustellen, um sie für Sie in einer Datei zusammenzufassen.",
              "Wir beantworten Ihre Anfrage spätestens bis zum 2. April 2026",
              "Das Gesetz gibt uns dafür einen Monat ab Eingang Ihrer Anfrage. Wenn wir mehr Zeit benötigen, erlaubt uns das Gesetz, "
              "diese Frist um bis zu zwei weitere Monate zu verlängern; in diesem Fall würden wir Ihnen vor dem 2. April 2026 per "
              "E-Mail den Grund und das neue Datum mitteilen.",
              "Wir senden Ihnen einen Download-Link per E-Mail, sobald Ihre Datei bereitsteht.")

    _run_queued_tasks(journey, request.pk)
    assert Request.objects.get(pk=request.pk).status == "completed"
    inbox.one("Ihre Anfrage ist abgeschlossen", "Die Kopie Ihrer Daten liegt bereit. Sie können sie hier herunterladen:",
              "Der Link ist bis zum 9. März 2026, 13:00 (Zeitzone Europe/Berlin) gültig. Bitte laden Sie Ihre Daten vorher herunter.",
              "Die Datei ist ein ZIP-Archiv. Öffnen Sie es und beginnen Sie mit der Datei index.html")

    english_request = Request.objects.get(email=english)
    journey(services.request_verify, request_id=english_request.pk, code=code_from(mailoutbox, english))
    english_inbox.one("We have started work on your request",
                      "Thank you for confirming your email address. We have started gathering your data from our systems",
                      "We will answer it by 2 April 2026 at the latest: the law gives us one month from when we received it.")


def test_a_request_filed_in_german_of_an_account_an_organisation_manages_is_referred_in_german(
        journey, organisation_systems_only, mailoutbox):
    email = "carol@school.example.org"
    inbox = Inbox(mailoutbox, email)
    request = journey(services.request_create, type="deletion", email=email, language="de")
    inbox.one("Ihr Bestätigungscode")
    journey(services.request_verify, request_id=request.pk, code=code_from(mailoutbox, email))
    inbox.one("Ihre Anfrage wird von Ihrer Organisation bearbeitet",
              "Bitte wenden Sie sich an Ihre Organisation",
              "Diese Organisation ist für die Daten im Konto verantwortlich und entscheidet daher, was mit ihnen geschieht.",
              "Wenn Sie Ihre Daten löschen lassen möchten, wenden Sie sich bitte unter",
              "Wir haben Ihre Anfrage nicht bearbeitet und nichts an Ihrem Konto geändert.",
              "Sie haben außerdem das Recht, sich bei einer Datenschutzbehörde (Aufsichtsbehörde) zu beschweren")


def _mailed_by_worker(worker, to: str) -> list[str]:
    """The subjects of the emails the worker sent `to`, in the order it sent them."""
    subjects = []
    for path in sorted(worker.mail_dir.iterdir(), key=lambda path: path.stat().st_mtime_ns):
        for chunk in path.read_text().split("-" * 79):  # the file backend's separator
            message = message_from_string(chunk.strip(), policy=policy.default)
            if message["To"] == to:
                subjects.append((message["Subject"], _words(message.get_body(("plain",)).get_content())))
    return subjects


@pytest.mark.django_db(transaction=True)
def test_an_auto_approved_request_gathered_by_the_worker_is_told_once_that_work_started_and_once_that_it_is_done(
        api, worker, settings, mailoutbox, unique_email):
    settings.DSAR_AUTO_APPROVE = True
    email = unique_email("journey.worker")
    created = api.post("/api/v1/requests", {"type": "access", "email": email, "time_zone": "Europe/Berlin"}, format="json")
    request_id = created.json()["id"]
    verified = api.post(f"/api/v1/requests/{request_id}/verify", {"code": code_from(mailoutbox, email)}, format="json")
    assert verified.status_code == 200, verified.content
    assert [message.subject for message in mailoutbox if message.to == [email]] == [
        COMPANY + "Your verification code", COMPANY + "We have started work on your request"]
    assert wait_until_final(request_id).status == "completed"
    [(subject, text)] = wait_for(lambda: _mailed_by_worker(worker, email), timeout=30, what="the worker to email the person")
    assert subject == COMPANY + "Your request is complete"
    assert "The copy of your data is ready." in text and "(Europe/Berlin time)" in text
