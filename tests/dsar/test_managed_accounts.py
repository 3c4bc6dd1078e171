"""Organisation-managed accounts (GDPR Art. 28): for a work or school account, the company holds the data of some
systems only on behalf of the organisation that manages the account. At verification those systems are referred to
it, with its contact, and the rest of the request is answered as any other; a request that no system of the
company's own could answer is referred whole. From the person's side (the emails, the request's page, the archive's
report, the deletion receipt) and the staff's (the API, the console), with the real worker where a request runs to
its end."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

import pytest
import sqlalchemy as sa
from django.test import Client
from django.urls import reverse

from connectors.registry import connectors_reset
from dsar import jobs, services, verification
from dsar.models import AuditEntry, ConnectorTask, Request
from dsar.staff import ROLE_REVIEWER
from estate.loader import estate_load, estate_parse
from estate.stores import estate_database_url

from ..factories import request_make
from ..support.flows import approve, download, file_request, subject_view, wait_until_final
from .test_console_views import _signed_in
from .test_refusals import _mailed_by_worker, _words

pytestmark = pytest.mark.django_db(transaction=True)

ORGANISATION = "Northside School District"
CONTACT = "privacy@northside-schools.example.org"
# A kind of data each of the organisation's systems holds, and two that the company's own hold too.
ASKED = ["name_contact", "demographic", "interactions.account_history", "interactions.support", "content"]
REFERRED = [{"system": "accounts", "categories": ["name_contact", "demographic", "interactions.account_history"]},
            {"system": "content", "categories": ["content"]},
            {"system": "support", "categories": ["interactions.support"]}]
THEIRS = ("Northside School District manages your account, so part of the data we hold about you is theirs: we keep it only "
          "on their behalf, and they decide what happens to it. That part is for them to answer, not us:")
PARTS_TEXT = ("- Our accounts system: Name and contact details, Basic facts about you, Purchases and account activity\n"
              "- Our content system: Your files and messages\n"
              "- Our support system: Help and support requests\n")
PARTS_WORDS = ("Our accounts system : Name and contact details, Basic facts about you, Purchases and account activity "
               "Our content system : Your files and messages Our support system : Help and support requests")


def _managed(email: str, **accounts) -> str:
    """The demo's school-managed subject (a school account, a personal purchase, a data broker's record) under `email`,
    with `accounts` changed."""
    with open("estate/demo.json") as demo:
        carol = next(subject for subject in json.load(demo)["subjects"] if subject["email"] == "carol@school.example.org")
    carol["email"] = email
    carol["accounts"] = {key: value for key, value in {**carol["accounts"], **accounts}.items() if value is not None}
    estate_load(estate_parse({"subjects": [carol]}))
    return email


def _page(link_text: str) -> str:
    """The words of the request's page the email links to."""
    return _words(Client().get(re.search(r"https?://[^/\s]+(/requests/\S+)", link_text).group(1), follow=True).content.decode())


def _users_named(email: str) -> list[str]:
    engine = sa.create_engine(estate_database_url("accounts"))
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT name FROM users WHERE email = :e"), {"e": email}).scalars())
    finally:
        engine.dispose()


# --- Part referred: the rest answered, end to end ----------------------------------------------------------------------


def test_an_access_request_of_a_managed_account_leaves_the_organisations_systems_to_it_and_exports_the_rest(
        api, reviewer, mailoutbox, worker, unique_email):
    email = _managed(unique_email("carol"))
    request_id, token = file_request(api, mailoutbox, type="access", email=email, categories=ASKED)

    received = mailoutbox[-1]
    assert (received.to, received.subject) == ([email], "Example Company: We have received your request")
    assert (f"{THEIRS}\n\n{PARTS_TEXT}\nTo get a copy of that part, please contact Northside School District at "
            "privacy@northside-schools.example.org.\n\nWe are handling the rest of your request ourselves.\n\n"
            "We will answer the rest by") in received.body
    assert (f"{THEIRS} {PARTS_WORDS} To get a copy of that part, please contact Northside School District at "
            "privacy@northside-schools.example.org . We are handling the rest of your request ourselves."
            ) in _words(received.alternatives[0][0])

    detail = reviewer.get(f"/api/v1/staff/requests/{request_id}").json()
    referral = {key: detail[key] for key in ("status", "referred_to", "referred_contact", "referred_systems", "refusals")}
    assert referral == {"status": "pending_review", "referred_to": ORGANISATION, "referred_contact": CONTACT,
                        "referred_systems": REFERRED, "refusals": []}
    verified = detail["audit"][-1]
    assert (verified["action"], verified["actor"], verified["data"]) == (
        "verified", "subject", {"referred_to": ORGANISATION, "systems": ["accounts", "content", "support"]})

    approve(reviewer, request_id)
    tasks = reviewer.get(f"/api/v1/staff/requests/{request_id}").json()["tasks"]
    assert [task["connector"] for task in tasks] == ["payments", "probe", "third_party"]
    assert wait_until_final(request_id).status == "completed"

    archive = download(api, subject_view(api, request_id, token)["download_url"])
    manifest = json.loads(archive.read("manifest.json"))
    assert {category: (entry["records"], entry["connectors"]) for category, entry in manifest["categories"].items()} == {
        "name_contact": (0, []), "demographic": (1, ["third_party"]), "interactions.account_history": (1, ["payments"]),
        "interactions.support": (0, []), "content": (0, [])}
    assert json.loads(archive.read("data/interactions.account_history.json"))[0]["fields"]["item"] == "Photo book, personal order"
    report = _words(archive.read("index.html").decode())
    assert (f"What your organisation answers {THEIRS[:-1]}, so this archive does not hold it: {PARTS_WORDS} To get a copy of "
            "that part, please contact Northside School District at privacy@northside-schools.example.org . This archive holds "
            "the rest: the data we control ourselves.") in report
    assert "What we did not include, and why" not in report  # a referral is no refusal

    completed = _mailed_by_worker(worker, email, "Example Company: Your request is complete")
    assert f"{THEIRS}\n\n{PARTS_TEXT}\nTo get a copy of that part" in completed
    assert (f"What your organisation answers {THEIRS} {PARTS_WORDS} To get a copy of that part, please contact Northside School "
            "District at privacy@northside-schools.example.org . We answered the rest of your request ourselves."
            ) in _page(completed)


