"""Refusals done properly (GDPR Art. 12(4), 12(5); CCPA §1798.145(h)(3)): refusing part of a request at
approval, and refusing a whole one as manifestly unfounded or excessive. From the person's side (the
emails, the archive's report, the deletion receipt and its page) and the staff's (the API and the
console), with the real worker where a request runs to its end."""

from __future__ import annotations

import datetime as dt
import json
import re
from email import message_from_bytes, policy

import pytest
import sqlalchemy as sa
from django.test import Client
from django.urls import reverse
from django.utils import translation

from connectors.registry import connectors_reset
from connectors.systems import System
from dsar import jobs, services
from dsar.errors import InvalidInput
from dsar.exports import child_withheld_reason, refusals_in_words
from dsar.models import AuditEntry, ConnectorTask, OutgoingEmail, Request
from dsar.staff import ROLE_REVIEWER
from estate.loader import estate_load, estate_parse
from estate.stores import estate_database_url

from ..factories import request_make
from ..support.flows import download, file_request, release_as_it_is, subject_view, wait_until_final
from ..support.waiting import wait_for
from .test_console_views import _messages, _signed_in

GDPR_COMPLAINT = ("You also have the right to complain to a data protection authority (a supervisory authority), in particular "
                  "the one in the country where you live or work, or where you think the law was broken, and the right to take "
                  "the matter to court.")
SEARCHES_REASON = "Your search history is shared with the other members of your family account."
PAYMENTS_REASON = "Your payment records are held for an open fraud investigation."
PICTURES_REASON = "The photos show other people, who have not agreed to their deletion."


def _words(text: str) -> str:
    """Text with its tags gone and its white space as single spaces, as a reader takes it in."""
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


def _approve(staff, request_id, refuse: list[dict]):
    body = {"note": "identity checked", "refuse": refuse}
    return staff.post(f"/api/v1/staff/requests/{request_id}/approve", body, format="json")


def _unchanged(request: Request) -> None:
    """The request as filed: under review, nothing refused, no task, no approval, no email."""
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.refusals, stored.categories) == ("pending_review", [], request.categories)
    assert not ConnectorTask.objects.filter(request=request).exists()
    assert not AuditEntry.objects.filter(request=request, action="approved").exists()
    assert not OutgoingEmail.objects.filter(request=request).exists()


def _mailed_by_worker(worker, to: str, subject: str) -> str:
    """The plain text of the email the worker sent `to` about `subject`, once it has sent it."""
    def sent() -> str | None:
        for path in worker.mail_dir.iterdir():
            for chunk in path.read_bytes().split(b"-" * 79):  # the file backend's separator; bytes, as a mail client reads them
                message = message_from_bytes(chunk.strip(), policy=policy.default)
                if message["To"] == to and message["Subject"] == subject:
                    return message.get_body(("plain",)).get_content()
        return None

    return wait_for(sent, timeout=30, what=f"the worker to email {to} {subject!r}")


# --- Refusing part of a request at approval: the staff's side ------------------------------------------------


@pytest.mark.django_db
def test_an_approval_with_refusals_keeps_them_audits_them_and_gives_a_refused_system_no_task(reviewer):
    request = request_make(status="pending_review", email="partly@example.com")
    Request.objects.filter(pk=request.pk).update(categories=["name_contact", "payment", "searches_commands"])
    answer = _approve(reviewer, request.pk, [{"category": "searches_commands", "reason": f"  {SEARCHES_REASON} "},
                                             {"system": "payments", "reason": PAYMENTS_REASON}])
    assert answer.status_code == 200, answer.content
    detail = answer.json()
    refusals = [{"category": "searches_commands", "reason": SEARCHES_REASON}, {"system": "payments", "reason": PAYMENTS_REASON}]
    assert (detail["status"], detail["refusals"], detail["categories"]) == ("processing", refusals, ["name_contact", "payment"])
    assert [task["connector"] for task in detail["tasks"]] == ["accounts", "content", "probe", "support", "third_party"]
    approved = detail["audit"][-1]
    assert (approved["action"], approved["actor"], approved["note"], approved["data"]) == (
        "approved", "staff:rita", "identity checked", {"refusals": refusals})
    assert reviewer.get(f"/api/v1/staff/requests/{request.pk}").json()["refusals"] == refusals


