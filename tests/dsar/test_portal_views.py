"""The request portal's pages through Django's test client: forms, the code, and who sees what."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from urllib.parse import urlsplit

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dsar import notifications, services
from dsar.lifecycle import audit_record
from dsar.models import Request

from ..conftest import code_from
from ..factories import request_make

CODE = "12345678"


def _path(url: str) -> str:
    """The path and query of an absolute link, for the test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture
def seen(client):
    """Open a request's page through its emailed, signed link."""

    def open_(request: Request):
        return client.get(_path(notifications.status_url(request)), follow=True)

    return open_


def test_start_page_explains_the_steps_and_the_deadline(client, db):
    page = client.get(reverse("portal:start")).content.decode()
    assert 'lang="en"' in page and "Skip to main content" in page
    assert "one month" in page and "up to two months more" in page
    assert reverse("portal:request-new") in page


def test_pages_and_the_api_are_kept_out_of_caches(client, db):
    request = request_make(status="processing", email="cached@example.com")
    for path in ["/", f"/requests/{request.pk}", "/api/v1/requests/00000000-0000-0000-0000-000000000000"]:
        assert client.get(path)["Cache-Control"] == "no-store", path
    assert "no-store" in client.get("/console/login/")["Cache-Control"]  # Django's own never_cache, kept


def test_form_errors_are_shown_linked_to_fields_and_nothing_is_filed(client, db, mailoutbox):
    response = client.post(reverse("portal:request-new"), {"email": "not-an-address"})
    page = response.content.decode()
    assert response.status_code == 200
    assert 'role="alert"' in page and "There is a problem" in page
    assert "Choose whether you want a copy of your data or want it deleted." in page
    assert "Enter a valid email address." in page
    assert 'aria-describedby="id_email-hint id_email-error"' in page and 'aria-invalid="true"' in page
    assert page.count('href="#id_type_0"') == 1 and 'href="#id_email"' in page
    assert "<title>Error: " in page
    assert Request.objects.count() == 0 and mailoutbox == []


def test_an_access_request_is_filed_and_goes_to_the_code_page(client, db, django_capture_on_commit_callbacks, mailoutbox):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("portal:request-new"), {"type": "access", "email": " Pat@Example.com ", "categories": ["location"]})
    request = Request.objects.get()
    assert (request.type, request.email, request.categories) == ("access", "pat@example.com", ["location"])
    assert response.status_code == 302 and response["Location"] == reverse("portal:request-verify", args=[request.id])
    page = client.get(response["Location"]).content.decode()
    assert "pat@example.com" in page
    assert 'autocomplete="one-time-code"' in page and 'inputmode="numeric"' in page
    assert [m.to for m in mailoutbox] == [["pat@example.com"]]


def test_a_deletion_is_filed_only_after_the_warning_is_acknowledged(client, db):
    response = client.post(reverse("portal:request-new"), {"type": "deletion", "email": "del@example.com"})
    assert response.status_code == 302 and response["Location"] == reverse("portal:request-confirm")
    warning = client.get(response["Location"]).content.decode()
    assert "Invoices are kept for 10 years, because tax law requires it." in warning
    assert "Your account is closed." in warning and "subscription" in warning
    assert "Invoices: kept for 10 years because tax law requires it" in warning  # the taxonomy's retention text
    assert Request.objects.count() == 0

    refused = client.post(reverse("portal:request-confirm"), {})
    assert "Tick the box to confirm" in refused.content.decode()
    assert Request.objects.count() == 0

    filed = client.post(reverse("portal:request-confirm"), {"acknowledge": "on"})
    request = Request.objects.get()
    assert (request.type, request.email) == ("deletion", "del@example.com")
    assert filed["Location"] == reverse("portal:request-verify", args=[request.id])
    # The answers are gone once filed: going back does not file twice.
    assert client.post(reverse("portal:request-confirm"), {"acknowledge": "on"})["Location"] == reverse("portal:request-new")
    assert Request.objects.count() == 1


def test_the_warning_lists_only_the_chosen_categories_and_keeps_the_account_when_it_is_not_chosen(client, db):
    client.post(reverse("portal:request-new"), {"type": "deletion", "email": "del@example.com", "categories": ["searches_commands"]})
    warning = client.get(reverse("portal:request-confirm")).content.decode()
    assert "Searches and commands" in warning and "Voice recordings" not in warning
    assert "Your account is closed." not in warning
    # "Change my answers" brings the form back filled in.
    form = client.get(reverse("portal:request-new") + "?change").content.decode()
    assert re.search(r'value="deletion"[^>]* checked', form) and not re.search(r'value="access"[^>]* checked', form)
    assert "del@example.com" in form and re.search(r'value="searches_commands"[^>]* checked', form)


