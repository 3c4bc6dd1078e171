"""The whole journey across both interfaces, in one headless Chromium: a person files an access
request in the portal and confirms it with the emailed code; a reviewer signs in to the console
(password and authenticator code) and approves it; the person's status page shows it completed,
and its download is the archive."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from dsar.staff import ROLE_REVIEWER, staff_user_ensure

from ..conftest import code_from

pytestmark = [pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-staff-passphrase"


def test_a_person_files_a_reviewer_approves_and_the_person_downloads_the_archive(browser, site, shot, mailoutbox):
    person = browser.new_page()
    person.goto(f"{site}/")
    person.get_by_role("link", name="Start a request").click()
    person.get_by_label("Get a copy of my data").check()
    person.get_by_label("Your email address").fill("bob@example.com")
    person.get_by_role("button", name="Continue").click()
    expect(person.get_by_role("heading", level=1)).to_have_text("Check your email")
    person.get_by_label("Code from the email").fill(code_from(mailoutbox, "bob@example.com"))
    person.get_by_role("button", name="Confirm").click()
    expect(person.get_by_role("heading", level=1)).to_have_text("We are checking your request")
    request_id = re.search(r"/requests/([0-9a-f-]{36})", person.url).group(1)

    user = staff_user_ensure(username="rev", role=ROLE_REVIEWER)
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    reviewer = browser.new_page()  # a separate browser context: the reviewer's own session
    reviewer.goto(f"{site}/console/")
    reviewer.get_by_label("Username").fill("rev")
    reviewer.get_by_label("Password").fill(PASSWORD)
    reviewer.get_by_role("button", name="Sign in").click()
    reviewer.get_by_label("Code from your authenticator app").fill(f"{totp(device.bin_key):06d}")  # staff's second factor
    reviewer.get_by_role("button", name="Continue").click()
    expect(reviewer.get_by_role("heading", name="Queue")).to_be_visible()
    reviewer.goto(f"{site}/console/requests/{request_id}")
    reviewer.get_by_role("button", name="Approve request").click()
    expect(reviewer.get_by_role("heading", level=1)).to_contain_text("Completed", timeout=120_000)

    person.reload()
    expect(person.get_by_role("heading", level=1)).to_contain_text("ready", timeout=30_000)
    shot(person, "journey-download-ready")
    with person.expect_download() as waiting:
        person.get_by_role("link", name=re.compile("Download your data")).click()
    archive = zipfile.ZipFile(io.BytesIO(open(waiting.value.path(), "rb").read()))
    assert archive.testzip() is None
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["request_id"] == request_id and manifest["subject_email"] == "bob@example.com"
    assert any(r["fields"].get("query") == "recipes" for r in json.loads(archive.read("data/searches_commands.json")))