@pytest.mark.django_db
@pytest.mark.parametrize(("refuse", "code", "detail"), [
    ([{"category": "dna_sequences", "reason": "No."}], "invalid_category", "Unknown category: dna_sequences."),
    ([{"category": "location", "reason": "No."}], "category_not_requested",
     "This request does not ask for location, so it cannot be refused."),
    ([{"system": "mainframe", "reason": "No."}], "invalid_system", "No system is named mainframe."),
    ([{"category": "payment", "reason": "No."}, {"category": "payment", "reason": "Again."}], "duplicate_refusal",
     "payment is refused twice."),
    ([{"category": "name_contact", "reason": "No."}, {"category": "payment", "reason": "No."}], "deny_instead",
     "That refuses the whole request: deny it instead, with the reason."),
    ([{"system": name, "reason": "No."} for name in ("accounts", "content", "payments", "probe", "support", "third_party")],
     "deny_instead", "That refuses the whole request: deny it instead, with the reason."),
    ([{"category": "payment", "reason": " \n "}], "invalid", {"refuse": {"0": {"reason": ["This field may not be blank."]}}}),
    ([{"category": "payment", "system": "payments", "reason": "No."}], "invalid",
     {"refuse": {"0": {"system": ["Unknown field."]}}}),
    ([{"reason": "No."}], "invalid", {"refuse": {"0": {"system": ["This field is required."]}}}),
])
def test_a_refusal_that_cannot_be_made_is_a_400_with_its_code_and_changes_nothing(reviewer, refuse, code, detail):
    request = request_make(status="pending_review", email="refused.badly@example.com")
    Request.objects.filter(pk=request.pk).update(categories=["name_contact", "payment"])
    request.refresh_from_db()
    answer = _approve(reviewer, request.pk, refuse)
    assert (answer.status_code, answer.json()) == (400, {"error": code, "detail": detail})
    _unchanged(request)


@pytest.mark.django_db
@pytest.mark.parametrize("refusal", [{"category": "payment", "system": "payments", "reason": "No."}, {"reason": "No."}])
def test_the_service_too_refuses_a_refusal_naming_both_a_category_and_a_system_or_neither(refusal):
    request = request_make(status="pending_review", email="shapeless@example.com")
    with pytest.raises(InvalidInput) as refused:
        services.request_approve(request_id=request.pk, actor="staff:rita", refuse=[refusal])
    assert (refused.value.code, refused.value.detail) == ("invalid", "Name either a category or a system to refuse.")
    _unchanged(request)


@pytest.fixture
def staged_systems(settings):
    """crm finds customer numbers by email, billing finds invoices by them; shop by email alone."""
    settings.DSAR_SYSTEMS = {
        "crm": System("crm", "tests.support.listed.ListedConnector", provides=frozenset({"customer_number"})),
        "billing": System("billing", "tests.support.listed.ListedConnector", needs=frozenset({"customer_number"})),
        "shop": System("shop", "tests.support.listed.ListedConnector"),
    }
    connectors_reset()
    yield
    connectors_reset()


@pytest.mark.django_db
def test_a_system_that_finds_what_another_is_found_by_is_refused_only_with_it(staged_systems):
    request = request_make(status="pending_review", email="staged@example.com")
    with pytest.raises(InvalidInput) as refused:
        services.request_approve(request_id=request.pk, actor="staff:rita", refuse=[{"system": "crm", "reason": "Archived."}])
    assert (refused.value.code, refused.value.detail) == (
        "system_needed", "billing is found by what crm finds: refuse billing too, or answer crm.")
    _unchanged(request)

    services.request_approve(request_id=request.pk, actor="staff:rita",
                             refuse=[{"system": "crm", "reason": "Archived."}, {"system": "billing", "reason": "Archived."}])
    assert list(ConnectorTask.objects.filter(request=request).values_list("connector", "status")) == [("shop", "queued")]