def test_a_wrong_code_says_how_many_attempts_are_left(client, db):
    request = request_make(code=CODE)
    response = client.post(reverse("portal:request-verify", args=[request.id]), {"code": "0000 0000"})
    page = response.content.decode()
    assert "That code is not right. 4 attempts left." in page
    assert 'aria-describedby="id_code-hint id_code-error"' in page
    assert Request.objects.get(pk=request.id).code_attempts == 1


def test_a_code_with_letters_is_refused_without_using_an_attempt(client, db):
    request = request_make(code=CODE)
    page = client.post(reverse("portal:request-verify", args=[request.id]), {"code": "12ab"}).content.decode()
    assert "Enter the code using only the digits in the email." in page
    assert Request.objects.get(pk=request.id).code_attempts == 0


def test_the_fifth_wrong_code_locks_the_request(client, db):
    request = request_make(code=CODE)
    for _ in range(4):
        client.post(reverse("portal:request-verify", args=[request.id]), {"code": "00000000"})
    page = client.post(reverse("portal:request-verify", args=[request.id]), {"code": "00000000"}).content.decode()
    assert "This request is locked" in page and "File a new request." in page
    assert 'name="code"' not in page


def test_an_expired_code_asks_for_a_new_one(client, db):
    request = request_make(code=CODE)
    Request.objects.filter(pk=request.id).update(code_expires_at=request.created_at)
    page = client.post(reverse("portal:request-verify", args=[request.id]), {"code": CODE}).content.decode()
    assert "This code has expired. Ask for a new one." in page


def test_resending_too_soon_shows_the_cooldown(client, db):
    client.post(reverse("portal:request-new"), {"type": "access", "email": "soon@example.com"})
    request = Request.objects.get()
    page = client.post(reverse("portal:request-resend", args=[request.id])).content.decode()
    assert "A code was sent moments ago. You can ask for another in" in page and 'role="alert"' in page


def test_a_resent_code_is_announced(client, db):
    request = request_make(code=CODE)  # no code_sent_at: a new code may go out at once
    response = client.post(reverse("portal:request-resend", args=[request.id]), follow=True)
    assert "We sent you a new code." in response.content.decode()


def test_the_right_code_opens_the_status_page_in_this_browser_only(client, db, estate):
    request = request_make(code=CODE, email="nobody-in-the-estate@example.com")
    response = client.post(reverse("portal:request-verify", args=[request.id]), {"code": CODE})
    assert response["Location"] == reverse("portal:request-status", args=[request.id])
    page = client.get(response["Location"]).content.decode()
    assert "We are checking your request" in page and "You confirmed your email address" in page
    assert "Cancel this request" in page
    # Another browser, without the code or the link, sees nothing.
    assert Client().get(response["Location"]).status_code == 404


def test_status_page_without_session_or_key_is_404_and_reveals_nothing(client, db):
    request = request_make(status="pending_review", email="secret@example.com")
    other = uuid.uuid4()
    known = client.get(reverse("portal:request-status", args=[request.id]))
    unknown = client.get(reverse("portal:request-status", args=[other]))
    assert known.status_code == unknown.status_code == 404

    def without_address_and_token(page: str, request_id) -> str:
        # Each page names its own address (the language switch comes back to it) and carries a fresh form token.
        return re.sub(r'name="csrfmiddlewaretoken" value="\w+"', "", page.replace(str(request_id), ""))

    assert without_address_and_token(known.content.decode(), request.id) == without_address_and_token(unknown.content.decode(), other)
    assert "Use the link in your email" in known.content.decode()
    assert b"secret@example.com" not in known.content and b"pending" not in known.content


def test_status_page_with_a_forged_or_borrowed_key_is_404(client, db):
    request, other = request_make(status="pending_review"), request_make(status="pending_review")
    assert client.get(reverse("portal:request-status", args=[request.id]), {"key": "forged"}).status_code == 404
    borrowed = _path(notifications.status_url(other)).split("?", 1)[1]
    assert client.get(f"{reverse('portal:request-status', args=[request.id])}?{borrowed}").status_code == 404
    assert client.get(reverse("portal:request-status", args=[request.id])).status_code == 404


def test_the_emailed_link_opens_the_page_and_drops_the_key(client, db, seen):
    request = request_make(status="pending_review")
    response = seen(request)
    assert response.redirect_chain == [(reverse("portal:request-status", args=[request.id]), 302)]
    assert response.status_code == 200 and "We are checking your request" in response.content.decode()


