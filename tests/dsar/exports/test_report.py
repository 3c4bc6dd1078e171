"""The archive's index.html: each category's words, its sources, and the person's first records."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from connectors.base import OBSERVED, Source
from dsar.exports.report import PREVIEW_RECORDS, report_category, report_render

from ...factories import request_make

pytestmark = pytest.mark.django_db
BROKER = Source("third_party", "Acme <Data> Ltd", "data_broker")


def _line(n: int, query: str) -> str:
    return json.dumps({"connector": "accounts", "system": "accounts.searches", "source": OBSERVED.as_dict(),
                       "collected_at": "2026-01-02T03:04:05+00:00", "fields": {"query": query, "meta": {"n": n}}})


def _page(records: int, lines: list[str], sources: list[Source]) -> str:
    request = request_make(status="processing", email="report@example.com")
    category = report_category("searches_commands", records=records, sources=sources, lines=lines)
    return report_render(request=request, categories=[category], generated_at=dt.datetime(2026, 5, 6, 7, 8, tzinfo=dt.UTC)).decode()


def test_the_page_says_what_a_category_is_why_it_is_kept_and_where_it_came_from():
    page = _page(1, [_line(1, "weather")], [OBSERVED, BROKER])
    assert "<h2 id=\"h-searches_commands\">Searches and commands</h2>" in page
    assert "The words you search for and the commands you give our products." in page
    assert "<li>Make search results better</li>" in page
    assert "<p>Until you delete them, and at most 18 months</p>" in page
    assert "<li>Our cloud hosting provider</li>" in page
    assert "We recorded it while you used our products (<code>observed</code>)" in page
    assert ("Another organisation gave it to us (<code>third_party</code>): Acme &lt;Data&gt; Ltd"
            " (kind: Data broker, <code>data_broker</code>)") in page
    assert "All 1 record are shown below" in page


def test_a_records_fields_are_shown_flattened_and_escaped():
    page = _page(1, [_line(7, "<script>alert(1)</script>")], [OBSERVED])
    assert '<tr><th scope="row"><code>query</code></th><td class="value">&lt;script&gt;alert(1)&lt;/script&gt;</td></tr>' in page
    assert '<tr><th scope="row"><code>meta.n</code></th><td class="value">7</td></tr>' in page
    assert "<script>alert(1)</script>" not in page
    assert '<time datetime="2026-01-02T03:04:05+00:00">2026-01-02T03:04:05+00:00</time>' in page


def test_a_long_category_shows_its_first_fifty_records_and_says_where_the_rest_are():
    assert PREVIEW_RECORDS == 50
    page = _page(60, [_line(n, f"query {n}") for n in range(60)], [OBSERVED])
    assert "Showing the first 50 of 60 records; all of them are in <code>data/searches_commands.json</code>" in page
    assert '<h4 id="r-searches_commands-50">Record 50</h4>' in page
    assert "Record 51" not in page and "query 49" in page and "query 50" not in page
