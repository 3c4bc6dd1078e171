"""Children (GDPR Art. 8 and Recital 38; CCPA §1798.120(c), regulations §7070–7072): a request whose
subject a system shows may be a child is flagged at verification and waits for a reviewer, auto-approval
or not; its approval says whose authority was confirmed, and a child's location, pictures, voice and video
go only where that authority allows, the rest withheld with the reason in words. From the person's side
(emails, status page, archive) and the staff's (API, console), with the real worker where a request runs
to its end; and the system file's `age` block and the taxonomy's `sensitive` mark."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse

from connectors import taxonomy
from connectors.base import Identity
from connectors.systems import SystemsError, systems_load
from dsar import services
from dsar.errors import InvalidInput
from dsar.models import AuditEntry, ConnectorTask, OutgoingEmail, Request
from dsar.staff import ROLE_REVIEWER

from ..conftest import ROOT, code_from
from ..support.flows import download, release_as_it_is, subject_view, wait_until_final
from .test_console_views import _messages, _signed_in

CHILD, TEEN, ADULT = "mia@example.com", "leo@example.com", "alice@example.com"  # born 2014 and 2010 (estate/demo.json); 1988
# The day the tests verify on, so that the ages the demo's birth years give stay those written here.
VERIFIED_ON = dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.UTC)
WITHHELD = ("We withheld this data to protect a child: our records show you may be under 13, and we give data that can "
            "show where a child is, or what they look or sound like, only to a parent or guardian whose authority we have "
            "confirmed. A parent or guardian can obtain it by writing to privacy@example.com from their own email address, "
            "quoting this request's reference: we will confirm that they are your parent or guardian, then send it to them.")
SENSITIVE_LABELS = "Voice recordings, Pictures, Location, Video recordings at our places and events"


def _words(text: str) -> str:
    """Text with its tags gone, its characters unescaped and its white space as single spaces, as a reader takes it in."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


@pytest.fixture
def filed(api, mailoutbox, django_capture_on_commit_callbacks):
    """Files a request (an access request unless `type` says otherwise) and verifies it through the subject
    API on VERIFIED_ON, each call's emails sent as it returns; gives (id, bearer token)."""
    def file(email: str, type: str = "access", **extra) -> tuple[str, str]:
        with time_machine.travel(VERIFIED_ON, tick=True):
            with django_capture_on_commit_callbacks(execute=True):
                created = api.post("/api/v1/requests", {"type": type, "email": email, **extra}, format="json")
            assert created.status_code == 201, created.content
            request_id = created.json()["id"]
            with django_capture_on_commit_callbacks(execute=True):
                verified = api.post(f"/api/v1/requests/{request_id}/verify", {"code": code_from(mailoutbox, email)}, format="json")
            assert verified.status_code == 200, verified.content
        return request_id, verified.json()["token"]

    return file


def _approve(staff, request_id: str, **body):
    return staff.post(f"/api/v1/staff/requests/{request_id}/approve", {"note": "checked by phone", **body}, format="json")


def _status_page(mailoutbox, email: str) -> str:
    """The person's status page, opened from the link in the last email sent to them."""
    body = [message for message in mailoutbox if email in message.to][-1].body
    link = re.search(r"https?://[^/\s]+(/requests/\S+)", body).group(1)
    return _words(Client().get(link, follow=True).content.decode())


# --- Flagged at verification, held for review ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_childs_request_is_flagged_with_the_age_and_where_it_came_from_and_waits_for_review_despite_auto_approval(
        api, filed, reviewer, mailoutbox, settings):
    settings.DSAR_AUTO_APPROVE = True
    request_id, token = filed(CHILD)
    adult_id, adult_token = filed(ADULT)

    assert subject_view(api, request_id, token)["status"] == "pending_review"
    assert subject_view(api, adult_id, adult_token)["status"] == "processing"  # auto-approval still serves an adult
    assert not ConnectorTask.objects.filter(request_id=request_id).exists()

    detail = reviewer.get(f"/api/v1/staff/requests/{request_id}").json()
    assert (detail["minor_age"], detail["minor_age_source"], detail["authority_confirmed"]) == (11, "accounts: users.birth_year", "")
    assert [(entry["action"], entry["actor"], entry["to_status"]) for entry in detail["audit"]] == [
        ("filed", "subject", "unverified"), ("minor_flagged", "system", "unverified"), ("verified", "subject", "pending_review")]
    flagged = detail["audit"][1]
    assert flagged["note"] == ("accounts: users.birth_year shows the subject may be as young as 11, under 16: a child under the "
                               "GDPR. A reviewer approves the request, confirming whose authority it is made on, even with "
                               "auto-approval on.")
    assert flagged["data"] == {"age": 11, "source": "accounts: users.birth_year"}
    adult = reviewer.get(f"/api/v1/staff/requests/{adult_id}").json()
    assert (adult["minor_age"], adult["minor_age_source"]) == (None, "")

    assert [message.subject for message in mailoutbox if CHILD in message.to] == [
        "Example Company: Your verification code", "Example Company: We have received your request"]
    assert ("A member of our privacy team checks every request before we act on it. We will email you when we start gathering "
            "your data, and again when we are done.") in _status_page(mailoutbox, CHILD)