def test_the_link_in_the_received_email_is_the_same_in_both_parts_and_opens_the_page(client, db, mailoutbox, django_capture_on_commit_callbacks):
    request = request_make(status="pending_review", email="linked@example.com")
    unverified = request_make(email="linked@example.com", code_issued=True)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        notifications.email_on_commit(request, "received")
        notifications.email_enqueue(notifications.code_email(unverified))
    received, code = mailoutbox
    links = set(re.findall(r"http://\S+?/requests/[^\s\"<]+", received.body + received.alternatives[0][0]))
    assert len(links) == 1  # one link, the same in the text and the HTML
    response = client.get(_path(links.pop()), follow=True)
    assert response.status_code == 200 and "We are checking your request" in response.content.decode()
    assert "key=" not in code.body + code.alternatives[0][0]  # the code email carries no link


def test_the_subject_can_cancel_while_under_review(client, db, seen):
    request = request_make(status="pending_review")
    seen(request)
    page = client.post(reverse("portal:request-cancel", args=[request.id]), follow=True).content.decode()
    assert "You canceled your request." in page and "Cancel this request" not in page
    assert Request.objects.get(pk=request.id).status == "canceled"


def test_cancel_needs_the_session(client, db):
    request = request_make(status="pending_review")
    assert client.post(reverse("portal:request-cancel", args=[request.id])).status_code == 404
    assert Request.objects.get(pk=request.id).status == "pending_review"


def test_a_completed_deletion_shows_its_receipt_in_words(client, db, seen):
    request = request_make(status="completed", type="deletion")
    request.result = {
        "erased": {"name_contact": 1, "searches_commands": 3, "location": 0},
        "retained": [
            {"category": "interactions.account_history", "count": 2, "reason": "Invoices are kept for 10 years because tax law requires it (legal_obligation)",
             "until": "2036-05-05", "connector": "payments"}
        ],
        "notify_sources": ["Acme Data Brokers"],
    }
    request.save(update_fields=["result"])
    with transaction.atomic():
        audit_record(request, actor="staff:rita", action="approved", note="checked the id")
        audit_record(request, actor="system", action="completed")
    page = seen(request).content.decode()
    assert "We deleted your data" in page
    assert "Name and contact details" in page and "Searches and commands" in page and "3 records" in page
    assert "Location" not in page.split("What we kept")[0].split("What we deleted")[1]  # nothing erased there
    assert "Purchases and account activity" in page and "2 records" in page
    assert "Invoices are kept for 10 years because tax law requires it</dd>" in page and "The law requires it" in page
    assert "5 May 2036" in page
    assert "Acme Data Brokers" in page
    assert "Our privacy team approved your request" in page
    assert "rita" not in page and "checked the id" not in page and "legal_obligation" not in page
    assert "Cancel this request" not in page


def test_an_extended_request_says_why(client, db, seen):
    request = request_make(status="pending_review")
    services.request_extend(request_id=request.id, actor="staff:rita", reason="We are still searching our archives.", days=10)
    page = seen(request).content.decode()
    assert "We moved the due date, because: We are still searching our archives." in page
    assert "We moved the due date" in page.split("Progress")[1] and "rita" not in page


def test_a_referred_request_names_the_organisation(client, db, seen):
    request = request_make(status="referred")
    Request.objects.filter(pk=request.id).update(referred_to="Northside School District")
    page = seen(request).content.decode()
    assert "Your organisation handles this request" in page
    assert "Northside School District" in page


def test_a_denied_request_gives_the_reason(client, db, seen):
    request = request_make(status="denied")
    with transaction.atomic():
        audit_record(request, actor="staff:rita", action="denied", note="We could not match this address to an account.")
    page = seen(request).content.decode()
    assert "We could not carry out your request" in page and "We could not match this address to an account." in page
    assert "rita" not in page


@pytest.mark.parametrize(("jurisdiction", "complaint"), [
    ("gdpr", "You also have the right to complain to a data protection authority (a supervisory authority)"),
    ("ccpa", "You can also file a complaint with the California Privacy Protection Agency"),
])
def test_a_request_denied_as_excessive_says_so_and_where_to_complain_under_its_law(client, db, seen, jurisdiction, complaint):
    request = request_make(status="denied")
    Request.objects.filter(pk=request.id).update(jurisdiction=jurisdiction, denial_ground="excessive")
    with transaction.atomic():
        audit_record(request, actor="staff:rita", action="denied", note="This repeats the request we answered last week.")
    page = " ".join(seen(request).content.decode().split())
    assert ("Our privacy team looked at your request and could not carry it out. We refused it as excessive, in particular "
            "because of its repetitive character:") in page
    assert "This repeats the request we answered last week." in page
    assert complaint in page


