"""axe-core finds no WCAG 2.x A or AA violation on any page a person or a staff member can reach,
and no page scrolls sideways, at two phone widths and a desktop width (the `axe` fixture). Each
request state is made through the services, and the real worker where only processing reaches it.

The API documentation page is left out: it is Redoc's page, not ours (its own styles and script,
under the one CSP exception the site makes), and test_api_docs.py checks that it renders."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from base64 import b32decode

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from connectors.registry import connectors_reset
from connectors.systems import system_load
from dsar import jobs, notifications, services
from dsar.errors import InvalidInput
from dsar.models import ConnectorTask, Request
from dsar.staff import ROLE_ADMIN, ROLE_REVIEWER, staff_setup_code_issue, staff_user_ensure
from estate.loader import estate_load, estate_parse

from ..conftest import code_from
from ..factories import request_make
from ..support.flows import wait_until_final
from ..support.recipients import crm, deletion_completed, hook  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.django_db(transaction=True)]


def _status_page(page: Page, request: Request, heading: str) -> None:
    """Open the request's page by the signed link its emails carry, and wait for its heading."""
    page.goto(notifications.status_url(request))
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)


def _confirmed(mailoutbox, *, type: str, email: str) -> Request:
    """A request filed and confirmed with its emailed code, as the person does: pending review."""
    request = services.request_create(type=type, email=email)
    confirmed, _token = services.request_verify(request_id=request.pk, code=code_from(mailoutbox, email))
    return confirmed


# --- Portal: filing a request and confirming it ------------------------------------------------------


def test_the_portal_pages_up_to_the_code_have_no_accessibility_violations(page: Page, site, axe, unique_email):
    page.goto(f"{site}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ask what data we hold")
    axe(page, "start")

    page.get_by_role("link", name="Start a request").click()
    page.get_by_text("Choose which kinds of data (optional)").click()
    axe(page, "request form, categories open")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_be_visible()
    axe(page, "request form with errors")

    page.get_by_label("Delete my data").check()
    page.get_by_label("Your email address").fill(unique_email("axe-delete"))
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Before we delete your data")
    axe(page, "deletion warning")
    page.get_by_role("button", name="Send my deletion request").click()
    expect(page.get_by_role("alert")).to_contain_text("Tick the box to confirm")
    axe(page, "deletion warning with an error")

    page.get_by_label(re.compile("I understand that my data will be deleted")).check()
    page.get_by_role("button", name="Send my deletion request").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    axe(page, "code page")
    page.get_by_label("Code from the email").fill("not a code")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert")).to_be_visible()
    axe(page, "code page with an error")


def test_the_locked_and_lapsed_code_pages_and_the_unknown_request_page_have_no_accessibility_violations(page: Page, site, axe,
                                                                                                       settings):
    request = request_make(code="12345678")
    for _ in range(settings.DSAR_CODE_MAX_ATTEMPTS - 1):  # the browser's wrong code is the last one allowed
        with pytest.raises(InvalidInput):
            services.request_verify(request_id=request.pk, code="87654321")
    page.goto(f"{site}/requests/{request.pk}/verify")
    page.get_by_label("Code from the email").fill("87654321")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("This request is locked")
    axe(page, "code page, locked")

    with time_machine.travel(timezone.now() - dt.timedelta(days=settings.DSAR_UNVERIFIED_PURGE_DAYS + 1)):
        lapsed = request_make(code="12345678")
    page.goto(f"{site}/requests/{lapsed.pk}/verify")
    page.get_by_label("Code from the email").fill("12345678")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert")).to_be_visible()
    axe(page, "code page, lapsed")

    page.goto(f"{site}/requests/{uuid.uuid4()}")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    axe(page, "unknown request")


# --- Portal: the request's page in each state ----------------------------------------------------------