# --- Refusing part of a request: what the person is told and given ----------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker")
def test_an_access_request_refused_in_part_is_emailed_at_approval_and_its_archive_leaves_out_and_explains_the_refused_parts(
        api, reviewer, mailoutbox):
    request_id, token = file_request(api, mailoutbox, type="access", email="alice@example.com")
    answer = _approve(reviewer, request_id, [{"category": "searches_commands", "reason": SEARCHES_REASON},
                                             {"system": "payments", "reason": PAYMENTS_REASON}])
    assert answer.status_code == 200, answer.content

    email = mailoutbox[-1]
    assert (email.to, email.subject) == (["alice@example.com"], "Example Company: We will not answer all of your request")
    assert (f"- Searches and commands\n  Why: {SEARCHES_REASON}\n- The data our payments system holds\n  Why: {PAYMENTS_REASON}\n"
            in email.body)
    html = _words(email.alternatives[0][0])
    assert f"Searches and commands Why: {SEARCHES_REASON} The data our payments system holds Why: {PAYMENTS_REASON}" in html
    for text in (email.body, html):
        assert GDPR_COMPLAINT in " ".join(text.split())
        assert "searches_commands" not in text

    assert wait_until_final(request_id).status == "completed"
    release_as_it_is(reviewer, request_id)  # Alice's contacts, shared ticket, CCTV and voice wait for review
    archive = download(api, subject_view(api, request_id, token)["download_url"])
    manifest = json.loads(archive.read("manifest.json"))
    assert "searches_commands" not in manifest["categories"]
    assert "data/searches_commands.json" not in archive.namelist()
    payment = manifest["categories"]["payment"]  # beside what Art. 15 adds to every category
    assert {key: payment[key] for key in ("label", "records", "connectors", "sources")} == {
        "label": "Payment details", "records": 0, "connectors": [], "sources": []}
    assert manifest["categories"]["name_contact"]["connectors"] == ["accounts"]  # the rest was gathered
    report = _words(archive.read("index.html").decode())
    assert ("What we did not include, and why Our privacy team refused part of your request. These are the parts this archive "
            f"does not hold, each with the reason they gave: Searches and commands : {SEARCHES_REASON} "
            f"The data our payments system holds : {PAYMENTS_REASON}") in report


def test_a_request_filed_in_german_is_told_in_german_what_was_refused_and_why(db, mailoutbox, django_capture_on_commit_callbacks):
    request = request_make(status="pending_review", type="deletion", email="teilweise@example.com")
    Request.objects.filter(pk=request.pk).update(language="de")
    with django_capture_on_commit_callbacks(execute=True):
        services.request_approve(request_id=request.pk, actor="staff:rita", refuse=[{"system": "payments", "reason": PAYMENTS_REASON}])
    [email] = mailoutbox
    assert email.subject == "Example Company: Wir werden Ihre Anfrage nicht vollständig beantworten"
    assert ("Wir haben Ihre Anfrage auf Löschung Ihrer Daten angenommen und bearbeiten sie, haben jedoch einen Teil davon abgelehnt. "
            "Diese Teile löschen wir nicht, jeweils mit der Begründung unseres Datenschutzteams:\n\n"
            f"- Die Daten in unserem System „payments“\n  Grund: {PAYMENTS_REASON}\n") in email.body
    html = _words(email.alternatives[0][0])
    assert f"Die Daten in unserem System „payments“ Grund: {PAYMENTS_REASON}" in html
    for text in (email.body, html):
        assert "Wir benachrichtigen Sie erneut per E-Mail, wenn der übrige Teil erledigt ist." in " ".join(text.split())
        assert "Sie haben außerdem das Recht, sich bei einer Datenschutzbehörde (Aufsichtsbehörde) zu beschweren" in " ".join(text.split())