def test_an_access_request_refused_in_part_says_what_was_left_out_and_why(client, db, seen):
    request = request_make(status="processing")
    Request.objects.filter(pk=request.id).update(refusals=[
        {"category": "searches_commands", "reason": "Your searches are held by our partner, who answers for them."}])
    page = " ".join(seen(request).content.decode().split())
    assert ("<h2>What we did not include, and why</h2> <p>Our privacy team refused these parts of your request:</p> <ul class=\"kept\"> "
            "<li><strong>Searches and commands</strong><dl><dt>Why</dt><dd>Your searches are held by our partner, who answers for "
            "them.</dd></dl></li> </ul>") in page


def test_a_failed_request_says_there_is_a_delay(client, db, seen):
    request = request_make(status="failed")
    Request.objects.filter(pk=request.id).update(failure_reason="payments: connection refused")
    page = seen(request).content.decode()
    assert "Your request is delayed" in page and "working on it" in page
    assert "connection refused" not in page


def test_a_completed_access_request_waiting_for_review_is_being_checked(client, db, seen):

    from dsar.models import Export

    request = request_make(status="completed")
    now = timezone.now()
    export = Export.objects.create(request=request, path="x.zip", bytes=2048, sha256="0" * 64, created_at=now, expires_at=now + timezone.timedelta(days=7))
    assert "We are checking your file" in seen(request).content.decode()
    Export.objects.filter(pk=export.pk).update(released_at=now)
    page = client.get(reverse("portal:request-status", args=[request.id])).content.decode()
    assert "Your data is ready to download" in page and f"/api/v1/requests/{request.id}/download/" in page


def test_the_code_email_links_to_the_code_page_where_any_browser_can_confirm_with_the_code(client, db, settings, estate,
                                                                                           django_capture_on_commit_callbacks, mailoutbox):
    settings.DSAR_PUBLIC_URL = "https://privacy.example.com"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("portal:request-new"), {"type": "access", "email": "closed.tab@example.com"})
    request = Request.objects.get()
    [message] = mailoutbox
    link = f"https://privacy.example.com/requests/{request.id}/verify"
    assert f"If you closed that page, enter the code here instead: {link}\n" in message.body
    html = message.alternatives[0][0]
    assert f'<a href="{link}" style="color:#1d4ed8;">enter the code here instead</a>' in html
    # the tab was closed: another browser opens the link and confirms with the code
    other = Client()
    page = other.get(_path(link))
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.content.decode()
    confirmed = other.post(_path(link), {"code": code_from(mailoutbox, "closed.tab@example.com")})
    assert confirmed["Location"] == reverse("portal:request-status", args=[request.id])
    assert Request.objects.get().status != "unverified"


def test_the_last_attempt_is_counted_in_the_singular(client, db):
    request = request_make(code=CODE)
    Request.objects.filter(pk=request.id).update(code_attempts=3)
    page = client.post(reverse("portal:request-verify", args=[request.id]), {"code": "00000000"}).content.decode()
    assert "That code is not right. 1 attempt left." in page


