"""The portal's whole journey in a browser with JavaScript turned off: scripts only improve the
pages, so a person files a request, confirms it with the emailed code, follows it on its page and
downloads the export, or files a deletion through its warning and reads the receipt."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from playwright.sync_api import Page, expect

from dsar import services
from dsar.models import Request
from estate.loader import estate_load, estate_parse

from ..conftest import code_from
from ..support.flows import wait_until_final

pytestmark = [pytest.mark.django_db(transaction=True)]
REQUEST_ID = re.compile(r"/requests/([0-9a-f-]{36})$")


@pytest.fixture
def page(browser):
    """A page in a browser context of its own that runs no JavaScript at all, in Berlin: the portal's
    script would give the request that time zone, so a request filed in UTC shows no script ran."""
    context = browser.new_context(java_script_enabled=False, timezone_id="Europe/Berlin")
    yield context.new_page()
    context.close()


def _file(page: Page, site: str, *, type_label: str, email: str) -> None:
    """From the start page, fill in the request form and send it."""
    page.goto(f"{site}/")
    page.get_by_role("link", name="Start a request").click()
    page.get_by_label(type_label).check()
    page.get_by_label("Your email address").fill(email)
    page.get_by_role("button", name="Continue").click()


def _enter_code(page: Page, mailoutbox, email: str) -> str:
    """Confirm the request with the emailed code; returns its id once its page shows."""
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    page.get_by_label("Code from the email").fill(code_from(mailoutbox, email))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("We are checking your request")
    return REQUEST_ID.search(page.url).group(1)


def test_an_access_request_from_the_form_to_the_download_without_javascript(page: Page, site, shot, mailoutbox):
    _file(page, site, type_label="Get a copy of my data", email="bob@example.com")
    request_id = _enter_code(page, mailoutbox, "bob@example.com")
    assert Request.objects.values_list("status", "time_zone").get(pk=request_id) == ("pending_review", "UTC")

    services.request_approve(request_id=request_id, actor="staff:test")
    assert wait_until_final(request_id).status == "completed"
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your data is ready to download")
    shot(page, "no-javascript-download-ready")
    with page.expect_download() as waiting:
        page.get_by_role("link", name=re.compile("Download your data")).click()
    archive = zipfile.ZipFile(io.BytesIO(open(waiting.value.path(), "rb").read()))
    assert archive.testzip() is None
    manifest = json.loads(archive.read("manifest.json"))
    assert (manifest["request_id"], manifest["subject_email"]) == (request_id, "bob@example.com")


def test_a_deletion_through_its_warning_to_the_receipt_without_javascript(page: Page, site, shot, mailoutbox, unique_email):
    email = unique_email("nojs-erin")
    estate_load(estate_parse({"subjects": [{"email": email, "accounts": {"name": "Erin Example", "searches": ["bike shop"]}}]}))
    _file(page, site, type_label="Delete my data", email=email)
    expect(page.get_by_role("heading", level=1)).to_have_text("Before we delete your data")
    page.get_by_role("button", name="Send my deletion request").click()
    expect(page.get_by_role("alert")).to_contain_text("Tick the box to confirm")
    assert not Request.objects.filter(email=email).exists()
    page.get_by_label(re.compile("I understand that my data will be deleted")).check()
    page.get_by_role("button", name="Send my deletion request").click()
    request_id = _enter_code(page, mailoutbox, email)

    services.request_approve(request_id=request_id, actor="staff:test")
    assert wait_until_final(request_id).status == "completed"
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("We deleted your data")
    expect(page.locator("main")).to_contain_text("Searches and commands")
    shot(page, "no-javascript-deletion-receipt")
