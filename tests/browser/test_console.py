"""The staff console in Chromium against the live server and the real worker: a reviewer approves a
request and watches it complete, who may reach what, the TOTP set-up every staff member makes at
first sign-in, and keyboard use."""

from __future__ import annotations

import re
from base64 import b32decode

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Browser, expect

from dsar import services
from dsar.lifecycle import audit_record
from dsar.models import ConnectorTask, Request
from dsar.staff import ROLE_ADMIN, ROLE_REVIEWER, staff_setup_code_issue, staff_user_ensure

from ..conftest import code_from
from ..factories import request_make
from ..support.flows import wait_until_final

pytestmark = [pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-staff-passphrase"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def _staff(username: str, role: str):
    user = staff_user_ensure(username=username, role=role)
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return user


def _staff_with_app(username: str, role: str) -> TOTPDevice:
    """A staff member who has set up their authenticator app: the device it holds."""
    return TOTPDevice.objects.create(user=_staff(username, role), name="phone", confirmed=True)


def _sign_in(page, site: str, username: str, device: TOTPDevice | None = None, shot=None) -> None:
    """Sign in with the password, then with the code `device` shows now (every staff member has a second factor)."""
    page.set_viewport_size(DESKTOP)
    page.goto(f"{site}/console/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    if shot:
        shot(page, "console-login")
    page.get_by_role("button", name="Sign in").click()
    if device is not None:
        expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
        page.get_by_label("Code from your authenticator app").fill(f"{totp(device.bin_key):06d}")
        page.get_by_role("button", name="Continue").click()


def _pending_request(mailoutbox, email: str) -> str:
    """A verified access request waiting for review, filed the way the person files it."""
    request = services.request_create(type="access", email=email)
    services.request_verify(request_id=request.pk, code=code_from(mailoutbox, email))
    return str(request.pk)


def test_a_reviewer_finds_a_pending_request_approves_it_and_sees_it_complete(page, site, shot, mailoutbox):
    request_id = _pending_request(mailoutbox, "alice@example.com")
    _sign_in(page, site, "rita", _staff_with_app("rita", ROLE_REVIEWER), shot)
    expect(page.get_by_role("heading", name="Queue")).to_be_visible()

    page.get_by_label(re.compile("^Search")).fill("ALICE@example")
    page.get_by_label("Status").select_option("pending_review")
    page.get_by_role("button", name="Show requests").click()
    row = page.get_by_role("row").filter(has_text="alice@example.com")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Pending Review")
    expect(row).to_contain_text("days left")
    shot(page, "console-queue")
    page.set_viewport_size(PHONE)
    shot(page, "console-queue-phone")
    page.set_viewport_size(DESKTOP)

    row.get_by_role("link").click()
    expect(page).to_have_url(re.compile(f"/console/requests/{request_id}$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Pending Review")
    shot(page, "console-request-pending")
    page.get_by_label("Note").first.fill("Identity checked against the account.")
    page.get_by_role("button", name="Approve request").click()
    expect(page.get_by_role("status").filter(has_text="Approved")).to_be_visible()

    # The page asks for the status while the connectors run and reloads itself when they finish.
    expect(page.get_by_role("heading", level=1)).to_contain_text("Completed", timeout=120_000)
    summary = page.get_by_role("region", name="Records by category")
    expect(summary).to_contain_text("Name and contact details")
    expect(page.get_by_role("heading", name="Export summary")).to_be_visible()
    expect(page.get_by_role("table", name="Audit trail, oldest first")).to_contain_text("staff:rita")
    shot(page, "console-request-completed")


def test_a_reviewer_cannot_reach_the_staff_page_and_a_signed_out_visitor_lands_on_sign_in(page, site):
    _sign_in(page, site, "rita", _staff_with_app("rita", ROLE_REVIEWER))
    expect(page.get_by_role("navigation", name="Console").get_by_role("link", name="Staff")).to_have_count(0)
    response = page.goto(f"{site}/console/staff")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()

    page.get_by_role("button", name=re.compile("Sign out")).click()
    expect(page).to_have_url(re.compile("/console/login/$"))
    page.goto(f"{site}/console/")
    expect(page).to_have_url(re.compile(r"/console/login/\?next=/console/$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_reviewer_sets_up_totp_with_the_setup_code_before_reaching_the_queue(page, site):
    rita = _staff("rita", ROLE_REVIEWER)
    setup_code = staff_setup_code_issue(user_id=rita.pk)  # as an admin would give it
    _sign_in(page, site, "rita")
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    expect(page.get_by_text("Every staff member needs a code from an authenticator app")).to_be_visible()
    expect(page.get_by_role("navigation", name="Console").get_by_role("link", name="Queue")).to_have_count(0)
    page.goto(f"{site}/console/dashboard")
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()

    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Setup code from an admin").fill(setup_code)
    page.get_by_label("Code from your authenticator app").fill(f"{totp(b32decode(secret)):06d}")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_an_admin_sets_up_totp_and_reaches_the_staff_page(page, site, shot):
    for status in ("pending_review", "pending_review", "processing", "unverified"):
        request_make(status=status)
    _staff("ada", ROLE_ADMIN)
    _staff("rita", ROLE_REVIEWER)
    setup_code = staff_setup_code_issue(user_id=get_user_model().objects.get(username="ada").pk)  # as the operator would
    _sign_in(page, site, "ada")
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    shot(page, "console-totp-setup")

    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Setup code from an admin").fill(setup_code)
    page.get_by_label("Code from your authenticator app").fill(f"{totp(b32decode(secret)):06d}")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Queue")).to_be_visible()

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Staff").click()
    expect(page.get_by_role("heading", name="Staff", exact=True)).to_be_visible()
    ada = page.get_by_role("row").filter(has_text="ada")
    expect(ada).to_contain_text("Set up")
    expect(page.get_by_role("row").filter(has_text="rita")).to_contain_text("Not set up")
    shot(page, "console-staff")

    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    # Two pending, one processing; the unverified one waits for the person, not staff.
    expect(page.get_by_role("table", name=re.compile("^Requests not yet finished")).locator("tfoot")).to_contain_text("3")
    shot(page, "console-dashboard")
    page.get_by_role("link", name="Settings", exact=True).click()
    expect(page.get_by_role("table", name=re.compile("configured systems"))).to_contain_text("accounts")
    shot(page, "console-settings")


def test_a_reviewer_approves_with_the_keyboard_alone(page, site, mailoutbox):
    request_id = _pending_request(mailoutbox, "bob@example.com")
    _sign_in(page, site, "rita", _staff_with_app("rita", ROLE_REVIEWER))
    page.goto(f"{site}/console/requests/{request_id}")

    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    for _ in range(60):
        page.keyboard.press("Tab")
        focused = page.evaluate("[document.activeElement.tagName, document.activeElement.textContent.trim()]")
        if focused == ["BUTTON", "Approve request"]:
            break
    else:
        pytest.fail("Tab never reached the Approve button")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"  # focus is visible
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Approved")).to_be_visible()
    assert wait_until_final(request_id).status == "completed"


NARROW = {"width": 320, "height": 800}
# Nothing wider than the window: a wide table scrolls inside its own box, never the page.
OVERFLOW = """() => [...document.querySelectorAll("body *")]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest(".table-wrap"))
  .map(e => e.tagName + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : "")).slice(0, 5)"""


def test_every_console_page_is_usable_at_320_px_without_sideways_scrolling(page, site, mailoutbox):
    failed = request_make(status="failed", email="a-rather-long-address-for-a-narrow-screen@example.com")
    ConnectorTask.objects.create(request=failed, connector="accounts", status="failed", attempts=3,
                                 last_error="ConnectionError: the accounts database did not answer within 30 seconds " * 3)
    with transaction.atomic():
        audit_record(failed, actor="staff:ada", action="noted", note="A long note " * 30)
    for status in ("pending_review", "processing", "unverified"):
        request_make(status=status)
    device = _staff_with_app("ada", ROLE_ADMIN)
    _sign_in(page, site, "ada", device)
    page.set_viewport_size(NARROW)
    pages = ["/console/", "/console/?show=all", f"/console/requests/{failed.pk}", "/console/dashboard", "/console/metrics",
             "/console/systems", "/console/manual", "/console/recipients", "/console/staff", "/console/settings",
             "/console/preferences", "/console/two-factor/setup"]
    for path in pages:
        page.goto(f"{site}{path}")
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        wide = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert (path, wide, page.evaluate(OVERFLOW)) == (path, 0, []), path
    page.get_by_role("button", name=re.compile("Sign out")).click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") == 0


def test_a_reviewer_denies_two_requests_at_once_without_javascript_and_reads_which_one_was_refused(browser: Browser, site):
    first, second = request_make(status="pending_review", email="first@example.com"), request_make(status="pending_review",
                                                                                                   email="second@example.com")
    moved_on = request_make(status="pending_review", email="moved@example.com")
    device = _staff_with_app("rita", ROLE_REVIEWER)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    _sign_in(page, site, "rita", device)
    expect(page.get_by_role("heading", name="Queue")).to_be_visible()
    for email in ("first@example.com", "second@example.com", "moved@example.com"):
        page.get_by_label(f"Select the request from {email}").check()
    services.request_approve(request_id=moved_on.pk, actor="staff:rob")  # someone else acts on it in between
    page.get_by_label("Deny them").check()
    page.get_by_label("Reason").fill("We hold no data about you.")
    page.get_by_role("button", name="Approve or deny the requests ticked").click()
    expect(page.get_by_role("status")).to_contain_text("Denied 2 requests: first@example.com, second@example.com.")
    # The worker may finish it before the page is sent: processing or completed, it is no longer for review.
    expect(page.get_by_role("alert")).to_contain_text(
        re.compile(r"Not done for moved@example\.com: This request is (processing|completed); it cannot be denied\."))
    assert [Request.objects.get(pk=r.pk).status for r in (first, second)] == ["denied", "denied"]
    assert Request.objects.get(pk=moved_on.pk).status in ("processing", "completed")
    context.close()


def test_the_console_gives_times_in_the_browsers_time_zone_from_sign_in(browser: Browser, site):
    request_make(status="pending_review", email="one@example.com")
    device = _staff_with_app("rita", ROLE_REVIEWER)
    context = browser.new_context(timezone_id="Europe/Berlin")
    page = context.new_page()
    _sign_in(page, site, "rita", device)
    expect(page.get_by_text("Times are in Europe/Berlin.")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="one@example.com")).to_contain_text("just now")
    context.close()
