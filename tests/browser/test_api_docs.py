"""The API documentation page renders in a browser under the site's Content-Security-Policy."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_the_api_docs_page_renders_the_openapi_document(page, live_server, shot):
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.get_by_role("heading", name="DSAR workflow API")).to_be_visible(timeout=30_000)
    shot(page, "api-docs")
    expect(page.get_by_role("heading", name=re.compile("File an access or deletion request"))).to_be_visible()
