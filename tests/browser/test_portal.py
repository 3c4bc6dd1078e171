"""The request portal in a real browser, against the live server, the real worker and the estate."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from estate.loader import estate_load, estate_parse
from dsar import notifications, services
from dsar.models import Request

from ..conftest import code_from
from ..factories import request_make
from ..support.flows import wait_until_final

pytestmark = [pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
REQUEST_ID = re.compile(r"/requests/([0-9a-f-]{36})")


# Every form control is labelled, there is one h1, and nothing is wider than a phone's screen.
BASICS = """() => ({
  lang: document.documentElement.lang,
  h1: document.querySelectorAll("h1").length,
  unlabelled: [...document.querySelectorAll("input:not([type=hidden]), select, textarea")].filter(e => !e.labels.length).map(e => e.name),
  overflow: document.documentElement.scrollWidth > window.innerWidth,
})"""


@pytest.fixture
def shots(shot):
    """Check the page's basics, then screenshot it at a desktop and a phone width: shots(page, "portal-start")."""

    def take(page: Page, name: str) -> None:
        page.set_viewport_size(PHONE)
        assert page.evaluate(BASICS) == {"lang": "en", "h1": 1, "unlabelled": [], "overflow": False}, name
        page.set_viewport_size(DESKTOP)
        shot(page, name)
        page.set_viewport_size(PHONE)
        shot(page, f"{name}-phone")
        page.set_viewport_size(DESKTOP)

    return take


def _fill_form(page: Page, site: str, *, type_label: str, email: str) -> None:
    page.goto(f"{site}/request/")
    page.get_by_label(type_label).check()
    page.get_by_label("Your email address").fill(email)
    page.get_by_role("button", name="Continue").click()


def _request_id(page: Page) -> str:
    return REQUEST_ID.search(page.url).group(1)


def _enter_code(page: Page, code: str) -> None:
    page.get_by_label("Code from the email").fill(code)
    page.get_by_role("button", name="Confirm").click()


