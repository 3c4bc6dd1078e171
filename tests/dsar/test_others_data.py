"""Other people's data in an access export (GDPR Art. 15(4)), end to end on the real stack: an
access request whose data holds what may be other people's (a contact, another customer's comment on
a shared support ticket, CCTV) is held although the deployment releases exports at once; a reviewer
decides for each item in the console (release, withhold, redact fields, with a reason); the archive
is written again without what was withheld and with redacted fields marked, and its report and the
release email say per category what was left out or hidden, and why."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re

import pytest
from django.urls import reverse

from dsar import jobs, selectors, services
from dsar.errors import Conflict
from dsar.exports import default_storage
from dsar.models import AuditEntry, Export, Request
from dsar.staff import ROLE_REVIEWER
from estate.loader import estate_load, estate_parse

from ..support.flows import approve, download, file_request, subject_view, wait_until_final
from .test_console_views import _messages, _signed_in
from .test_refusals import _mailed_by_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]

AT = "2026-10-05T18:00:00Z"
CV = b"Olive Others - CV\n"
CONTACT, CCTV, TICKET = "accounts:contacts_relationships:0", "content:video_recordings:0", "support:interactions.support:0"
SHARED_TICKET = {"topic": "Family plan", "at": AT, "messages": [
    {"from": "customer", "body": "Please add my brother."},
    {"from": "other", "name": "Dan Martin", "email": "dan.martin@example.net", "body": "Dan here. My number is +44 20 7946 0555."},
    {"from": "agent", "agent_name": "Priya", "body": "Done."},
]}


def _subject(email: str) -> dict:
    """A person with a contact, a ticket shared with another customer, a document and a CCTV recording."""
    return {"email": email,
            "accounts": {"name": "Olive Others", "contacts": [{"name": "Kim Lee", "email": "kim.lee@example.net"}]},
            "support": {"chats": [SHARED_TICKET]},
            "content": {"files": [{"path": "Documents/cv.txt", "base64": base64.b64encode(CV).decode(), "category": "content"},
                                  {"path": "Store visit/cctv.mp4", "base64": base64.b64encode(b"cctv frames").decode(),
                                   "category": "video_recordings"}]}}


def _held(api, reviewer, mailoutbox, email: str, subject: dict) -> tuple[str, str]:
    """File, approve and run an access request for `subject` to its end; its id and bearer token."""
    estate_load(estate_parse({"subjects": [subject]}))
    request_id, token = file_request(api, mailoutbox, type="access", email=email)
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"
    return request_id, token


def _words(html: str) -> str:
    """The markup with each tag apart and each run of white space one space."""
    return " ".join(html.replace("<", " <").replace(">", "> ").split())


def _text(html: str) -> str:
    """The page's words, as a reader sees them."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _unchanged(request_id: str, held: Export) -> None:
    export = Export.objects.get(request_id=request_id)
    assert (export.path, export.released_at, export.review) == (held.path, None, None)
    assert default_storage.exists(held.path)
    assert not AuditEntry.objects.filter(request_id=request_id, action="released").exists()


