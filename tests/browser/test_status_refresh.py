"""The request's page refreshes itself, from a static script the site's CSP allows, and without
JavaScript offers a link that does the same."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from dsar import notifications, services

from ..factories import request_make

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_the_status_page_updates_itself_when_the_request_moves_on(page: Page, site):
    problems: list[str] = []

    def heard(message) -> None:
        # The browser asks for /favicon.ico on its own; the site has none, which is no fault of the page.
        if message.type in ("error", "warning") and not message.location.get("url", "").endswith("/favicon.ico"):
            problems.append(message.text)

    page.on("console", heard)
    page.on("pageerror", lambda error: problems.append(str(error)))
    request = request_make(status="pending_review", email="waiting@example.com")
    page.goto(notifications.status_url(request))
    expect(page.get_by_role("heading", level=1)).to_have_text("We are checking your request")
    assert page.locator("script:not([src])").count() == 0

    services.request_deny(request_id=request.id, actor="staff:test", reason="We could not match this address to an account.")

    # The script looks every ten seconds; the page reloads by itself, nobody touches it.
    expect(page.get_by_role("heading", level=1)).to_have_text("We could not carry out your request", timeout=30_000)
    expect(page.get_by_text("We could not match this address to an account.")).to_be_visible()
    assert problems == []


def test_without_javascript_the_page_offers_to_check_again(browser, site):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    request = request_make(status="pending_review", email="no.script@example.com")
    page.goto(notifications.status_url(request))
    expect(page.get_by_role("heading", level=1)).to_have_text("We are checking your request")
    services.request_deny(request_id=request.id, actor="staff:test", reason="We could not match this address to an account.")
    page.get_by_role("link", name="Check again now").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("We could not carry out your request")
    context.close()