def test_the_request_page_in_each_state_before_processing_ends_has_no_accessibility_violations(page: Page, site, axe):
    _status_page(page, request_make(status="unverified"), "Confirm your email address")
    axe(page, "status, unverified")
    _status_page(page, request_make(status="pending_review"), "We are checking your request")
    axe(page, "status, pending review")
    _status_page(page, request_make(status="processing", type="access"), "We are gathering your data")
    axe(page, "status, gathering")
    _status_page(page, request_make(status="processing", type="deletion"), "We are deleting your data")
    axe(page, "status, deleting")
    _status_page(page, request_make(status="failed"), "Your request is delayed")
    axe(page, "status, failed")

    asked = request_make(status="pending_review")
    services.request_ask(request_id=asked.pk, actor="staff:test", question="Which account number is yours?", purpose="identity")
    _status_page(page, asked, "We need more information from you")
    axe(page, "status, awaiting an answer")
    page.get_by_role("button", name="Send your answer").click()
    expect(page.get_by_role("alert")).to_be_visible()
    axe(page, "status, awaiting an answer, with an error")

    denied = request_make(status="pending_review")
    services.request_deny(request_id=denied.pk, actor="staff:test", reason="We hold no account for this address.")
    _status_page(page, denied, "We could not carry out your request")
    axe(page, "status, denied")
    canceled = request_make(status="pending_review")
    services.request_cancel(request_id=canceled.pk)
    _status_page(page, canceled, "You canceled this request")
    axe(page, "status, canceled")


def test_the_request_page_once_processing_ends_has_no_accessibility_violations(page: Page, site, axe, unique_email):
    access = request_make(status="pending_review", email="bob@example.com")
    services.request_approve(request_id=access.pk, actor="staff:test",
                             refuse=[{"category": "location", "reason": "It would reveal another person's whereabouts."}])
    assert wait_until_final(access.pk).status == "completed"
    _status_page(page, access, "Your data is ready to download")
    expect(page.get_by_role("link", name=re.compile("Download your data"))).to_be_visible()
    expect(page.get_by_text("It would reveal another person's whereabouts.")).to_be_visible()
    axe(page, "status, completed with download and a refusal")

    held = request_make(status="pending_review", email="alice@example.com")
    services.request_approve(request_id=held.pk, actor="staff:test")
    assert wait_until_final(held.pk).status == "completed"  # held: Alice's export holds other people's data
    _status_page(page, held, "We are checking your file")
    axe(page, "status, completed and held for review")

    jobs.export_expiry(now=timezone.now() + dt.timedelta(days=400), limit=10)
    _status_page(page, access, "Your download has expired")
    axe(page, "status, expired")

    email = unique_email("axe-erin")
    invoice = {"amount": 9.99, "currency": "EUR", "at": "2026-01-15T10:00:00Z", "item": "Cloud storage"}
    estate_load(estate_parse({"subjects": [{"email": email, "accounts": {"name": "Erin Example", "searches": ["bike shop"]},
                                            "payments": {"transactions": [invoice]}}]}))
    deletion = request_make(status="pending_review", type="deletion", email=email)
    services.request_approve(request_id=deletion.pk, actor="staff:test")
    assert wait_until_final(deletion.pk).status == "completed"
    _status_page(page, deletion, "We deleted your data")
    expect(page.get_by_role("heading", name="What we kept, and why")).to_be_visible()
    axe(page, "status, deletion receipt")


def test_the_request_page_of_a_referred_request_has_no_accessibility_violations(page: Page, site, axe, mailoutbox,
                                                                                organisation_systems_only):
    referred = _confirmed(mailoutbox, type="access", email="carol@school.example.org")
    _status_page(page, referred, "Your organisation handles this request")
    axe(page, "status, referred")


# --- Portal: in German --------------------------------------------------------------------------------


