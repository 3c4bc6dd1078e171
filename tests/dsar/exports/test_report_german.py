"""The export's report in the person's language: a request filed in German gets its index.html in
German, headings, sentences and dates ("6. Mai 2026"), whatever language the worker or the browser
that made its parts was in; one filed in English reads as it always has. The taxonomy's own wording
(category labels, descriptions) is translated elsewhere and not asserted here."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from zoneinfo import ZoneInfo

import pytest
from django.utils import translation
from django.utils.formats import date_format

from connectors.base import OBSERVED
from dsar.errors import NotFound
from dsar.exports import viewing
from dsar.exports.report import report_category, report_render
from dsar.templatetags.export_report import time_html
from estate.loader import estate_load, estate_parse

from ...factories import request_make
from ...support.flows import approve, download, file_request, subject_view, wait_until_final

GENERATED = dt.datetime(2026, 5, 6, 7, 8, tzinfo=dt.UTC)


def _words(html: str) -> str:
    """The page as a reader sees it: tags gone, each run of white space one space."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _line(query: str) -> str:
    return json.dumps({"connector": "accounts", "system": "accounts.searches", "source": OBSERVED.as_dict(),
                       "collected_at": "2026-01-02T03:04:05+00:00", "fields": {"query": query}})


def _report(language: str, **changes) -> str:
    """A report of one category holding two records and one holding none, in `language`; the
    categories are made in English, as a worker with no language of its own makes them."""
    request = request_make(status="processing", email="bericht@example.com")
    request.language, request.time_zone = language, "Europe/Berlin"
    for name, value in changes.items():
        setattr(request, name, value)
    with translation.override("en"):
        held = report_category("searches_commands", records=2, sources=[OBSERVED], lines=[_line("wetter"), _line("zug")],
                               connectors=["accounts"])
        empty = report_category("voice", records=0, sources=[], lines=[])
    return report_render(request=request, categories=[held, empty], generated_at=GENERATED).decode()


@pytest.mark.django_db
def test_a_german_requests_report_has_german_headings_sentences_and_dates():
    page = _report("de")
    said = _words(page)

    assert '<html lang="de">' in page
    assert "<title>Ihre personenbezogenen Daten</title>" in page
    assert ("Ihre personenbezogenen Daten Sie haben uns gefragt, welche personenbezogenen Daten wir über Sie gespeichert haben. "
            "Diese Seite erklärt, was wir gefunden haben.") in said
    assert "Art der Anfrage Auskunft" in said
    assert "Bericht erstellt am 6. Mai 2026, 09:08 Zeitangaben in der Zeitzone Europe/Berlin" in said
    assert said.count("Übersicht: was wir über Sie gespeichert haben") == 1
    assert 'data-label="Datensätze">2 Datensätze</td>' in page
    assert '<span class="muted">0 Datensätze</span>' in page
    assert "So lesen Sie dieses Archiv" in said
    assert "Von Kartennummern zeigen wir nur die letzten 4 Ziffern." in said
    # A category's parts, though it was made in English.
    assert "<h3>Wozu wir diese Daten verwenden</h3>" in page and "<h3>Rechtsgrundlage</h3>" in page
    assert "<h3>Woher diese Daten stammen</h3>" in page and "<h3>Ihre Datensätze</h3>" in page
    assert "In dieser Kategorie haben wir keine Daten über Sie gespeichert." in said
    assert ("Alle 2 Datensätze werden unten angezeigt und sind auch in data/searches_commands.json und "
            "data/searches_commands.csv enthalten.") in said
    # A record, its time in the person's zone.
    assert ('<h4 id="r-searches_commands-1">Datensatz 1</h4><dl class="meta"><dt>Gespeichert in</dt>') in page
    assert '<dt>Erhoben</dt><dd><time datetime="2026-01-02T03:04:05+00:00">2. Januar 2026, 04:04</time></dd>' in page
    assert "Was die Begriffe bedeuten" in said
    assert ("Ihre Rechte und wie Sie sie ausüben Das Gesetz gibt Ihnen diese Rechte an Ihren personenbezogenen Daten. "
            "Ihre Ausübung kostet Sie nichts.") in said
    assert "Ihre Daten einsehen Verlangen Sie eine Kopie der personenbezogenen Daten" in said
    assert "Nutzen Sie unser Anfrageformular:" in said
    assert "Fragen oder Bedenken" in said
    assert ("haben Sie das Recht, sich bei einer Datenschutz-Aufsichtsbehörde zu beschweren, etwa bei der in dem Land, "
            "in dem Sie wohnen oder arbeiten, und das Recht, die Sache vor Gericht zu bringen.") in said
    assert "Summary" not in said and "Your rights" not in said and "What the terms mean" not in said