def test_a_deletion_of_a_managed_account_erases_the_companys_own_data_and_leaves_the_organisations_to_it(
        api, reviewer, mailoutbox, worker, unique_email):
    email = _managed(unique_email("carol"))
    request_id, token = file_request(api, mailoutbox, type="deletion", email=email, categories=ASKED)

    console = _signed_in("rita", ROLE_REVIEWER, "/console/")
    page = console.get(reverse("console:request", args=[request_id])).content.decode()
    shown = _words(page)
    assert ("Referred to Northside School District (manages this person's account), reached at "
            "privacy@northside-schools.example.org") in shown
    assert ("Referred to the organisation Its data, not refused: these systems get no task, and the person was told to ask "
            "Northside School District for it. System accounts : name_contact, demographic, interactions.account_history "
            "System content : content System support : interactions.support") in shown
    assert 'name="refuse_system_payments"' in page and 'name="refuse_system_accounts"' not in page  # not the company's to refuse

    approve(reviewer, request_id)
    completed = wait_until_final(request_id)
    assert completed.status == "completed"
    assert subject_view(api, request_id, token)["result"] == {
        "erased": {"demographic": 1},
        "retained": [{"category": "interactions.account_history", "count": 1, "until": "2036-08-14", "connector": "payments",
                      "reason": "Invoices are kept for 10 years because tax law requires it (legal_obligation)"}],
        "notify_sources": ["Northwind Insights"],
        "recipients_notified": ["Nimbus Hosting GmbH"],  # the broker's system hosts the basic facts with it
        "referred": {"referred_to": ORGANISATION, "contact": CONTACT, "systems": REFERRED},
    }
    assert _users_named(email) == ["Carol Reyes"]  # the school's account, untouched

    receipt = _mailed_by_worker(worker, email, "Example Company: Your request is complete")
    assert (f"{THEIRS}\n\n{PARTS_TEXT}\nTo have deleted that part, please contact Northside School District at "
            "privacy@northside-schools.example.org.\n") in receipt
    assert (f"What your organisation answers {THEIRS} {PARTS_WORDS} To have deleted that part, please contact Northside School "
            "District at privacy@northside-schools.example.org . We answered the rest of your request ourselves."
            ) in _page(receipt)

    # The check a day later asks only the systems that answered: the school's data is still there, as it should be.
    jobs.job_run("erasure_verification", now=completed.completed_at + dt.timedelta(days=2))
    check = Request.objects.get(pk=request_id).erasure_check
    assert (check["ok"], check["found"]) == (True, {})


# --- Referred whole --------------------------------------------------------------------------------------------------


def test_a_request_no_system_of_the_companys_own_could_answer_is_referred_whole_and_its_email_gives_the_contact(
        api, mailoutbox, unique_email, request):
    email = _managed(unique_email("carol"))
    request.getfixturevalue("organisation_systems_only")  # once loaded: the loader writes through every demo system
    request_id, token = file_request(api, mailoutbox, type="deletion", email=email,
                                     categories=["name_contact", "searches_commands"])
    view = subject_view(api, request_id, token)
    assert (view["status"], view["result"]) == ("referred", {
        "referred_to": ORGANISATION, "contact": CONTACT,
        "systems": [{"system": "accounts", "categories": ["name_contact", "searches_commands"]}]})
    assert not ConnectorTask.objects.filter(request_id=request_id).exists()
    [referred] = [entry for entry in AuditEntry.objects.filter(request_id=request_id) if entry.action == "referred"]
    assert (referred.note, referred.data) == (
        "managed by Northside School District", {"referred_to": ORGANISATION, "systems": ["accounts"]})

    sent = mailoutbox[-1]
    assert (sent.to, sent.subject) == ([email], "Example Company: Your request is handled by your organisation")
    assert "To have your data deleted, please contact Northside School District at privacy@northside-schools.example.org." in sent.body
    shown = "To have your data deleted, please contact Northside School District at privacy@northside-schools.example.org ."
    assert shown in _words(sent.alternatives[0][0]) and shown in _page(sent.body)


