"""The portal's script gives the request form the browser's own time zone."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from dsar.models import Request

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_the_request_form_files_in_the_browsers_time_zone(browser: Browser, site, unique_email):
    context = browser.new_context(timezone_id="Europe/Berlin")
    page = context.new_page()
    email = unique_email("berlin")
    page.goto(f"{site}/request/")
    page.get_by_label("Get a copy of my data").check()
    page.get_by_label("Your email address").fill(email)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/verify")
    assert Request.objects.values_list("time_zone", flat=True).get(email=email) == "Europe/Berlin"
    context.close()