@pytest.mark.django_db
@pytest.mark.parametrize(("jurisdiction", "email", "flagged", "status"), [
    ("gdpr", TEEN, 15, "pending_review"),  # under the GDPR's 16
    ("ccpa", CHILD, 11, "pending_review"),  # under the CCPA's 13
    ("ccpa", TEEN, None, "processing"),  # 15 is no child under the CCPA
    ("gdpr", ADULT, None, "processing"),
])
def test_the_age_of_a_child_is_the_laws_of_the_request(api, filed, settings, jurisdiction, email, flagged, status):
    settings.DSAR_JURISDICTION = jurisdiction
    settings.DSAR_AUTO_APPROVE = True
    request_id, token = filed(email)
    stored = Request.objects.get(pk=request_id)
    assert (stored.jurisdiction, stored.minor_age) == (jurisdiction, flagged)
    assert subject_view(api, request_id, token)["status"] == status


# --- Approving: whose authority was confirmed -------------------------------------------------------------------


def _state(request_id: str, mailoutbox) -> tuple:
    """What an approval changes: the status, refusals and authority, the tasks, the audit trail, the emails."""
    stored = Request.objects.get(pk=request_id)
    return (stored.status, stored.refusals, stored.authority_confirmed, ConnectorTask.objects.filter(request_id=request_id).count(),
            list(AuditEntry.objects.filter(request_id=request_id).values_list("action", flat=True)),
            OutgoingEmail.objects.filter(request_id=request_id).count(), len(mailoutbox))


def _unchanged(request_id: str, mailoutbox, before: tuple) -> None:
    """The request as verified, under review with nothing refused or confirmed and no task, as it was before."""
    assert _state(request_id, mailoutbox) == before
    assert before[:4] == ("pending_review", [], "", 0)


@pytest.mark.django_db
@pytest.mark.parametrize(("email", "body", "code", "detail"), [
    (CHILD, {}, "authority_required",
     "The subject may be a child (as young as 11, by accounts: users.birth_year): say whose authority you confirmed, subject "
     "or parent_or_guardian."),
    (CHILD, {"authority": "grandparent"}, "invalid", {"authority": ['"grandparent" is not a valid choice.']}),
    (CHILD, {"authority": "subject"}, "parent_or_guardian_required",
     "Only a parent or guardian may receive Voice recordings, Pictures, Location, Video recordings at our places and events of "
     "a child under 13: confirm a parent's or guardian's authority, or withhold them."),
    (ADULT, {"authority": "parent_or_guardian"}, "not_a_child",
     "This request is not flagged as a child's: approve it without an authority."),
    (ADULT, {"withhold_sensitive": True}, "not_a_child", "This request is not flagged as a child's: approve it without an authority."),
])
def test_an_approval_that_does_not_confirm_an_authority_allowing_it_is_a_400_and_changes_nothing(
        filed, reviewer, mailoutbox, email, body, code, detail):
    request_id, _ = filed(email)
    before = _state(request_id, mailoutbox)
    answer = _approve(reviewer, request_id, **body)
    assert (answer.status_code, answer.json()) == (400, {"error": code, "detail": detail})
    _unchanged(request_id, mailoutbox, before)


@pytest.mark.django_db
def test_the_service_refuses_an_authority_it_does_not_know_and_changes_nothing(filed, mailoutbox):
    request_id, _ = filed(CHILD)
    before = _state(request_id, mailoutbox)
    with pytest.raises(InvalidInput) as refused:
        services.request_approve(request_id=request_id, actor="staff:rita", authority="grandparent")
    assert (refused.value.code, refused.value.detail) == ("invalid_authority", "authority must be one of subject, parent_or_guardian.")
    _unchanged(request_id, mailoutbox, before)