@pytest.mark.django_db
def test_an_english_requests_report_is_unchanged_beside_a_german_one():
    _report("de")  # each language's parts are rendered once and kept: German ones must not leak into English
    page = _report("en")
    said = _words(page)

    assert '<html lang="en">' in page
    assert "Type of request Access" in said
    assert "This report made on 6 May 2026, 09:08 Times are shown in the Europe/Berlin time zone" in said
    assert '<dt>Collected</dt><dd><time datetime="2026-01-02T03:04:05+00:00">2 January 2026, 04:04</time></dd>' in page
    assert "<h3>Why we use it</h3>" in page and "What the terms mean" in said
    assert "Summary: what we hold about you" in said
    assert "All 2 records are shown below, and are also in data/searches_commands.json and data/searches_commands.csv" in said
    assert ("Your rights and how to use them The law gives you these rights over your personal data. "
            "Using them costs you nothing.") in said
    assert "Datensätze" not in said and "Zeitzone" not in said


@pytest.mark.django_db
def test_a_german_report_says_the_period_and_the_parts_in_german():
    request = request_make(status="processing", email="teile@example.com")
    request.language, request.time_zone = "de", "Europe/Berlin"
    request.date_from, request.date_to = dt.date(2024, 1, 1), dt.date(2024, 3, 31)
    parts = [{"number": 1, "files": 1, "categories": []}, {"number": 2, "files": 0, "categories": ["voice"]}]
    ranged = report_render(request=request, categories=[], generated_at=GENERATED, parts=parts,
                           date_range={"not_applied": [{"system": "crm", "where": ["crm"]}]}).decode()
    said = _words(ranged)

    assert "Der von Ihnen gewählte Zeitraum" in said
    assert ("Sie haben nur Daten vom 1. Januar 2024 bis zum 31. März 2024 angefordert, gerechnet in Ihrer Zeitzone "
            "(Europe/Berlin). Dieses Archiv enthält die Daten, die erkennbar aus diesem Zeitraum stammen, und Daten, die gar "
            "kein Datum haben.") in said
    assert "<li>Unser System „crm“</li>" in ranged
    assert "Dieses Archiv besteht aus 2 Teilen" in said
    assert "<li><strong>Teil 1</strong>: dieser Bericht und das Inhaltsverzeichnis; 1 gespeicherte Datei</li>" in ranged
    assert "<li><strong>Teil 2</strong>: Ihre Daten zu: " in ranged


@pytest.mark.parametrize("language", ["en", "de"])
def test_the_reports_times_read_as_the_languages_formats_write_them(language):
    """time_html writes by a translated pattern, for speed: it must say what Django's formats of the
    language (dsar/formats_locale) say."""
    zone = ZoneInfo("Europe/Berlin")
    at = dt.datetime(2026, 12, 7, 3, 4, tzinfo=dt.UTC)
    with translation.override(language):
        formatted = date_format(at.astimezone(zone), "DATETIME_FORMAT"), date_format(at.date(), "DATE_FORMAT")
        assert time_html(at, zone) == f'<time datetime="2026-12-07T03:04:00+00:00">{formatted[0]}</time>'
        assert time_html(at.date(), zone) == f'<time datetime="2026-12-07">{formatted[1]}</time>'
    with translation.override("de"):
        assert time_html(at, zone) == '<time datetime="2026-12-07T03:04:00+00:00">7. Dezember 2026, 04:04</time>'


@pytest.mark.django_db
def test_seeing_an_export_answers_in_the_persons_language():
    with translation.override("de"), pytest.raises(NotFound) as refused:
        viewing.export_view_code_send(request_id=uuid.uuid4())
    assert refused.value.detail == "Diese Anfrage gibt es nicht."


@pytest.mark.django_db(transaction=True)
def test_an_access_request_filed_in_german_gets_its_archives_report_in_german(api, reviewer, mailoutbox, unique_email, worker):
    email = unique_email("deutsch")
    estate_load(estate_parse({"subjects": [{"email": email, "accounts": {"name": "Dora Deutsch", "interests": ["Drachen"]}}]}))
    request_id, token = file_request(api, mailoutbox, type="access", email=email, language="de", time_zone="Europe/Berlin",
                                     categories=["interests"])
    approve(reviewer, request_id)
    assert wait_until_final(request_id).status == "completed"

    report = _words(download(api, subject_view(api, request_id, token)["download_url"]).read("index.html").decode())
    assert "Ihre personenbezogenen Daten" in report and "Art der Anfrage Auskunft" in report
    assert "Übersicht: was wir über Sie gespeichert haben" in report and "1 Datensatz" in report
    assert "Wozu wir diese Daten verwenden" in report and "Ihre Rechte und wie Sie sie ausüben" in report
    assert "Summary: what we hold about you" not in report
