"""The archive's index.html: a summary first, each category's words and sources, and the person's
first records in words: labels for fields, times in their zone, conversations, files as links."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from connectors.base import OBSERVED, PROVIDED, Source
from dsar.exports.report import PREVIEW_RECORDS, report_category, report_render

from ...factories import request_make

pytestmark = pytest.mark.django_db
BROKER = Source("third_party", "Acme <Data> Ltd", "data_broker")


def _line(n: int, query: str, *, connector: str = "accounts", system: str = "accounts.searches", **fields) -> str:
    return json.dumps({"connector": connector, "system": system, "source": OBSERVED.as_dict(),
                       "collected_at": "2026-01-02T03:04:05+00:00", "fields": {"query": query, "meta": {"n": n}, **fields}})


def _render(categories: list, *, time_zone: str = "UTC") -> str:
    request = request_make(status="processing", email="report@example.com")
    request.time_zone = time_zone
    return report_render(request=request, categories=categories, generated_at=dt.datetime(2026, 5, 6, 7, 8, tzinfo=dt.UTC)).decode()


def _page(records: int, lines: list[str], sources: list[Source], *, time_zone: str = "UTC") -> str:
    category = report_category("searches_commands", records=records, sources=sources, lines=lines, connectors=["accounts"])
    return _render([category], time_zone=time_zone)


def _words(html: str) -> str:
    """The page as a reader sees it: tags gone, each run of white space one space."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_page_says_what_a_category_is_why_it_is_kept_and_where_it_came_from():
    page = _page(1, [_line(1, "weather")], [OBSERVED, BROKER])
    assert "<h2 id=\"h-searches_commands\">Searches and commands</h2>" in page
    assert "The words you search for and the commands you give our products." in page
    assert "<li>Make search results better</li>" in page
    assert "<p>Until you delete them, and at most 18 months</p>" in page
    assert "<li>Our cloud hosting provider</li>" in page
    assert "<li>We recorded it while you used our products</li>" in page
    assert "<li>Another organisation gave it to us: Acme &lt;Data&gt; Ltd (Data broker)</li>" in page
    assert "<p>We hold it in: Your account.</p>" in page
    assert "The record is shown below, and is also in <code>data/searches_commands.json</code>" in page


def test_a_records_fields_are_shown_by_their_labels_and_escaped():
    page = _page(1, [_line(7, "<script>alert(1)</script>", retained_until="2036-03-01")], [OBSERVED])
    assert '<dt>What you searched for</dt><dd class="value">&lt;script&gt;alert(1)&lt;/script&gt;</dd>' in page  # accounts.yaml's label
    assert '<dt>Meta</dt><dd class="value"><dl class="values"><dt>N</dt><dd>7</dd></dl></dd>' in page  # no label: the name in words
    assert '<dt>Retained until</dt><dd class="value"><time datetime="2036-03-01">1 March 2036</time></dd>' in page
    assert "<dt>Held in</dt><dd>Your account: your searches</dd>" in page
    assert "<script>alert(1)</script>" not in page
    assert "accounts.searches" not in page and ">query<" not in page and "retained_until" not in page


def test_times_are_shown_in_the_persons_time_zone_which_the_page_names():
    page = _page(1, [_line(1, "weather", at="2026-07-01T22:30:00+00:00")], [OBSERVED], time_zone="Europe/Berlin")
    assert '<dt>Collected</dt><dd><time datetime="2026-01-02T03:04:05+00:00">2 January 2026, 04:04</time></dd>' in page
    assert '<dt>At</dt><dd class="value"><time datetime="2026-07-01T22:30:00+00:00">2 July 2026, 00:30</time></dd>' in page
    assert "This report made on 6 May 2026, 09:08 Times are shown in the Europe/Berlin time zone" in _words(page)
    assert "T03:04:05" not in _words(page)


