"""The staff console in Chromium against the live server and the real worker: a reviewer approves a
request and watches it complete, who may reach what, the TOTP set-up every staff member makes at
first sign-in, and keyboard use."""

from __future__ import annotations

import re
from base64 import b32decode

import pytest
from django.contrib.auth import get_user_model
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from dsar import services
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
    expect(page.get_by_role("table", name="Requests not yet finished")).to_contain_text("4")
    shot(page, "console-dashboard")
    page.get_by_role("link", name="Settings").click()
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