def test_an_organisation_with_no_contact_on_file_is_named_and_the_person_sent_to_their_accounts_administrator(
        api, mailoutbox, unique_email, request):
    email = _managed(unique_email("carol"), organization_contact=None)
    request.getfixturevalue("organisation_systems_only")
    request_id, token = file_request(api, mailoutbox, type="access", email=email, categories=["name_contact"])
    assert subject_view(api, request_id, token)["result"] == {
        "referred_to": ORGANISATION, "contact": None, "systems": [{"system": "accounts", "categories": ["name_contact"]}]}
    assert ("To get a copy of your data, please contact the administrator of your account at Northside School District."
            in mailoutbox[-1].body)


# --- Which systems are referred: those of the organisation that could hold what the request asks ---------------------


@pytest.fixture
def managed(estate, unique_email) -> str:
    """The address of a copy of the demo's school-managed subject, loaded while every demo system is served."""
    return _managed(unique_email("carol"))


@pytest.fixture
def accounts_and_probe(managed, settings):
    """The deployment's systems: the demo's accounts system, the organisation's for an account it manages, and the probe,
    the company's own, which holds feedback alone."""
    settings.DSAR_SYSTEMS = {name: settings.DSAR_SYSTEMS[name] for name in ("accounts", "probe")}
    connectors_reset()
    yield settings
    connectors_reset()


def _verified(email: str, categories: list[str]) -> Request:
    request = services.request_create(type="access", email=email, categories=categories)
    services.request_verify(request_id=request.pk, code=verification.code_for(request))
    return Request.objects.get(pk=request.pk)


@pytest.mark.parametrize(("categories", "status", "referred"), [
    (["name_contact", "location"], "referred", [{"system": "accounts", "categories": ["name_contact", "location"]}]),
    (["name_contact", "feedback_ratings"], "pending_review", [{"system": "accounts", "categories": ["name_contact"]}]),
    (["feedback_ratings"], "pending_review", []),
])
def test_the_organisations_systems_that_could_hold_what_is_asked_are_referred_and_the_whole_when_no_other_could(
        accounts_and_probe, managed, mailoutbox, categories, status, referred):
    stored = _verified(managed, categories)
    assert (stored.status, stored.referred_to, stored.referred_systems) == (status, ORGANISATION if referred else "", referred)
    told = "Example Company: " + ("Your request is handled by your organisation" if status == "referred" else "We have received your request")
    assert [sent.subject for sent in mailoutbox] == ["Example Company: Your verification code", told]


def test_a_managed_account_whose_systems_the_company_controls_is_answered_whole(accounts_and_probe, managed):
    settings = accounts_and_probe
    settings.DSAR_SYSTEMS = {**settings.DSAR_SYSTEMS, "accounts": dataclasses.replace(settings.DSAR_SYSTEMS["accounts"],
                                                                                        organization_controls=False)}
    connectors_reset()
    stored = _verified(managed, ["name_contact"])
    assert (stored.status, stored.referred_to, stored.referred_contact, stored.referred_systems) == ("pending_review", "", "", [])


def test_a_person_whose_account_no_organisation_manages_has_nothing_referred(accounts_and_probe):
    stored = _verified("bob@example.com", ["name_contact"])
    assert (stored.status, stored.referred_to, stored.referred_systems) == ("pending_review", "", [])


# --- Refusing what was referred ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("refuse", "code", "detail"), [
    ([{"system": "accounts", "reason": "Archived."}], "system_referred",
     "accounts holds data the organisation managing the account controls: it was referred to Northside School District at "
     "verification, and is not answered here."),
    ([{"system": name, "reason": "Archived."} for name in ("payments", "probe", "third_party")], "deny_instead",
     "That refuses the whole request: deny it instead, with the reason."),
])
def test_a_referred_system_cannot_be_refused_nor_counted_as_answering_and_nothing_changes(
        reviewer, mailoutbox, refuse, code, detail):
    request = request_make(status="pending_review", email="referred.part@example.com")
    Request.objects.filter(pk=request.pk).update(referred_to=ORGANISATION, referred_contact=CONTACT, referred_systems=REFERRED)
    answer = reviewer.post(f"/api/v1/staff/requests/{request.pk}/approve", {"refuse": refuse}, format="json")
    assert (answer.status_code, answer.json()) == (400, {"error": code, "detail": detail})
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.refusals, stored.referred_systems) == ("pending_review", [], REFERRED)
    assert not ConnectorTask.objects.filter(request=request).exists()
    assert mailoutbox == []