def test_a_locked_request_says_so_when_its_code_page_opens(client, db):
    request = request_make(code=CODE)
    Request.objects.filter(pk=request.id).update(code_attempts=5)
    response = client.get(reverse("portal:request-verify", args=[request.id]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "<h1>This request is locked</h1>" in page
    assert f'<a class="button" href="{reverse("portal:request-new")}">Start a new request</a>' in page
    assert 'name="code"' not in page and "Send me a new code" not in page
    # In a fresh browser too: the link in the code email leads there.
    assert "<h1>This request is locked</h1>" in Client().get(reverse("portal:request-verify", args=[request.id])).content.decode()


def test_a_lapsed_request_says_it_lapsed_when_its_code_is_entered(client, db):
    request = request_make(code=CODE)
    Request.objects.filter(pk=request.id).update(created_at=timezone.now() - dt.timedelta(days=8))
    page = client.post(reverse("portal:request-verify", args=[request.id]), {"code": CODE}).content.decode()
    assert "This request lapsed: it was not confirmed within 7 days. Make a new request." in page
    assert "already confirmed" not in page
    assert Request.objects.get(pk=request.id).status == "unverified"


def test_a_code_page_with_attempts_left_still_takes_the_code(client, db):
    request = request_make(code=CODE)
    Request.objects.filter(pk=request.id).update(code_attempts=4)
    page = client.get(reverse("portal:request-verify", args=[request.id])).content.decode()
    assert "This request is locked" not in page and 'name="code"' in page


def _text(page: str) -> str:
    """What a person reads: the page without its tags and their attributes."""
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def test_the_status_page_gives_times_in_the_persons_zone_and_days_left(client, db, seen):


    request = request_make(status="pending_review")
    Request.objects.filter(pk=request.id).update(time_zone="Asia/Kolkata", due_at=timezone.now() + dt.timedelta(days=12))
    text = _text(seen(request).content.decode())
    assert "12 days left" in text
    assert "Times are in Kolkata time." in text
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", text) and "UTC" not in text


def test_a_ready_download_gives_its_end_in_the_persons_zone(client, db, seen):


    from dsar.models import Export

    request = request_make(status="completed")
    Request.objects.filter(pk=request.id).update(time_zone="Asia/Kolkata")
    Export.objects.create(request=request, path="x.zip", bytes=2048, sha256="0" * 64, created_at=timezone.now(), released_at=timezone.now(),
                          expires_at=timezone.now().replace(year=2099, month=12, day=14, hour=10, minute=0, second=0, microsecond=0,
                                                            tzinfo=dt.timezone.utc))
    text = _text(seen(request).content.decode())
    assert "The download works until 14 December 2099, 15:30 (Kolkata time)." in text


# --- A deletion's answers on a shared computer ------------------------------------------------------


def _deletion_started(client) -> None:
    client.post(reverse("portal:request-new"), {"type": "deletion", "email": "shared.pc@example.com", "categories": ["location"]})
    assert client.get(reverse("portal:request-confirm")).status_code == 200


def test_a_fresh_form_forgets_a_deletion_that_was_not_sent(client, db):
    _deletion_started(client)
    form = client.get(reverse("portal:request-new")).content.decode()
    assert "shared.pc@example.com" not in form and not re.search(r'value="location"[^>]* checked', form)
    assert client.get(reverse("portal:request-confirm"))["Location"] == reverse("portal:request-new")
    assert "shared.pc@example.com" not in client.get(reverse("portal:request-new") + "?change").content.decode()


def test_the_start_page_forgets_a_deletion_that_was_not_sent(client, db):
    _deletion_started(client)
    client.get(reverse("portal:start"))
    assert client.get(reverse("portal:request-confirm"))["Location"] == reverse("portal:request-new")


def test_changing_the_answers_offers_to_start_again(client, db):
    _deletion_started(client)
    form = client.get(reverse("portal:request-new") + "?change").content.decode()
    assert "shared.pc@example.com" in form
    assert f'<a href="{reverse("portal:request-new")}">Start again</a>' in form
    warning = client.get(reverse("portal:request-confirm")).content.decode()
    assert f'<a href="{reverse("portal:request-new")}">Start again with an empty form</a>' in warning


def test_a_deletions_answers_are_not_brought_back_after_half_an_hour(client, db):

    import time_machine

    _deletion_started(client)
    with time_machine.travel(dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=31)):
        assert "shared.pc@example.com" not in client.get(reverse("portal:request-new") + "?change").content.decode()
        assert client.get(reverse("portal:request-confirm"))["Location"] == reverse("portal:request-new")


# --- The category picker -----------------------------------------------------------------------------


def test_the_category_groups_are_folded_until_something_in_them_is_chosen(client, db):
    form = client.get(reverse("portal:request-new")).content.decode()
    assert form.count('<details class="group">') == 6 and '<details class="group" open>' not in form
    assert 'name="groups" value="devices" id="group-devices"' in form
    refused = client.post(reverse("portal:request-new"), {"email": "x@example.com", "categories": ["location"]}).content.decode()
    assert refused.count('<details class="group" open>') == 1


def test_a_whole_group_ticked_without_javascript_asks_for_its_categories(client, db):
    client.post(reverse("portal:request-new"), {"type": "access", "email": "group@example.com", "groups": ["devices"],
                                                "categories": ["searches_commands"]})
    assert set(Request.objects.get().categories) == {"searches_commands", "interactions.device_config", "interactions.error_reports",
                                                     "location", "other_input"}


def test_an_unknown_group_is_refused_and_nothing_is_filed(client, db, mailoutbox):
    page = client.post(reverse("portal:request-new"), {"type": "access", "email": "group@example.com", "groups": ["secrets"]}).content.decode()
    assert "Choose only from the groups listed." in page
    assert Request.objects.count() == 0 and mailoutbox == []


# --- The referral's contact ---------------------------------------------------------------------------


@pytest.mark.parametrize(("contact", "link"), [
    ("privacy@northside-schools.example.org", "mailto:privacy@northside-schools.example.org"),
    ("https://northside-schools.example.org/privacy", "https://northside-schools.example.org/privacy"),
])
def test_the_organisation_that_handles_a_request_can_be_reached_from_its_page(client, db, seen, contact, link):
    request = request_make(status="referred")
    Request.objects.filter(pk=request.id).update(referred_to="Northside School District", referred_contact=contact)
    page = seen(request).content.decode()
    assert f'<a class="contact" href="{link}">{contact}</a>.' in page


def test_a_contact_that_is_no_address_is_shown_as_it_is(client, db, seen):
    request = request_make(status="referred")
    Request.objects.filter(pk=request.id).update(referred_to="Northside School District", referred_contact="the school office, room 12")
    page = seen(request).content.decode()
    assert '<strong class="contact">the school office, room 12</strong>.' in page and 'class="contact" href' not in page


# --- The encrypted download ---------------------------------------------------------------------------


def _ready_export(request: Request):
    import io
    import zipfile

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from dsar.models import Export

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.html", b"<h1>Your data</h1>")
    path = default_storage.save(f"exports/{request.pk}/test.zip", ContentFile(buffer.getvalue()))
    now = timezone.now()
    return Export.objects.create(request=request, path=path, bytes=len(buffer.getvalue()), sha256="0" * 64, created_at=now,
                                 released_at=now, expires_at=now + timezone.timedelta(days=7))


def test_the_status_page_offers_the_download_locked_with_a_passphrase(client, db, seen):
    from stream_unzip import stream_unzip

    request = request_make(status="completed")
    _ready_export(request)
    page = seen(request).content.decode()
    action = reverse("portal:request-download-encrypted", args=[request.id])
    assert f'<form method="post" action="{action}"' in page and 'autocomplete="new-password"' in page
    answer = client.post(action, {"passphrase": "correct battery horse"})
    assert answer.status_code == 200 and answer["Content-Type"] == "application/zip"
    assert answer["Content-Disposition"] == f'attachment; filename="data-{request.id}-encrypted.zip"'
    unpacked = {name.decode(): b"".join(chunks) for name, _size, chunks in stream_unzip([b"".join(answer.streaming_content)],
                                                                                       password="correct battery horse")}
    assert unpacked == {"index.html": b"<h1>Your data</h1>"}


def test_a_short_passphrase_is_refused_on_the_page(client, db, seen):
    request = request_make(status="completed")
    _ready_export(request)
    seen(request)
    answer = client.post(reverse("portal:request-download-encrypted", args=[request.id]), {"passphrase": "short"})
    page = answer.content.decode()
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/html")
    assert "A passphrase is at least 12 characters long." in page and 'role="alert"' in page and "<title>Error: " in page
    assert '<details class="download-encrypted" open>' in page


def test_the_encrypted_download_needs_the_session_and_a_live_export(client, db, seen):
    request = request_make(status="completed")
    export = _ready_export(request)
    action = reverse("portal:request-download-encrypted", args=[request.id])
    assert client.post(action, {"passphrase": "correct battery horse"}).status_code == 404
    seen(request)
    from dsar.models import Export

    Export.objects.filter(pk=export.pk).update(expires_at=export.created_at)
    answer = client.post(action, {"passphrase": "correct battery horse"})
    assert answer["Location"] == reverse("portal:download-unavailable", args=[request.id])


# --- In German ------------------------------------------------------------------------------------------


def test_the_switch_sets_the_language_cookie_and_the_next_page_is_german(client, db, settings):
    start = client.get(reverse("portal:start")).content.decode()
    assert 'lang="en"' in start and '<label for="language-choice">Language</label>' in start
    # Each language in its own name, whatever the page's language; the page's own is chosen.
    assert '<option value="en" lang="en" selected>English</option><option value="de" lang="de">Deutsch</option>' in start
    assert f'<form class="language-switch" method="post" action="{reverse("set-language")}">' in start
    assert '<input type="hidden" name="next" value="/">' in start

    switched = client.post(reverse("set-language"), {"language": "de", "next": reverse("portal:start")})
    assert switched.status_code == 302 and switched["Location"] == reverse("portal:start")
    assert switched.cookies[settings.LANGUAGE_COOKIE_NAME].value == "de"
    page = client.get(switched["Location"]).content.decode()
    assert '<html lang="de">' in page
    assert "<h1>Fragen Sie, welche Daten wir über Sie speichern, oder lassen Sie sie löschen</h1>" in page
    assert "Das Gesetz gibt uns <strong>einen Monat</strong> Zeit für die Antwort." in page
    assert "bis zu zwei Monate länger zu brauchen" in page
    assert '<label for="language-choice">Sprache</label>' in page and "Sprache wechseln</button>" in page
    assert '<option value="en" lang="en">English</option><option value="de" lang="de" selected>Deutsch</option>' in page


def test_the_browsers_language_alone_gives_german_and_neither_gives_english(client, db):
    german = client.get(reverse("portal:request-new"), HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9,en;q=0.5").content.decode()
    assert '<html lang="de">' in german and "<h1>Eine Anfrage stellen</h1>" in german
    assert "<title>Eine Anfrage stellen – Example Company Datenschutzanfragen</title>" in german
    assert "Ihre E-Mail-Adresse</label>" in german
    english = Client().get(reverse("portal:request-new")).content.decode()
    assert '<html lang="en">' in english and "<h1>Make a request</h1>" in english
    assert "<title>Make a request – Example Company privacy requests</title>" in english
    assert "Your email address</label>" in english


def test_a_request_filed_while_german_is_active_keeps_german(client, db):
    client.post(reverse("set-language"), {"language": "de", "next": "/"})
    client.post(reverse("portal:request-new"), {"type": "access", "email": "deutsch@example.com"})
    client.post(reverse("portal:request-new"), {"type": "deletion", "email": "loeschen@example.com"})
    client.post(reverse("portal:request-confirm"), {"acknowledge": "on"})
    browser = Client(HTTP_ACCEPT_LANGUAGE="de")
    browser.post(reverse("portal:request-new"), {"type": "access", "email": "browser@example.com"})
    Client().post(reverse("portal:request-new"), {"type": "access", "email": "english@example.com"})
    assert dict(Request.objects.values_list("email", "language")) == {
        "deutsch@example.com": "de", "loeschen@example.com": "de", "browser@example.com": "de", "english@example.com": "en"}


def test_form_errors_are_given_in_german(client, db):
    page = client.post(reverse("portal:request-new"), {"email": "x@example.com", "date_from": "gestern"},
                       HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "<title>Fehler: Eine Anfrage stellen – Example Company Datenschutzanfragen</title>" in page
    assert '<h2 id="error-summary-title">Es gibt ein Problem</h2>' in page
    assert ('<a href="#id_type_0">Wählen Sie, ob Sie eine Kopie Ihrer Daten möchten oder ob sie gelöscht werden sollen.</a>'
            in page)
    assert ('<span class="visually-hidden">Fehler:</span> Geben Sie den ersten Tag als Datum ein, zum Beispiel 2024-01-31.'
            in page)


def test_a_wrong_code_counts_the_attempts_left_in_german(client, db):
    request = request_make(code=CODE)
    page = client.post(reverse("portal:request-verify", args=[request.id]), {"code": "0000 0000"},
                       HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Dieser Code ist nicht richtig. Sie haben noch 4 Versuche." in page
    assert "<h1>Sehen Sie in Ihrem Postfach nach</h1>" in page
    assert "Der Code hat 8 Ziffern und gilt 10 Minuten lang." in page
    Request.objects.filter(pk=request.id).update(code_attempts=3)
    page = client.post(reverse("portal:request-verify", args=[request.id]), {"code": "00000000"},
                       HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Dieser Code ist nicht richtig. Sie haben noch 1 Versuch." in page


def _filed_in_berlin() -> Request:
    """A request under review, filed now by someone in Berlin."""
    request = request_make(status="pending_review")
    Request.objects.filter(pk=request.id).update(time_zone="Europe/Berlin")
    return Request.objects.get(pk=request.id)


def test_the_status_page_in_german_gives_dates_in_german_order(client, db, seen):
    import time_machine

    with time_machine.travel(dt.datetime(2026, 12, 7, 14, 5, tzinfo=dt.timezone.utc), tick=False):
        request = _filed_in_berlin()
        client.cookies["django_language"] = "de"
        page = seen(request).content.decode()
    text = _text(page)
    assert '<html lang="de">' in page
    assert "Ihre Anfrage nach einer Kopie Ihrer Daten Wir prüfen Ihre Anfrage" in text
    assert "Gesendet am 7. Dezember 2026 Fällig bis 7. Januar 2027 (noch 31 Tage)" in text
    assert "Das ist das späteste Datum, das das Gesetz erlaubt." in text
    assert "Zeitangaben in Ortszeit Berlin." in text
    # The audit trail keeps the database's own time: the step's day and hour are not the travelled ones.
    assert re.search(r"\d{1,2}\. (Jan\.|Feb\.|März|April|Mai|Juni|Juli|Aug\.|Sept\.|Okt\.|Nov\.|Dez\.) \d{4}, \d\d:\d\d "
                     "Sie haben eine Kopie Ihrer Daten angefordert Jetzt", text)
    assert "Jetzt Unser Datenschutzteam prüft Ihre Anfrage Danach Wir sammeln Ihre Daten aus unseren Systemen" in text
    assert "Haben Sie es sich anders überlegt?" in text and "Diese Anfrage zurückziehen" in text
    # The switch leads back to the request's own page.
    assert f'<input type="hidden" name="next" value="{reverse("portal:request-status", args=[request.id])}">' in page


def test_the_status_page_in_english_is_unchanged(client, db, seen):
    import time_machine

    with time_machine.travel(dt.datetime(2026, 12, 7, 14, 5, tzinfo=dt.timezone.utc), tick=False):
        request = _filed_in_berlin()
        page = seen(request).content.decode()
    text = _text(page)
    assert '<html lang="en">' in page
    assert "Your request for a copy of your data We are checking your request" in text
    assert "Sent 7 December 2026 Due by 7 January 2027 (31 days left)" in text
    assert "That is the latest date the law allows." in text
    assert "Times are in Berlin time." in text
    assert re.search(r"\d{1,2} \w{3} \d{4}, \d\d:\d\d You asked for a copy of your data Now", text)
    assert "Now Our privacy team checks your request Next We gather your data from our systems" in text


def test_a_ready_download_in_german(client, db, seen):
    from dsar.models import Export

    request = request_make(status="completed")
    Request.objects.filter(pk=request.id).update(time_zone="Asia/Kolkata")
    Export.objects.create(request=request, path="x.zip", bytes=2048, sha256="0" * 64, created_at=timezone.now(), released_at=timezone.now(),
                          expires_at=dt.datetime(2099, 12, 14, 10, 0, tzinfo=dt.timezone.utc))
    client.cookies["django_language"] = "de"
    text = _text(seen(request).content.decode())
    assert "Ihre Daten stehen zum Herunterladen bereit" in text
    assert "Ihre Daten herunterladen (ZIP-Datei, 2,0 KB)" in text
    assert "Der Download funktioniert bis zum 14. Dezember 2099, 15:30 (Ortszeit Kolkata). Danach löschen wir die Datei." in text
    assert "Ihre Daten stattdessen im Browser ansehen , ohne etwas herunterzuladen" in text


def test_a_completed_deletion_in_german_gives_its_receipt_date_in_german(client, db, seen):
    request = request_make(status="completed", type="deletion")
    request.result = {"erased": {"name_contact": 1}, "retained": [
        {"category": "interactions.account_history", "count": 2, "reason": "Invoices are kept for 10 years because tax law requires it (legal_obligation)",
         "until": "2036-05-05", "connector": "payments"}]}
    request.save(update_fields=["result"])
    client.cookies["django_language"] = "de"
    text = _text(seen(request).content.decode())
    assert "Wir haben Ihre Daten gelöscht" in text and "Was wir gelöscht haben" in text
    assert "Was wir aufbewahrt haben, und warum" in text and "Aufbewahrt bis 5. Mai 2036" in text


def test_a_referred_request_in_german_names_the_organisation_and_its_contact(client, db, seen):
    request = request_make(status="referred")
    Request.objects.filter(pk=request.id).update(referred_to="Northside School District", referred_contact="privacy@northside-schools.example.org")
    client.cookies["django_language"] = "de"
    page = " ".join(seen(request).content.decode().split())
    assert ("Für eine Kopie Ihrer Daten wenden Sie sich bitte an Northside School District unter "
            '<a class="contact" href="mailto:privacy@northside-schools.example.org">privacy@northside-schools.example.org</a>.') in page


def test_a_page_answering_a_form_sent_elsewhere_switches_back_to_its_own_address(client, db, seen):
    request = request_make(status="completed")
    _ready_export(request)
    seen(request)
    page = client.post(reverse("portal:request-download-encrypted", args=[request.id]), {"passphrase": "short"},
                       HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Eine Passphrase ist mindestens 12 Zeichen lang." in page
    assert f'<input type="hidden" name="next" value="{reverse("portal:request-status", args=[request.id])}">' in page


def test_the_deletion_warning_in_german_keeps_the_labels_capitals(client, db):
    client.post(reverse("portal:request-new"), {"type": "deletion", "email": "del@example.com", "categories": ["searches_commands"]})
    english = client.get(reverse("portal:request-confirm")).content.decode()
    assert ":</strong> searches and commands.</p>" in english  # lower case within an English sentence
    german = client.get(reverse("portal:request-confirm"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "<h1>Bevor wir Ihre Daten löschen</h1>" in german
    assert "<p>Wir löschen die Arten von Daten, die Sie gewählt haben:</p>" in german
    assert "Ich verstehe, dass meine Daten endgültig gelöscht werden" in german and "Löschanfrage senden</button>" in german
    assert "searches and commands" not in german  # German nouns keep their capitals