def test_an_access_request_holding_other_peoples_data_is_held_then_released_as_the_reviewer_decided_in_the_console(
        api, reviewer, mailoutbox, unique_email, settings, worker):
    assert settings.DSAR_REVIEW_BEFORE_RELEASE is False  # the deployment releases exports as soon as they are made
    email = unique_email("olive")
    request_id, token = _held(api, reviewer, mailoutbox, email, _subject(email))

    held = Export.objects.get(request_id=request_id)
    assert (held.released_at, held.others) == (None, 3)
    assert subject_view(api, request_id, token)["download_url"] is None
    assert Request.objects.filter(selectors.unanswered_q(), pk=request_id).exists()  # the deadline still runs
    checking = _mailed_by_worker(worker, email, "Example Company: We are checking your data before we send it")
    assert ("Before we send it, our privacy team checks it, so that giving you your data does not take away the rights of others."
            in checking)

    console = _signed_in("rita", ROLE_REVIEWER, "/console/")
    page = console.get(reverse("console:request", args=[request_id])).content.decode()
    assert "This export may hold other people's data (3 items)" in _text(page)
    review = reverse("console:request-review", args=[request_id])
    shown = _text(console.get(review).content.decode())
    for text in ("Your contacts from accounts.contacts", "email kim.lee@example.net", "Video recordings at our places and events from content",
                 "The file files/content/Store visit/cctv.mp4 .", "Help and support requests from support.tickets",
                 "messages.1.from another person messages.1.body Dan here. My number is +44 20 7946 0555."):
        assert text in shown, text

    decided = {"action_0": "withhold", "reason_0": "others_personal_data",
               "action_1": "withhold", "reason_1": "others_personal_data",
               "action_2": "redact", "fields_2": ["messages.1.body"], "reason_2": "other", "reason_text_2": "Another customer's own words",
               "note": "Checked with the privacy lead"}
    refused = console.post(review, {**decided, "reason_1": ""})
    assert refused.status_code == 200
    assert ("Nothing was released. Check the decisions marked below. </p> "
            f"<ul class=\"errorlist nonfield\"> <li> {CCTV}: say why it is withheld: the person is told. </li> </ul>") in _words(
        refused.content.decode())
    _unchanged(request_id, held)

    released = console.post(review, decided, follow=True)
    assert _messages(released) == ["Released as decided. The person has been emailed the download link and what was left out, and why."]
    export = Export.objects.get(request_id=request_id)
    assert export.released_at is not None and export.path != held.path
    assert not default_storage.exists(held.path)
    assert export.review["by"] == "staff:rita"
    assert export.review["decisions"] == [
        {"item": CONTACT, "action": "withhold", "fields": [], "reason": "others_personal_data", "reason_text": ""},
        {"item": CCTV, "action": "withhold", "fields": [], "reason": "others_personal_data", "reason_text": ""},
        {"item": TICKET, "action": "redact", "fields": ["messages.1.body"], "reason": "other", "reason_text": "Another customer's own words"},
    ]
    entry = AuditEntry.objects.filter(request_id=request_id).order_by("id").last()
    assert (entry.action, entry.actor, entry.note, entry.data) == ("released", "staff:rita", "Checked with the privacy lead",
                                                                  {"review": export.review["decisions"]})

    archive = download(api, subject_view(api, request_id, token)["download_url"])
    assert archive.testzip() is None
    manifest = json.loads(archive.read("manifest.json"))
    members = sorted(name for name in archive.namelist() if name != "manifest.json")
    assert sorted(listed["path"] for listed in manifest["files"]) == members
    for listed in manifest["files"]:
        data = archive.read(listed["path"])
        assert (len(data), hashlib.sha256(data).hexdigest()) == (listed["bytes"], listed["sha256"]), listed["path"]
    assert "files/content/Store visit/cctv.mp4" not in members
    assert archive.read("files/content/Documents/cv.txt") == CV
    assert json.loads(archive.read("data/contacts_relationships.json")) == []
    assert json.loads(archive.read("data/video_recordings.json")) == []
    assert [record["fields"]["file"] for record in json.loads(archive.read("data/content.json"))] == ["files/content/Documents/cv.txt"]
    [ticket] = json.loads(archive.read("data/interactions.support.json"))
    assert ticket["fields"]["messages"] == [
        {"from": "customer", "body": "Please add my brother.", "at": AT},
        {"from": "another person", "body": "[redacted]", "at": AT},
        {"from": "agent", "body": "Done.", "at": AT, "agent_name": "Priya"},
    ]
    assert b"+44 20 7946 0555" not in b"".join(archive.read(name) for name in members)
    assert [manifest["categories"][c]["records"] for c in ("contacts_relationships", "video_recordings", "interactions.support")] == [0, 0, 1]

    report = _words(archive.read("index.html").decode())
    assert ("What we left out or hid to protect other people, and why </h2> <p> Some of what we hold about you also concerns other "
            "people, or is confidential.") in report
    assert ("<tr> <th scope=\"row\"> Your contacts </th> <td class=\"num\"> 1 </td> <td class=\"num\"> 0 </td> <td> "
            "Another person&#39;s personal data </td> </tr>") in report
    assert ("<tr> <th scope=\"row\"> Video recordings at our places and events </th> <td class=\"num\"> 1 </td> <td class=\"num\"> 0 "
            "</td> <td> Another person&#39;s personal data </td> </tr>") in report
    assert ("<tr> <th scope=\"row\"> Help and support requests </th> <td class=\"num\"> 0 </td> <td class=\"num\"> 1 </td> <td> "
            "Another customer&#39;s own words </td> </tr>") in report

    completed = mailoutbox[-1]
    assert (completed.to, completed.subject) == ([email], "Example Company: Your request is complete")
    assert f"/api/v1/requests/{request_id}/download/" in completed.body
    assert ("so we left some items out of your copy or hid parts of them (they show [redacted]). In each kind of data:\n\n"
            "- Your contacts: 1 item left out, 0 partly hidden\n  Why: Another person's personal data\n\n"
            "- Video recordings at our places and events: 1 item left out, 0 partly hidden\n  Why: Another person's personal data\n\n"
            "- Help and support requests: 0 items left out, 1 partly hidden\n  Why: Another customer's own words\n") in completed.body
    assert "<strong>Help and support requests</strong>: 0 items left out, 1 partly hidden<br>Why: Another customer&#x27;s own words" in (
        completed.alternatives[0][0])

    detail = reviewer.get(f"/api/v1/staff/requests/{request_id}").json()
    assert (detail["export"]["others"], detail["export"]["review"]["by"]) == (3, "staff:rita")
    assert detail["export"]["review"]["decisions"][2] == {"item": TICKET, "action": "redact", "fields": ["messages.1.body"],
                                                          "reason": "other", "reason_text": "Another customer's own words"}
    assert subject_view(api, request_id, token)["result"]["categories"]["contacts_relationships"] == 0
    assert Request.objects.get(pk=request_id).result["bytes"] == export.bytes == default_storage.size(export.path)  # the archive as released