def test_a_deletion_from_the_form_to_its_receipt(page: Page, site, shots, mailoutbox, unique_email):
    email = unique_email("erin")
    invoice = {"amount": 9.99, "currency": "EUR", "at": "2026-01-15T10:00:00Z", "item": "Cloud storage"}
    subject = {
        "email": email,
        "accounts": {"name": "Erin Example", "searches": ["cheap flights", "bike shop"]},
        "payments": {"transactions": [invoice]},
    }
    estate_load(estate_parse({"subjects": [subject]}))

    page.goto(site)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ask what data we hold")
    shots(page, "portal-start")
    page.get_by_role("link", name="Start a request").click()
    page.get_by_label("Delete my data").check()
    page.get_by_label("Your email address").fill(email)
    page.get_by_text("Choose which kinds of data (optional)").click()
    shots(page, "portal-form")
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Before we delete your data")
    expect(page.get_by_text("Invoices are kept for 10 years, because tax law requires it.")).to_be_visible()
    page.get_by_role("button", name="Send my deletion request").click()
    expect(page.get_by_role("alert")).to_contain_text("Tick the box to confirm")
    assert Request.objects.filter(email=email).count() == 0
    page.get_by_label(re.compile("I understand that my data will be deleted")).check()
    shots(page, "portal-deletion-warning")
    page.get_by_role("button", name="Send my deletion request").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    expect(page.get_by_text(email)).to_be_visible()
    shots(page, "portal-code-entry")
    _enter_code(page, code_from(mailoutbox, email))

    expect(page.get_by_role("heading", level=1)).to_have_text("We are checking your request")
    request_id = _request_id(page)
    services.request_approve(request_id=request_id, actor="staff:test")
    assert wait_until_final(request_id).status == "completed"
    page.reload()

    expect(page.get_by_role("heading", level=1)).to_have_text("We deleted your data")
    erased = page.locator("h2:has-text('What we deleted') + ul")
    expect(erased).to_contain_text("Name and contact details")
    expect(erased).to_contain_text("Searches and commands")
    kept = page.locator(".kept")
    expect(kept).to_contain_text("Purchases and account activity")
    expect(kept).to_contain_text("tax law")
    expect(page.get_by_role("list").filter(has_text="Our privacy team approved your request")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("staff:test")
    shots(page, "portal-receipt")


def test_a_request_in_processing_shows_where_it_stands(page: Page, site, shots):
    request = request_make(status="processing", type="access")
    page.goto(notifications.status_url(request))
    expect(page.get_by_role("heading", level=1)).to_have_text("We are gathering your data")
    expect(page.locator("[aria-current=step]")).to_have_text(re.compile("We gather your data from our systems"))
    shots(page, "portal-status-processing")


def test_a_referred_request_shows_the_organisation(page: Page, site, shots, mailoutbox, organisation_systems_only):
    email = "carol@school.example.org"
    _fill_form(page, site, type_label="Get a copy of my data", email=email)
    _enter_code(page, code_from(mailoutbox, email))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your organisation handles this request")
    expect(page.locator(".organisation")).to_have_text("Northside School District")
    expect(page.locator(".contact")).to_have_text("privacy@northside-schools.example.org")
    shots(page, "portal-referred")


def test_five_wrong_codes_lock_the_request(page: Page, site, shots, mailoutbox, unique_email):
    email = unique_email("lock")
    _fill_form(page, site, type_label="Get a copy of my data", email=email)
    right = code_from(mailoutbox, email)
    wrong = "00000000" if right != "00000000" else "11111111"
    for left in ("4 attempts left", "3 attempts left", "2 attempts left", "1 attempt left"):
        _enter_code(page, wrong)
        expect(page.get_by_role("alert")).to_contain_text(left)
    _enter_code(page, wrong)
    expect(page.get_by_role("heading", level=1)).to_have_text("This request is locked")
    expect(page.get_by_role("alert")).to_contain_text("Too many wrong codes")
    expect(page.get_by_label("Code from the email")).to_have_count(0)
    shots(page, "portal-lockout")


def _tab_to(page: Page, selector: str, *, presses: int = 60) -> None:
    """Press Tab until the element matching `selector` has focus (bounded)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_the_form_works_with_the_keyboard_alone(page: Page, site, unique_email):
    page.goto(f"{site}/request/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    _tab_to(page, "input[name=type][value=access]")
    page.keyboard.press("Space")
    expect(page.get_by_label("Get a copy of my data")).to_be_checked()
    _tab_to(page, "input[name=email]")
    email = unique_email("keys")
    page.keyboard.type(email)
    _tab_to(page, "summary")
    page.keyboard.press("Enter")
    _tab_to(page, "details.group:has(input[value=location]) > summary")
    page.keyboard.press("Enter")
    _tab_to(page, "input[value=location]")
    page.keyboard.press("Space")
    _tab_to(page, "button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    assert Request.objects.get(email=email).categories == ["location"]


def test_a_whole_group_is_ticked_at_once_and_the_list_fits_a_phone(page: Page, site, unique_email):
    page.set_viewport_size(PHONE)
    page.goto(f"{site}/request/")
    page.get_by_label("Get a copy of my data").check()
    email = unique_email("group")
    page.get_by_label("Your email address").fill(email)
    page.get_by_text("Choose which kinds of data (optional)").click()
    # The groups are folded: the open list is a few screens long, not thousands of pixels.
    assert page.evaluate("document.documentElement.scrollHeight") < 2500
    assert page.evaluate("document.documentElement.scrollWidth > window.innerWidth") is False
    page.locator("summary", has_text="Your devices and where you are").click()
    group = page.get_by_label("All of “Your devices and where you are”")
    group.check()
    for label in ("Location", "Device and connection details"):
        expect(page.get_by_label(label, exact=True)).to_be_checked()
    page.get_by_label("Location", exact=True).uncheck()
    expect(group).not_to_be_checked()
    assert group.evaluate("box => box.indeterminate") is True
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    assert set(Request.objects.get(email=email).categories) == {"interactions.device_config", "interactions.error_reports", "other_input"}


def test_the_code_link_in_the_email_works_in_a_browser_that_never_saw_the_request(browser, site, mailoutbox, unique_email):
    email = unique_email("closed")
    filing = browser.new_context()
    _fill_form(filing.new_page(), site, type_label="Get a copy of my data", email=email)
    filing.close()
    [message] = [m for m in mailoutbox if m.to == [email]]
    link = re.search(r"enter the code here instead: (\S+)", message.body).group(1)
    fresh = browser.new_context()
    page = fresh.new_page()
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    _enter_code(page, code_from(mailoutbox, email))
    expect(page.get_by_role("heading", level=1)).to_have_text("We are checking your request")
    fresh.close()


def test_the_error_pages_are_whole_portal_pages_at_a_phone_width(page: Page, site, shots):
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto(f"{site}/no-such-page")
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    assert page.evaluate(BASICS) == {"lang": "en", "h1": 1, "unlabelled": [], "overflow": False}
    expect(page.get_by_role("main").get_by_role("link", name="Make a new request")).to_be_visible()
    shots(page, "portal-not-found")
    request = request_make(status="completed", email="gone@example.com")
    page.goto(f"{site}/api/v1/requests/{request.id}/download/expired-or-damaged")
    expect(page.get_by_role("heading", level=1)).to_have_text("This download link no longer works")
    assert page.evaluate(BASICS) == {"lang": "en", "h1": 1, "unlabelled": [], "overflow": False}
    shots(page, "portal-download-unavailable")