def test_a_refused_system_and_a_childs_withheld_data_are_named_in_the_language_they_are_read_in(settings):
    settings.DEFAULT_FROM_EMAIL = "privacy@example.com"
    refused = [{"system": "payments", "reason": PAYMENTS_REASON}]
    assert refusals_in_words(refused) == [{"part": "The data our payments system holds", "reason": PAYMENTS_REASON}]
    with translation.override("de"):
        assert refusals_in_words(refused) == [{"part": "Die Daten in unserem System „payments“", "reason": PAYMENTS_REASON}]
        assert child_withheld_reason(under=13) == (
            "Wir haben diese Daten zum Schutz eines Kindes zurückgehalten: Nach unseren Unterlagen sind Sie möglicherweise jünger als "
            "13 Jahre, und Daten, die zeigen können, wo sich ein Kind aufhält oder wie es aussieht oder klingt, geben wir nur an Eltern "
            "oder andere Erziehungsberechtigte heraus, deren Berechtigung wir geprüft haben. Ihre Eltern oder eine andere "
            "erziehungsberechtigte Person können die Daten erhalten, indem sie von ihrer eigenen E-Mail-Adresse an "
            "privacy@example.com schreiben und dabei die Referenz dieser Anfrage angeben: Wir prüfen dann, ob sie für Sie "
            "erziehungsberechtigt sind, und senden ihnen die Daten.")
    assert child_withheld_reason(under=13).startswith("We withheld this data to protect a child: our records show you may be under 13,")


def _deletion_subject(email: str) -> None:
    estate_load(estate_parse({"subjects": [{
        "email": email,
        "accounts": {"name": "Petra Refused", "searches": ["tide times", "ferry to skye"]},
        "payments": {"cards": [{"number": "4111111111111111", "cvc": "321", "exp": "01/30"}]},
        "content": {"files": [{"path": "Docs/letter.txt", "base64": "aGVsbG8=", "category": "content"},
                              {"path": "Photos/beach.jpg", "base64": "anBlZw==", "category": "images"}]},
    }]}))


def _cards_of(email: str) -> int:
    engine = sa.create_engine(estate_database_url("payments"))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM cards JOIN customers ON customers.id = cards.customer_id "
                                        "WHERE customers.email = :e"), {"e": email}).scalar()
    finally:
        engine.dispose()


@pytest.mark.django_db(transaction=True)
def test_a_deletion_refused_in_part_keeps_the_refused_data_and_its_receipt_says_what_and_why_in_words(
        api, reviewer, mailoutbox, worker, unique_email):
    email = unique_email("petra")
    _deletion_subject(email)
    request_id, token = file_request(api, mailoutbox, type="deletion", email=email)
    assert _approve(reviewer, request_id, [{"category": "images", "reason": PICTURES_REASON},
                                           {"system": "payments", "reason": PAYMENTS_REASON}]).status_code == 200
    assert wait_until_final(request_id).status == "completed"

    result = subject_view(api, request_id, token)["result"]
    # The account's row holds its name, its password and its basic facts: one of each; no picture, no payment.
    assert result["erased"] == {"name_contact": 1, "credentials": 1, "demographic": 1, "searches_commands": 2, "content": 1}
    assert result["refused"] == [{"category": "images", "reason": PICTURES_REASON},
                                 {"system": "payments", "reason": PAYMENTS_REASON}]
    assert _cards_of(email) == 1

    receipt = _mailed_by_worker(worker, email, "Example Company: Your request is complete")
    assert "We have erased your data, as you asked, but for the parts we refused (below)." in receipt
    assert ("We did not delete everything you asked us to: our privacy team refused these parts of your request, for these "
            f"reasons:\n\n- Pictures\n  Why: {PICTURES_REASON}\n- The data our payments system holds\n  Why: {PAYMENTS_REASON}\n"
            in receipt)
    assert GDPR_COMPLAINT in " ".join(receipt.split())

    status_link = re.search(r"http://testserver(/requests/\S+)", receipt).group(1)
    page = _words(Client().get(status_link, follow=True).content.decode())
    assert ("What we did not delete, and why Our privacy team refused these parts of your request: "
            f"Pictures Why {PICTURES_REASON} The data our payments system holds Why {PAYMENTS_REASON}") in page