@pytest.mark.browser_context_args(locale="de-DE")
def test_the_portal_in_german_has_no_accessibility_violations(page: Page, site, axe, unique_email, shot):
    """German words are longer: the pages still fit a phone, and the language switch is labelled."""
    page.goto(f"{site}/")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", level=1)).to_have_text("Fragen Sie, welche Daten wir über Sie speichern, oder lassen Sie sie löschen")
    expect(page.get_by_label("Sprache")).to_have_value("de")
    axe(page, "start, German")

    page.get_by_role("link", name="Anfrage stellen").click()
    page.get_by_role("button", name="Weiter").click()
    expect(page.get_by_role("alert")).to_be_visible()
    axe(page, "request form with errors, German")

    page.get_by_label("Meine Daten löschen").check()
    page.get_by_label("Ihre E-Mail-Adresse").fill(unique_email("axe-deutsch"))
    page.get_by_role("button", name="Weiter").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bevor wir Ihre Daten löschen")
    axe(page, "deletion warning, German")
    page.get_by_label(re.compile("Ich verstehe, dass meine Daten endgültig gelöscht werden")).check()
    page.get_by_role("button", name="Löschanfrage senden").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sehen Sie in Ihrem Postfach nach")
    axe(page, "code page, German")

    _status_page(page, request_make(status="processing", type="access"), "Wir sammeln Ihre Daten")
    axe(page, "status, gathering, German")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "portal-status-processing-german-phone")


def test_the_language_switch_turns_the_portal_german_and_back(page: Page, site):
    page.goto(f"{site}/")
    page.get_by_label("Language").select_option("de")
    page.get_by_role("button", name="Change language").click()
    expect(page.get_by_role("link", name="Anfrage stellen")).to_be_visible()
    page.get_by_label("Sprache").select_option("en")
    page.get_by_role("button", name="Sprache wechseln").click()
    expect(page.get_by_role("link", name="Start a request")).to_be_visible()


# --- Console ---------------------------------------------------------------------------------------------

PASSWORD = "a-long-staff-passphrase"
ARCHIVE = """\
name: archive
kind: manual
instructions: Search the paper archive in room 4 by the subject's email and scan what you find.
categories: [name_contact, payment]
"""


def _staff(username: str, role: str, *, with_app: bool = True) -> TOTPDevice | None:
    """A staff member with the password PASSWORD and, `with_app`, the authenticator app they set up."""
    user = staff_user_ensure(username=username, role=role)
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True) if with_app else None


def _sign_in(page: Page, site: str, username: str, device: TOTPDevice) -> None:
    """Sign in with the password, then the code the staff member's app shows now."""
    page.goto(f"{site}/console/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Code from your authenticator app").fill(f"{totp(device.bin_key):06d}")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Queue")).to_be_visible()


def _console_page(page: Page, url: str, heading: str | re.Pattern) -> None:
    """Open a console page and wait for its heading."""
    page.goto(url)
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)


def test_the_console_sign_in_pages_have_no_accessibility_violations(page: Page, site, axe, settings):
    _staff("ada", ROLE_ADMIN, with_app=False)
    setup_code = staff_setup_code_issue(user_id=get_user_model().objects.get(username="ada").pk)
    page.goto(f"{site}/console/login/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    axe(page, "console sign-in")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username and password")
    axe(page, "console sign-in with an error")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up two-factor sign-in")
    axe(page, "console two-factor set-up")
    page.get_by_label("Setup code from an admin").fill("wrong")
    page.get_by_label("Code from your authenticator app").fill("000000")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("That setup code is not right")).to_be_visible()
    axe(page, "console two-factor set-up with an error")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Setup code from an admin").fill(setup_code)
    page.get_by_label("Code from your authenticator app").fill(f"{totp(b32decode(secret)):06d}")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Queue")

    page.get_by_role("button", name=re.compile("Sign out")).click()
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your code")
    axe(page, "console two-factor code")
    device = TOTPDevice.objects.get(user__username="ada")
    not_the_code_now = (totp(device.bin_key) + 1) % 1_000_000
    page.get_by_label("Code from your authenticator app").fill(f"{not_the_code_now:06d}")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_label("Code from your authenticator app")).to_have_attribute("aria-invalid", "true")
    axe(page, "console two-factor code with an error")

    page.get_by_role("button", name=re.compile("Sign out")).click()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page.get_by_label("Username").fill("ada")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in locked")
    axe(page, "console sign-in locked")


