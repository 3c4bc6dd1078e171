"""The export's report in a real browser, at a phone's width: in the portal once the person proves
the address again, and as index.html opened from the unzipped archive."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from dsar import notifications
from dsar.models import Request
from estate.loader import estate_load, estate_parse

from ..conftest import CODE
from ..support.flows import approve, download, file_request, release_as_it_is, subject_view, wait_until_final
from ..support.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True)]
PHONE = {"width": 320, "height": 700}
# One h1, and nothing wider than the screen: no sideways scrolling.
BASICS = """() => ({h1: document.querySelectorAll("h1").length,
                    overflow: document.documentElement.scrollWidth > window.innerWidth})"""


@pytest.fixture
def alices_export(api, reviewer, mailoutbox, unique_email, site):
    """The demo's Alice (data in every category, in all five systems) under a new address: her
    access request run by the worker and released; the request and its downloaded archive."""
    alice = json.loads(open("estate/demo.json").read())["subjects"][0]
    alice["email"] = unique_email("view")
    estate_load(estate_parse({"subjects": [alice]}))
    request_id, token = file_request(api, mailoutbox, type="access", email=alice["email"])
    # Her time zone; and her code at filing a while ago, as it is by the time an export is ready (one code a minute).
    Request.objects.filter(pk=request_id).update(time_zone="Asia/Tokyo", code_sent_at=timezone.now() - dt.timedelta(minutes=5))
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"
    release_as_it_is(reviewer, request_id)
    return Request.objects.get(pk=request_id), download(api, subject_view(api, request_id, token)["download_url"])


def test_the_person_sees_the_report_in_the_portal_on_a_phone_after_a_fresh_code(browser, site, shot, mailoutbox, alices_export):
    request, _archive = alices_export
    page = browser.new_page(viewport=PHONE)
    refused = []  # what the Content-Security-Policy blocked: nothing, no inline style or script
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None)
    page.goto(notifications.status_url(request))
    page.get_by_role("link", name="See your data in your browser instead").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("See your data in your browser")
    page.get_by_role("button", name="Email me a code").click()
    [email] = wait_for(lambda: [m for m in mailoutbox if m.to == [request.email] and m.subject.endswith("Your code to see your data")],
                       what="the code to see the data")
    page.get_by_label("Code from the email").fill(CODE.search(email.body).group(1))
    page.get_by_role("button", name="Show my data").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your personal data")
    assert page.evaluate(BASICS) == {"h1": 1, "overflow": False}
    expect(page.get_by_text("Times are shown in")).to_be_visible()
    expect(page.get_by_text("the Asia/Tokyo time zone")).to_be_visible()

    # The summary's link unfolds its category; a conversation reads as one; a picture is served to this browser.
    page.get_by_role("link", name="Help and support requests").first.click()
    support = page.locator("#in-interactionssupport")
    expect(support).to_be_visible()
    expect(support.locator("ol.conversation li").first).to_be_visible()
    picture = page.locator("img[alt^='Picture: ']").first
    served = page.request.get(picture.evaluate("img => img.src"))
    assert served.status == 200 and served.headers["content-type"] == "image/jpeg"
    assert page.evaluate(BASICS) == {"h1": 1, "overflow": False}
    shot(page, "export-view-phone")
    assert refused == []

    stranger = browser.new_page(viewport=PHONE)  # another browser: its own session, not proven
    assert stranger.request.get(picture.evaluate("img => img.src")).status == 403


def test_the_archives_report_opens_from_the_unzipped_folder_on_a_phone_with_its_files(browser, shot, tmp_path, alices_export):
    _request, archive = alices_export
    archive.extractall(tmp_path)
    page = browser.new_page(viewport=PHONE)
    page.goto((tmp_path / "index.html").as_uri())
    expect(page.get_by_role("heading", level=1)).to_have_text("Your personal data")
    assert page.evaluate(BASICS) == {"h1": 1, "overflow": False}
    shot(page, "export-report-phone")
    expect(page.get_by_text("the Asia/Tokyo time zone")).to_be_visible()  # the zone she filed from, by the worker
    collapsed = page.evaluate("document.documentElement.scrollHeight")
    assert collapsed < 13_000, collapsed  # folded, a summary in stacked rows: no longer 22,500 px at 390 px wide, at 320 px
    page.get_by_role("link", name="Pictures").first.click()  # the summary's link unfolds it
    link = page.locator("#in-images a:not(.thumb)").first
    expect(link).to_be_visible()
    assert (tmp_path / link.get_attribute("href")).is_file()  # relative, to the file beside the report
    for opened in page.locator("details").all():
        opened.evaluate("d => d.open = true")
    assert page.evaluate(BASICS) == {"h1": 1, "overflow": False}
    shot(page, "export-report-phone-open")