@pytest.mark.django_db(transaction=True)
def test_the_check_a_day_after_a_deletion_leaves_out_what_staff_refused_to_erase(api, reviewer, mailoutbox, worker, unique_email):
    email = unique_email("checked")
    _deletion_subject(email)
    request_id, _ = file_request(api, mailoutbox, type="deletion", email=email)
    assert _approve(reviewer, request_id, [{"category": "images", "reason": PICTURES_REASON},
                                           {"system": "payments", "reason": PAYMENTS_REASON}]).status_code == 200
    completed = wait_until_final(request_id)
    jobs.job_run("erasure_verification", now=completed.completed_at + dt.timedelta(days=2))
    check = Request.objects.get(pk=request_id).erasure_check
    assert (check["ok"], check["found"]) == (True, {})


# --- Refusing a whole request as manifestly unfounded or excessive -------------------------------------------------

GROUNDS = [
    ("manifestly_unfounded", "We refused it as manifestly unfounded: we consider that it clearly has no genuine basis, for "
                             "example because it was made only to cause disruption. The law lets us refuse such a request, and "
                             "it is for us to show why."),
    ("excessive", "We refused it as excessive, in particular because of its repetitive character: we consider that it goes "
                  "clearly beyond what is reasonable, for example because it repeats a request we answered recently and nothing "
                  "has changed since. The law lets us refuse such a request, and it is for us to show why."),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("ground", "words"), GROUNDS)
def test_a_denial_on_the_laws_ground_tells_the_person_the_ground_the_reason_and_where_to_complain(
        api, reviewer, mailoutbox, unique_email, ground, words):
    email = unique_email("grounded")
    request_id, _ = file_request(api, mailoutbox, type="access", email=email)
    reason = "This is your ninth request for the same data this month; we answered the last one on 3 March."
    answer = reviewer.post(f"/api/v1/staff/requests/{request_id}/deny", {"reason": reason, "ground": ground}, format="json")
    assert answer.status_code == 200, answer.content
    assert (answer.json()["status"], answer.json()["denial_ground"]) == ("denied", ground)
    denied = answer.json()["audit"][-1]
    assert (denied["action"], denied["note"], denied["data"]) == ("denied", reason, {"ground": ground})

    sent = mailoutbox[-1]
    assert (sent.to, sent.subject) == ([email], "Example Company: About your request")
    for text in (sent.body, _words(sent.alternatives[0][0])):
        said = " ".join(text.split())
        assert f"We have looked at your request for a copy of your data and we have declined it. {words}" in said
        assert reason in said and GDPR_COMPLAINT in said


@pytest.mark.django_db
def test_a_denial_without_a_ground_is_an_ordinary_refusal_recorded_and_emailed_with_none(reviewer, mailoutbox,
                                                                                          django_capture_on_commit_callbacks):
    request = request_make(status="pending_review", email="ordinary@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        answer = reviewer.post(f"/api/v1/staff/requests/{request.pk}/deny", {"reason": "We could not match the account."},
                               format="json")
    assert (answer.status_code, answer.json()["denial_ground"], answer.json()["audit"][-1]["data"]) == (200, "", {})
    [sent] = mailoutbox
    assert "manifestly unfounded" not in sent.body and "excessive" not in sent.body