def test_the_console_pages_an_admin_works_in_have_no_accessibility_violations(page: Page, site, axe, unique_email):
    for status in ("unverified", "pending_review", "processing", "failed", "awaiting_subject"):
        request_make(status=status, email=unique_email(status.replace("_", "-")))
    pending = request_make(status="pending_review", email="alice@example.com")
    deletion = request_make(status="pending_review", type="deletion", email="bob@example.com")
    refused = request_make(status="pending_review", email="bob@example.com")
    services.request_approve(request_id=refused.pk, actor="staff:test",
                             refuse=[{"category": "location", "reason": "It would reveal another person's whereabouts."}])
    email = unique_email("axe-erin")
    estate_load(estate_parse({"subjects": [{"email": email, "accounts": {"name": "Erin Example", "searches": ["bike shop"]}}]}))
    erased = request_make(status="pending_review", type="deletion", email=email)
    services.request_approve(request_id=erased.pk, actor="staff:test")
    _staff("rita", ROLE_REVIEWER)
    _sign_in(page, site, "ada", _staff("ada", ROLE_ADMIN))
    axe(page, "console queue")

    _console_page(page, f"{site}/console/requests/{pending.pk}", re.compile("Pending Review"))
    axe(page, "console request, pending review")
    _console_page(page, f"{site}/console/requests/{deletion.pk}/preview", "What this deletion would do")
    axe(page, "console deletion preview")
    assert wait_until_final(refused.pk).status == "completed"
    _console_page(page, f"{site}/console/requests/{refused.pk}", re.compile("Completed"))
    expect(page.get_by_text("It would reveal another person's whereabouts.").first).to_be_visible()
    axe(page, "console request, completed with a refusal")

    services.request_approve(request_id=pending.pk, actor="staff:test")
    assert wait_until_final(pending.pk).status == "completed"  # held: Alice's export holds other people's data
    _console_page(page, f"{site}/console/requests/{pending.pk}", re.compile("Completed"))
    axe(page, "console request, completed and held for review")
    _console_page(page, f"{site}/console/requests/{pending.pk}/review", "Review other people's data")
    axe(page, "console review")

    assert wait_until_final(erased.pk).status == "completed"
    _console_page(page, f"{site}/console/requests/{erased.pk}", re.compile("Completed"))
    axe(page, "console request, completed deletion")

    for path, heading in (("dashboard", "Dashboard"), ("metrics", "Yearly metrics"), ("systems", "Systems"),
                          ("manual", "Manual tasks"), ("staff", "Staff"), ("settings", "Settings")):
        _console_page(page, f"{site}/console/{path}", heading)
        axe(page, f"console {heading.lower()}")


def test_the_console_pages_of_a_system_with_no_api_have_no_accessibility_violations(page: Page, site, axe, settings, tmp_path,
                                                                                    unique_email):
    (tmp_path / "archive.yaml").write_text(ARCHIVE)
    settings.DSAR_SYSTEMS = {"archive": system_load(tmp_path / "archive.yaml", environ={})}
    connectors_reset()
    try:
        for type in ("access", "deletion"):
            request = request_make(status="pending_review", type=type, email=unique_email(f"axe-{type}"))
            services.request_approve(request_id=request.pk, actor="staff:test")
        _sign_in(page, site, "ada", _staff("ada", ROLE_ADMIN))
        _console_page(page, f"{site}/console/manual", "Manual tasks")
        axe(page, "console manual tasks")
        for task in ConnectorTask.objects.filter(connector="archive").order_by("pk"):
            _console_page(page, f"{site}/console/manual/{task.pk}", re.compile("archive: (gather|erase) by hand"))
            axe(page, f"console manual task, {task.request.type}")
    finally:
        connectors_reset()


def test_the_console_page_a_reviewer_may_not_reach_has_no_accessibility_violations(page: Page, site, axe):
    _sign_in(page, site, "rita", _staff("rita", ROLE_REVIEWER))
    assert page.goto(f"{site}/console/staff").status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    axe(page, "console, not allowed")


def test_the_console_pages_of_recipients_to_tell_have_no_accessibility_violations(page: Page, site, axe, crm, unique_email):
    deletion_completed(unique_email("axe-told"), at=timezone.now())
    _sign_in(page, site, "ada", _staff("ada", ROLE_ADMIN))
    _console_page(page, f"{site}/console/recipients", "Recipients to tell")
    axe(page, "console recipients")
    page.get_by_role("link", name=re.compile("^Tax office")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Tax office: tell of an erasure")
    axe(page, "console recipient")