def test_bad_review_decisions_are_a_400_with_their_code_and_change_nothing(api, reviewer, mailoutbox, unique_email):
    email = unique_email("kim")
    request_id, _ = _held(api, reviewer, mailoutbox, email, {"email": email, "accounts": {
        "name": "Kim Contacts", "contacts": [{"name": "Lee Park", "email": "lee.park@example.net"}]}})
    held = Export.objects.get(request_id=request_id)
    listed = reviewer.get(f"/api/v1/staff/requests/{request_id}/review").json()
    assert listed["items"] == [{"id": CONTACT, "connector": "accounts", "category": "contacts_relationships", "system": "accounts.contacts",
                                "file": None, "fields": {"name": "Lee Park", "email": "lee.park@example.net"}, "paths": ["name", "email"]}]
    assert listed["reasons"]["others_personal_data"] == "Another person's personal data"

    sent = len(mailoutbox)
    for decisions, code in (
        ([{"item": "accounts:contacts_relationships:7", "action": "release"}], "unknown_item"),
        ([{"item": CONTACT, "action": "redact", "fields": ["phone"], "reason": "others_personal_data"}], "unknown_field"),
        ([{"item": CONTACT, "action": "withhold"}], "reason_required"),
        ([{"item": CONTACT, "action": "withhold", "reason": "other", "reason_text": "  "}], "reason_required"),
        ([{"item": CONTACT, "action": "redact", "reason": "trade_secret"}], "invalid_fields"),
        ([{"item": CONTACT, "action": "release"}, {"item": CONTACT, "action": "release"}], "duplicate_decision"),
        ([], "decision_missing"),
        ([{"item": CONTACT, "action": "shred"}], "invalid"),
    ):
        response = reviewer.post(f"/api/v1/staff/requests/{request_id}/review", {"decisions": decisions}, format="json")
        assert (response.status_code, response.json()["error"]) == (400, code), decisions
        _unchanged(request_id, held)
    assert len(mailoutbox) == sent
    with pytest.raises(Conflict, match="review it, then release it as decided"):
        services.request_release(request_id=request_id, actor="staff:rita")
    _unchanged(request_id, held)

    due = Request.objects.get(pk=request_id).due_at
    jobs.deadline_watch(now=due + dt.timedelta(hours=1), limit=10)  # held for review, it stays on the deadline watch
    assert Request.objects.get(pk=request_id).overdue_since == due

    reviewer.post(f"/api/v1/staff/requests/{request_id}/review", {"decisions": [{"item": CONTACT, "action": "release"}]}, format="json")
    again = reviewer.post(f"/api/v1/staff/requests/{request_id}/review", {"decisions": [{"item": CONTACT, "action": "release"}]}, format="json")
    assert (again.status_code, again.json()["error"]) == (409, "already_released")


def test_an_access_request_holding_nothing_of_other_people_is_released_at_once(api, reviewer, mailoutbox, unique_email, worker):
    email = unique_email("solo")
    request_id, token = _held(api, reviewer, mailoutbox, email, {"email": email, "accounts": {"name": "Sol Solo", "searches": ["tide times"]}})
    export = Export.objects.get(request_id=request_id)
    assert export.released_at is not None and export.others == 0
    assert subject_view(api, request_id, token)["download_url"]
    assert "The copy of your data is ready. You can download it here:" in _mailed_by_worker(worker, email, "Example Company: Your request is complete")
    nothing = reviewer.get(f"/api/v1/staff/requests/{request_id}/review")
    assert (nothing.status_code, nothing.json()["error"]) == (409, "already_released")


def test_what_a_review_left_out_is_told_in_the_persons_language_whoever_reviewed(api, reviewer, mailoutbox, unique_email):
    """The reviewer works in English; a person who filed in German reads the categories and the
    reasons in German, in the report and in the email, and a reviewer's own words as written."""
    email = unique_email("greta")
    estate_load(estate_parse({"subjects": [_subject(email)]}))
    request_id, token = file_request(api, mailoutbox, type="access", email=email, language="de")
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"
    decisions = [{"item": CONTACT, "action": "withhold", "reason": "others_personal_data"},
                 {"item": CCTV, "action": "release"},
                 {"item": TICKET, "action": "redact", "fields": ["messages.1.body"], "reason": "other", "reason_text": "Words of another customer"}]
    released = reviewer.post(f"/api/v1/staff/requests/{request_id}/review", {"decisions": decisions}, format="json")
    assert released.status_code == 200, released.content

    report = _words(download(api, subject_view(api, request_id, token)["download_url"]).read("index.html").decode())
    assert ("<tr> <th scope=\"row\"> Ihre Kontakte </th> <td class=\"num\"> 1 </td> <td class=\"num\"> 0 </td> <td> "
            "Personenbezogene Daten einer anderen Person </td> </tr>") in report
    assert "<td> Words of another customer </td>" in report
    completed = mailoutbox[-1]
    assert ("- Ihre Kontakte: 1 Eintrag weggelassen, 0 teilweise unkenntlich gemacht\n"
            "  Grund: Personenbezogene Daten einer anderen Person\n") in completed.body
    assert "Grund: Words of another customer\n" in completed.body