@pytest.mark.django_db
def test_an_unknown_ground_is_a_400_naming_the_field_and_changes_nothing(reviewer):
    request = request_make(status="pending_review", email="frivolous@example.com")
    answer = reviewer.post(f"/api/v1/staff/requests/{request.pk}/deny", {"reason": "Too many.", "ground": "frivolous"},
                           format="json")
    assert (answer.status_code, answer.json()) == (
        400, {"error": "invalid", "detail": {"ground": ['"frivolous" is not a valid choice.']}})
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.denial_ground) == ("pending_review", "")
    assert not OutgoingEmail.objects.filter(request=request).exists()
    with pytest.raises(InvalidInput) as refused:
        services.request_deny(request_id=request.pk, actor="staff:rita", reason="Too many.", ground="frivolous")
    assert (refused.value.code, refused.value.detail) == (
        "invalid_ground", "ground must be one of manifestly_unfounded, excessive.")


# --- The console --------------------------------------------------------------------------------------------------


@pytest.fixture
def console():
    return _signed_in("rita", ROLE_REVIEWER, "/console/")


def _pending_for(*categories: str) -> Request:
    request = request_make(status="pending_review", email="console.refusal@example.com")
    Request.objects.filter(pk=request.pk).update(categories=list(categories))
    request.refresh_from_db()
    return request


@pytest.mark.django_db
def test_the_console_approves_with_the_parts_ticked_each_with_its_reason_and_the_request_page_shows_them(console):
    request = _pending_for("name_contact", "payment")
    page = console.get(reverse("console:request", args=[request.pk])).content.decode()
    assert '<label for="approve_refuse_category_payment">Refuse Payment details:</label>' in page
    assert '<label for="approve_reason_system_payments">Why payments is refused:</label>' in page
    response = console.post(reverse("console:request-approve", args=[request.pk]), {
        "note": "identity checked", "refuse_category_payment": "on", "reason_category_payment": PAYMENTS_REASON,
        "refuse_system_probe": "on", "reason_system_probe": "A test system."}, follow=True)
    assert _messages(response) == ["Approved. The connectors are gathering the data now."]
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.categories, stored.refusals) == ("processing", ["name_contact"], [
        {"category": "payment", "reason": PAYMENTS_REASON}, {"system": "probe", "reason": "A test system."}])
    shown = _words(response.content.decode())
    assert f"Refused at approval Category payment : {PAYMENTS_REASON} System probe : A test system." in shown


@pytest.mark.django_db
def test_the_console_shows_a_form_error_for_a_part_ticked_without_a_reason_or_a_reason_not_ticked_and_changes_nothing(console):
    request = _pending_for("name_contact", "payment")
    response = console.post(reverse("console:request-approve", args=[request.pk]), {
        "refuse_category_payment": "on", "reason_category_payment": "   ", "reason_system_payments": "Under investigation."})
    assert response.status_code == 200
    errors = response.context["actions"]["approve"].errors
    assert errors == {"reason_category_payment": ["Enter the reason for refusing Payment details: the person is emailed it."],
                      "refuse_system_payments": ["Tick payments to refuse it, or clear its reason."]}
    assert response.content.decode().count('aria-invalid="true"') == 2
    _unchanged(request)


@pytest.mark.django_db
def test_the_console_refusing_every_category_says_to_deny_instead_and_changes_nothing(console):
    request = _pending_for("payment")
    response = console.post(reverse("console:request-approve", args=[request.pk]), {
        "refuse_category_payment": "on", "reason_category_payment": PAYMENTS_REASON}, follow=True)
    assert _messages(response) == ["That refuses the whole request: deny it instead, with the reason."]
    _unchanged(request)


@pytest.mark.django_db
def test_the_console_denies_on_the_laws_ground_and_the_request_page_shows_it(console):
    request = _pending_for("payment")
    page = console.get(reverse("console:request", args=[request.pk])).content.decode()
    assert '<option value="excessive">Excessive, for instance repetitive</option>' in page
    response = console.post(reverse("console:request-deny", args=[request.pk]),
                            {"reason": "The same request for the fifth time this week.", "ground": "excessive"}, follow=True)
    assert _messages(response) == ["Denied. The person has been emailed the reason."]
    assert Request.objects.get(pk=request.pk).denial_ground == "excessive"
    assert "Denied as Excessive, for instance repetitive" in _words(response.content.decode())