def test_a_conversation_reads_as_who_said_what_and_when_in_the_order_it_was_said():
    messages = [{"from": "agent", "body": "Have you tried turning it off?", "at": "2026-02-01T10:05:00+00:00", "agent_name": "Sam"},
                {"from": "customer", "body": "My order <b>never</b> came.", "at": "2026-02-01T10:00:00+00:00"}]
    line = json.dumps({"connector": "support", "system": "support.tickets", "source": PROVIDED.as_dict(), "collected_at": None,
                       "fields": {"ticket_id": 41, "subject": "Lost order", "messages": messages}})
    category = report_category("interactions.support", records=1, sources=[PROVIDED], lines=[line], connectors=["support"])
    page = _render([category])
    assert ('<ol class="conversation"><li class="said mine"><p class="who"><strong>You</strong> '
            '<time datetime="2026-02-01T10:00:00+00:00">1 February 2026, 10:00</time></p>'
            '<p class="words">My order &lt;b&gt;never&lt;/b&gt; came.</p></li>'
            '<li class="said"><p class="who"><strong>Our support team (Sam)</strong> '
            '<time datetime="2026-02-01T10:05:00+00:00">1 February 2026, 10:05</time></p>'
            '<p class="words">Have you tried turning it off?</p></li></ol>') in page
    assert "<dt>Ticket number</dt>" in page and "<dt>Messages</dt>" in page  # support.yaml's labels
    assert "<dt>Held in</dt><dd>Customer support: your conversations</dd>" in page


def test_stored_files_are_relative_links_and_pictures_thumbnails_beside_them():
    lines = [json.dumps({"connector": "content", "system": "content", "source": PROVIDED.as_dict(), "collected_at": None,
                         "fields": {"file": path, "bytes": size}})
             for path, size in (("files/content/photos/cat one.JPG", 2048), ("files/content/notes/a.pdf", 6))]
    category = report_category("content", records=2, sources=[PROVIDED], lines=lines, connectors=["content"])
    page = _render([category])
    assert ('<a class="thumb" href="files/content/photos/cat%20one.JPG"><img src="files/content/photos/cat%20one.JPG" '
            'alt="Picture: cat one.JPG" loading="lazy"></a><a href="files/content/photos/cat%20one.JPG">cat one.JPG</a>') in page
    assert '<dd class="value"><a href="files/content/notes/a.pdf">a.pdf</a></dd>' in page
    assert '<dt>Bytes</dt><dd class="value">2.0\xa0KB</dd>' in page
    assert page.count("<img ") == 1
    assert "All 2 records are shown below" in page


def test_a_summary_comes_first_saying_per_category_how_much_from_where_why_and_until_when():
    held = report_category("searches_commands", records=2, sources=[OBSERVED], connectors=["accounts"],
                           lines=[_line(1, "a"), _line(2, "b")])
    empty = report_category("voice", records=0, sources=[], lines=[])
    page = _render([held, empty])
    summary = page[page.index('<section aria-labelledby="summary">'):page.index("</section>")]
    assert page.index('aria-labelledby="summary"') < page.index('aria-labelledby="how-to-read"') < page.index('id="cat-searches_commands"')
    assert _words(summary).startswith("Summary: what we hold about you")
    assert ('<th scope="row"><a href="#in-searches_commands">Searches and commands</a></th>'
            '\n          <td class="num" data-label="Records">2 records</td>') in summary
    assert ("Searches and commands 2 records Your account Give you search results and carry out your commands; "
            "Make search results better Until you delete them, and at most 18 months") in _words(summary)
    assert "We hold nothing about you of these kinds you asked about: Voice recordings." in _words(summary)
    assert summary.count("<tr>") == 2  # the heading's row and the one kind held
    assert "<span class=\"muted\">2 records</span>" in page and "<span class=\"muted\">0 records</span>" in page


def test_each_category_is_folded_and_its_summary_link_opens_it():
    page = _page(1, [_line(1, "weather")], [OBSERVED])
    assert re.search(r'<section id="cat-searches_commands" aria-labelledby="h-searches_commands">\s*<details>\s*<summary><h2', page)
    assert '<div id="in-searches_commands">' in page  # inside the details: following the link unfolds it


def test_a_long_category_shows_its_first_fifty_records_and_says_where_the_rest_are():
    assert PREVIEW_RECORDS == 50
    page = _page(60, [_line(n, f"query {n}") for n in range(60)], [OBSERVED])
    assert "Showing the first 50 of 60 records; all of them are in <code>data/searches_commands.json</code>" in page
    assert '<h4 id="r-searches_commands-50">Record 50</h4>' in page
    assert "Record 51" not in page and "query 49" in page and "query 50" not in page


def test_the_page_has_no_sideways_scroll_rules_that_a_phone_would_need_and_no_ids_in_its_title():
    page = _page(1, [_line(1, "weather")], [OBSERVED])
    assert "<title>Your personal data</title>" in page
    assert "table.stack" in page and "@media (max-width: 40rem)" in page  # the style sheet is inside the page: it opens offline
    assert 'class="stack"' in page