@pytest.mark.django_db  # the approval's tasks are never rung for: the demo child's data stays for the other tests
def test_a_childs_deletion_on_their_own_authority_erases_their_sensitive_data_with_the_rest(filed, reviewer):
    request_id, _ = filed(CHILD, type="deletion", categories=["name_contact", "location", "voice"])
    answer = _approve(reviewer, request_id, authority="subject")
    assert answer.status_code == 200, answer.content
    detail = answer.json()
    assert (detail["categories"], detail["refusals"], detail["authority_confirmed"]) == (
        ["name_contact", "voice", "location"], [], "subject")


# --- What the person is given: the real worker ------------------------------------------------------------------


def _archive_of(api, request_id: str, token: str):
    assert wait_until_final(request_id).status == "completed"
    return download(api, subject_view(api, request_id, token)["download_url"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker")
def test_a_teenager_may_confirm_their_own_authority_for_everything_they_asked_for(api, filed, reviewer):
    request_id, token = filed(TEEN, categories=["name_contact", "location", "images"])
    answer = _approve(reviewer, request_id, authority="subject")
    assert answer.status_code == 200, answer.content
    detail = answer.json()
    assert (detail["status"], detail["categories"], detail["refusals"], detail["authority_confirmed"]) == (
        "processing", ["name_contact", "images", "location"], [], "subject")
    approved = detail["audit"][-1]
    assert (approved["action"], approved["actor"], approved["data"]) == ("approved", "staff:rita", {"authority": "subject"})

    manifest = json.loads(_archive_of(api, request_id, token).read("manifest.json"))
    assert {category: body["records"] for category, body in manifest["categories"].items()} == {
        "name_contact": 1, "images": 1, "location": 2}  # one account row, one picture, two places


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker")
def test_a_parents_confirmed_authority_releases_the_childs_location_pictures_and_voice(api, filed, reviewer, mailoutbox):
    request_id, token = filed(CHILD)
    answer = _approve(reviewer, request_id, authority="parent_or_guardian")
    assert answer.status_code == 200, answer.content
    assert (answer.json()["authority_confirmed"], answer.json()["refusals"]) == ("parent_or_guardian", [])
    assert answer.json()["audit"][-1]["data"] == {"authority": "parent_or_guardian"}
    assert mailoutbox[-1].subject == "Example Company: We have started work on your request"  # nothing refused: work started

    assert wait_until_final(request_id).status == "completed"
    release_as_it_is(reviewer, request_id)  # others may be heard on her voice recording: it waits for review
    archive = _archive_of(api, request_id, token)
    manifest = json.loads(archive.read("manifest.json"))
    assert {category: manifest["categories"][category]["records"] for category in ("location", "images", "voice")} == {
        "location": 1, "images": 1, "voice": 1}
    assert json.loads(archive.read("data/location.json"))[0]["fields"] == {"lat": 53.8008, "lon": -1.5491, "precision": "precise"}
    assert len(archive.read("files/content/Photos/my-drawing.jpg")) == 3072
    assert len(archive.read("files/content/Voice/song.ogg")) == 1024
    assert "What we did not include" not in _words(archive.read("index.html").decode())


@pytest.mark.django_db(transaction=True)
def test_why_a_childs_data_was_withheld_is_kept_in_the_childs_language_not_the_reviewers(api, filed, reviewer, mailoutbox):
    request_id, _token = filed(CHILD, language="de")
    answer = _approve(reviewer, request_id, authority="subject", withhold_sensitive=True)  # the reviewer's client asks for no language
    assert answer.status_code == 200, answer.content
    reasons = {refusal["reason"] for refusal in answer.json()["refusals"]}
    assert len(reasons) == 1
    assert reasons.pop().startswith("Wir haben diese Daten zum Schutz eines Kindes zurückgehalten: Nach unseren Unterlagen sind Sie "
                                    "möglicherweise jünger als ")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("worker")
def test_on_the_childs_own_authority_the_sensitive_categories_are_withheld_and_the_person_told_why_and_how_a_parent_can_have_them(
        api, filed, reviewer, mailoutbox):
    request_id, token = filed(CHILD)
    answer = _approve(reviewer, request_id, authority="subject", withhold_sensitive=True)
    assert answer.status_code == 200, answer.content
    detail = answer.json()
    withheld = [{"category": category, "reason": WITHHELD} for category in ("voice", "images", "location", "video_recordings")]
    assert (detail["authority_confirmed"], detail["refusals"]) == ("subject", withheld)
    assert not {"voice", "images", "location", "video_recordings"} & set(detail["categories"])
    assert detail["audit"][-1]["data"] == {"authority": "subject", "refusals": withheld}

    email = mailoutbox[-1]
    assert (email.to, email.subject) == ([CHILD], "Example Company: We will not answer all of your request")
    assert f"- {SENSITIVE_LABELS}\n  Why: {WITHHELD}\n" in email.body
    assert f"{SENSITIVE_LABELS} Why: {WITHHELD}" in _words(email.alternatives[0][0])

    archive = _archive_of(api, request_id, token)
    manifest = json.loads(archive.read("manifest.json"))
    assert not {"voice", "images", "location", "video_recordings"} & set(manifest["categories"])
    assert [name for name in archive.namelist() if name.startswith("files/")] == []
    assert json.loads(archive.read("data/interests.json"))[0]["fields"] == {"topic": "dinosaurs"}  # the rest was released
    report = _words(archive.read("index.html").decode())
    assert ("What we did not include, and why Our privacy team refused part of your request. These are the parts this archive "
            f"does not hold, each with the reason they gave: {SENSITIVE_LABELS} : {WITHHELD}") in report
    assert f"What we did not include, and why Our privacy team refused these parts of your request: {SENSITIVE_LABELS} Why {WITHHELD}" in (
        _status_page(mailoutbox, CHILD))


# --- The console --------------------------------------------------------------------------------------------------


@pytest.fixture
def console():
    return _signed_in("rita", ROLE_REVIEWER, "/console/")


@pytest.mark.django_db
def test_the_console_shows_the_flag_and_its_source_and_asks_whose_authority_was_confirmed(filed, mailoutbox, console):
    request_id, _ = filed(TEEN)
    page = console.get(reverse("console:request", args=[request_id])).content.decode()
    assert ("May be a child As young as 15 (by accounts: users.birth_year) Authority confirmed Not yet: approving asks whose "
            "authority you confirmed") in _words(page)
    assert '<input type="radio" name="authority" value="parent_or_guardian" required id="approve_authority_1">' in page
    assert ('<label for="approve_withhold_sensitive">Withhold Voice recordings, Pictures, Location, Video recordings at our '
            "places and events:</label>") in page

    before = _state(request_id, mailoutbox)
    response = console.post(reverse("console:request-approve", args=[request_id]), {"note": "checked"})
    assert response.status_code == 200
    assert response.context["actions"]["approve"].errors == {
        "authority": ["Say whose authority you confirmed: the child's, or a parent's or guardian's."]}
    _unchanged(request_id, mailoutbox, before)

    response = console.post(reverse("console:request-approve", args=[request_id]), {"authority": "parent_or_guardian"}, follow=True)
    assert _messages(response) == ["Approved. The connectors are gathering the data now."]
    assert "Authority confirmed A parent or guardian" in _words(response.content.decode())
    assert Request.objects.get(pk=request_id).authority_confirmed == "parent_or_guardian"


@pytest.mark.django_db
def test_the_console_refuses_the_childs_own_authority_for_sensitive_data_under_the_youngest_age_and_changes_nothing(
        filed, mailoutbox, console):
    request_id, _ = filed(CHILD)
    before = _state(request_id, mailoutbox)
    response = console.post(reverse("console:request-approve", args=[request_id]), {"authority": "subject"}, follow=True)
    assert _messages(response) == [
        "Only a parent or guardian may receive Voice recordings, Pictures, Location, Video recordings at our places and events of "
        "a child under 13: confirm a parent's or guardian's authority, or withhold them."]
    _unchanged(request_id, mailoutbox, before)

    response = console.post(reverse("console:request-approve", args=[request_id]),
                            {"authority": "subject", "withhold_sensitive": "on"}, follow=True)
    assert _messages(response) == ["Approved. The connectors are gathering the data now."]
    shown = _words(response.content.decode())
    assert "Authority confirmed The child themselves" in shown
    assert f"Refused at approval Category voice : {WITHHELD} Category images : {WITHHELD}" in shown


# --- Where a system says how old the person is ---------------------------------------------------------------------

SHOP = """\
name: shop
kind: sql
connection: {{url: "sqlite:///{database}"}}
{age}
tables:
  - name: customer
    identity: {{email: email}}
    columns: {{email: name_contact, born: demographic, band: demographic}}
  - name: orders
    parent: {{table: customer, column: customer_id}}
    columns: {{total: payment}}
"""


def _shop(tmp_path: Path, age: str) -> Path:
    directory = tmp_path / "systems"
    directory.mkdir(exist_ok=True)
    (directory / "shop.yaml").write_text(SHOP.format(database=tmp_path / "shop.sqlite3", age=age))
    return directory


@pytest.mark.parametrize(("age", "problem"), [
    ("age: {table: customer, column: born, kind: shoe_size}", "age.kind: Input should be 'birth_date', 'birth_year' or 'age_band'"),
    ("age: {table: customer, column: born}", "age.kind: is required"),
    ("age: {table: customer, column: born, kind: birth_date, format: iso}", "age.format: is not a known setting"),
    ("age: {table: members, column: born, kind: birth_date}", "age: table members is not a table of this system"),
    ("age: {table: customer, column: birthday, kind: birth_date}",
     "age: column birthday is not one of the columns table customer declares"),
    ("age: {table: orders, column: born, kind: birth_year}", "age: column born is not one of the columns table orders declares"),
])
def test_a_system_files_age_block_is_refused_naming_what_is_wrong(tmp_path, age, problem):
    directory = _shop(tmp_path, age)
    with pytest.raises(SystemsError) as refused:
        systems_load(directory, {})
    assert refused.value.problems == [f"{directory / 'shop.yaml'}: {problem}"]


@pytest.mark.parametrize(("kind", "rows", "found"), [
    ("birth_date", [("2014-12-08", None)], (11, "shop: customer.born")),  # the day before the 12th birthday
    ("birth_date", [("2014-12-07", None)], (12, "shop: customer.born")),
    ("birth_year", [("2010", None)], (15, "shop: customer.born")),  # born as late as 31 December 2010
    ("age_band", [(None, "13-15")], (13, "shop: customer.band")),
    ("age_band", [(None, "under 13")], (0, "shop: customer.band")),
    ("age_band", [(None, "16+"), (None, "13 to 17")], (13, "shop: customer.band")),  # the youngest row counts
    ("age_band", [(None, "a grown-up")], None),  # nothing it can read
    ("birth_year", [("2027", None)], None),  # not born yet: a mistake, not a baby
])
def test_a_sql_system_gives_the_lowest_age_the_person_can_be_and_where_it_says_so(tmp_path, kind, rows, found):
    column = "band" if kind == "age_band" else "born"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE customer (id integer PRIMARY KEY, email text, born text, band text)")
        conn.exec_driver_sql("CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer, total numeric)")
        for index, (born, band) in enumerate(rows):
            conn.execute(sa.text("INSERT INTO customer VALUES (:id, 'kim@example.com', :born, :band)"),
                         {"id": index + 1, "born": born, "band": band})
        conn.exec_driver_sql("INSERT INTO customer VALUES (99, 'someone.else@example.com', '1990-01-01', '18+')")
    engine.dispose()
    connector = systems_load(_shop(tmp_path, f"age: {{table: customer, column: {column}, kind: {kind}}}"), {})["shop"].connector()
    try:
        evidence = connector.subject_age(Identity(email="kim@example.com"), on=dt.date(2026, 12, 7))
    finally:
        connector.close()
    assert (None if evidence is None else (evidence.lowest, evidence.source)) == found


# --- The taxonomy's sensitive mark ------------------------------------------------------------------------------


@pytest.fixture
def taxonomy_file(settings, tmp_path):
    """A taxonomy file of the test's own, read afresh; the product's again afterwards."""
    path = tmp_path / "taxonomy.yaml"
    settings.DSAR_TAXONOMY_FILE = str(path)
    taxonomy.taxonomy_in.cache_clear()
    yield path
    taxonomy.taxonomy_in.cache_clear()


def test_a_taxonomy_whose_sensitive_mark_is_not_true_or_false_is_refused_naming_the_category(taxonomy_file):
    product = (ROOT / "dsar" / "taxonomy.yaml").read_text()
    taxonomy_file.write_text(product.replace("    sensitive: true\n    label: \"Location\"", "    sensitive: often\n    label: \"Location\""))
    with pytest.raises(ImproperlyConfigured) as refused:
        taxonomy.taxonomy()
    assert str(refused.value) == f"{taxonomy_file}: categories.location.sensitive: must be true or false"


def test_the_product_marks_location_pictures_voice_and_video_sensitive_and_a_dotted_child_as_its_parent():
    marked = [category for category in taxonomy.category_ids() if taxonomy.category_sensitive(category)]
    assert marked == ["voice", "images", "location", "video_recordings"]
    assert (taxonomy.category_sensitive("images.scans"), taxonomy.category_sensitive("content.photos")) == (True, False)
