"""Seeing an export in the browser: a fresh emailed code first, then the report from the stored
archive, a category's records a page at a time, and its files only to that browser, for a while."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest
import time_machine
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dsar.models import AuditEntry, Export, Request

from ..conftest import code_from
from ..factories import request_make

pytestmark = pytest.mark.django_db
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
PDF = b"%PDF-1.4 a letter\n"


def _line(n: int) -> str:
    return json.dumps({"connector": "accounts", "system": "accounts.searches", "source": {"type": "observed", "name": None, "kind": None},
                       "collected_at": "2026-01-02T03:04:05+00:00", "fields": {"query": f"query number {n}"}})


def _archive(searches: int, date_range: dict | None = None) -> bytes:
    """An archive as the contract lays it out: 45 searches, and two stored files with their records."""
    files = [{"connector": "content", "system": "content", "source": {"type": "provided", "name": None, "kind": None},
              "collected_at": None, "fields": {"file": path, "bytes": size}}
             for path, size in (("files/content/photos/cat one.png", len(PNG)), ("files/content/letter.pdf", len(PDF)))]
    manifest = {"format_version": 1, "categories": {
        "searches_commands": {"label": "Searches and commands", "records": searches, "connectors": ["accounts"],
                              "sources": [{"type": "observed", "name": None, "kind": None}], "recipients": [], "automated_decisions": None},
        "content": {"label": "Your files and messages", "records": 2, "connectors": ["content"],
                    "sources": [{"type": "provided", "name": None, "kind": None}], "recipients": [], "automated_decisions": None}}}
    if date_range:
        manifest["date_range"] = date_range
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("files/content/photos/cat one.png", PNG)
        archive.writestr("files/content/letter.pdf", PDF)
        archive.writestr("data/searches_commands.json", "[\n" + ",\n".join(_line(n) for n in range(1, searches + 1)) + "\n]\n")
        archive.writestr("data/content.json", "[\n" + ",\n".join(json.dumps(f) for f in files) + "\n]\n")
        archive.writestr("index.html", "<h1>Your personal data</h1>")
        archive.writestr("manifest.json", json.dumps(manifest))
    return buffer.getvalue()


def _export(email: str, *, searches: int = 45, released: bool = True, expires_in: dt.timedelta = dt.timedelta(days=7),
            date_range: dict | None = None) -> Export:
    request = request_make(status="completed", email=email)
    request.time_zone = "Europe/Berlin"
    request.save(update_fields=["time_zone"])
    now = timezone.now()
    data = _archive(searches, date_range)
    path = default_storage.save(f"exports/{request.pk}/view.zip", ContentFile(data))
    return Export.objects.create(request=request, path=path, bytes=len(data), sha256="0" * 64, created_at=now, expires_at=now + expires_in,
                                 released_at=now if released else None)


def _view(export: Export) -> str:
    return reverse("portal:export-view", args=[export.request_id])


@pytest.fixture
def ask(client, django_capture_on_commit_callbacks):
    """Ask for a code to see the export, the email sent as the transaction commits."""
    def asked(export: Export):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(reverse("portal:export-view-code", args=[export.request_id]))

    return asked


@pytest.fixture
def prove(client, mailoutbox, ask):
    """Prove the address to see the export in this client's browser session."""
    def proven(export: Export) -> None:
        assert ask(export).status_code == 302
        answer = client.post(reverse("portal:export-view-verify", args=[export.request_id]),
                             {"code": code_from(mailoutbox, export.request.email)})
        assert answer.status_code == 302 and answer["Location"] == _view(export)

    return proven


def test_the_report_shows_only_after_a_fresh_code_emailed_to_the_requests_address(client, mailoutbox, ask):
    export = _export("viewer@example.com")
    first = client.get(_view(export))
    assert first.status_code == 200 and "See your data in your browser" in first.content.decode()
    assert "query number 1" not in first.content.decode()
    assert ask(export).status_code == 302
    [email] = [m for m in mailoutbox if m.to == ["viewer@example.com"]]
    assert email.subject.endswith("Your code to see your data")
    code = code_from(mailoutbox, "viewer@example.com")
    asking = client.get(_view(export)).content.decode()
    assert 'name="code"' in asking and "Code from the email" in asking
    assert client.post(reverse("portal:export-view-verify", args=[export.request_id]), {"code": code}).status_code == 302
    page = client.get(_view(export)).content.decode()
    assert "<h1>Your personal data</h1>" in page and "query number 1" in page
    assert "<dt>What you searched for</dt>" in page
    assert '<time datetime="2026-01-02T03:04:05+00:00">2 January 2026, 04:04</time>' in page  # Berlin
    actions = list(AuditEntry.objects.filter(request_id=export.request_id).values_list("action", flat=True))
    assert actions[-2:] == ["view_code_sent", "export_viewed"]
    # The code is used up: entered again, it is refused.
    again = client.post(reverse("portal:export-view-verify", args=[export.request_id]), {"code": code})
    assert again.status_code == 400 and "This code has expired" in again.content.decode()


def test_a_wrong_code_is_refused_counted_and_shows_nothing(client, mailoutbox, ask):
    export = _export("wrong@example.com")
    ask(export)
    answer = client.post(reverse("portal:export-view-verify", args=[export.request_id]), {"code": "00000000"})
    assert answer.status_code == 400 and "That code is not right. 4 attempts left." in answer.content.decode()
    assert Request.objects.get(pk=export.request_id).code_attempts == 1
    assert "query number 1" not in client.get(_view(export)).content.decode()
    letters = client.post(reverse("portal:export-view-verify", args=[export.request_id]), {"code": "abc"})
    assert letters.status_code == 400 and "Enter the code using only the digits in the email." in letters.content.decode()
    assert Request.objects.get(pk=export.request_id).code_attempts == 1


def test_a_second_code_within_the_minute_is_refused(client, mailoutbox, ask):
    export = _export("twice@example.com")
    ask(export)
    again = ask(export)
    assert again.status_code == 429 and "A code was sent moments ago" in again.content.decode()
    assert len([m for m in mailoutbox if m.to == ["twice@example.com"]]) == 1


def test_records_come_a_page_at_a_time_with_links_between_pages(client, prove):
    export = _export("pages@example.com")
    prove(export)
    first = client.get(_view(export)).content.decode()
    assert "Records 1 to 20 of 45." in first and "query number 20<" in first and "query number 21<" not in first
    assert 'href="?category=searches_commands&amp;page=2#in-searches_commands" rel="next"' in first
    second = client.get(_view(export), {"category": "searches_commands", "page": "2"}).content.decode()
    assert "Records 21 to 40 of 45." in second and "query number 21<" in second and "query number 41<" not in second
    assert '<h4 id="r-searches_commands-21">Record 21</h4>' in second
    assert '<details open>' in second and 'rel="prev"' in second and "Page 2 of 3" in second
    last = client.get(_view(export), {"category": "searches_commands", "page": "3"}).content.decode()
    assert "Records 41 to 45 of 45." in last and 'rel="next"' not in last


@pytest.mark.parametrize(("query", "status", "words"), [
    ({"page": "0"}, 400, "The page number must be a whole number, 1 or more."),
    ({"page": "two"}, 400, "The page number must be a whole number, 1 or more."),
    ({"category": "searches_commands", "page": "4"}, 404, "That page is past the last page of your records."),
    ({"category": "no_such"}, 404, "Your data has no such kind of data."),
])
def test_a_page_that_does_not_exist_says_so_on_a_page(client, prove, query, status, words):
    export = _export(f"bad-page-{status}-{len(words)}@example.com")
    prove(export)
    answer = client.get(_view(export), query)
    assert answer.status_code == status and words in answer.content.decode()
    assert answer["Content-Type"].startswith("text/html")


def test_files_open_from_the_reports_relative_links_and_only_in_the_proven_browser(client, prove):
    export = _export("files@example.com")
    picture = f"{_view(export)}files/content/photos/cat%20one.png"
    assert client.get(picture).status_code == 403  # not proven yet
    prove(export)
    page = client.get(_view(export)).content.decode()
    assert '<img src="files/content/photos/cat%20one.png" alt="Picture: cat one.png" loading="lazy">' in page
    shown = client.get(picture)
    assert shown.status_code == 200 and shown["Content-Type"] == "image/png" and b"".join(shown.streaming_content) == PNG
    letter = client.get(f"{_view(export)}files/content/letter.pdf")
    assert letter["Content-Type"] == "application/octet-stream" and letter["Content-Disposition"] == "attachment; filename*=UTF-8''letter.pdf"
    assert b"".join(letter.streaming_content) == PDF
    assert client.get(f"{_view(export)}files/content/missing.png").status_code == 404
    assert client.get(f"{_view(export)}files/../manifest.json").status_code == 404
    stranger = Client()
    assert stranger.get(picture).status_code == 403


def test_the_proof_lasts_thirty_minutes(client, prove):
    export = _export("while@example.com")
    prove(export)
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=29)):
        assert "query number 1<" in client.get(_view(export)).content.decode()
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=31)):
        assert "query number 1<" not in client.get(_view(export)).content.decode()


def test_an_expired_or_unreleased_export_gets_a_page_saying_so(client):
    expired = _export("expired-view@example.com", expires_in=dt.timedelta(seconds=-1))
    answer = client.get(_view(expired))
    assert answer.status_code == 410 and "Your data is no longer available" in answer.content.decode()
    assert answer["Content-Type"].startswith("text/html")
    assert client.post(reverse("portal:export-view-code", args=[expired.request_id])).status_code == 410
    waiting = _export("waiting-view@example.com", released=False)
    answer = client.get(_view(waiting))
    assert answer.status_code == 404 and "Your data is not ready to see yet" in answer.content.decode()


def test_the_status_page_links_to_seeing_the_data_in_the_browser(client):
    export = _export("status-link@example.com")
    session = client.session
    session["dsar_requests"] = [str(export.request_id)]
    session.save()
    page = client.get(reverse("portal:request-status", args=[export.request_id])).content.decode()
    assert f'<a href="{_view(export)}">See your data in your browser instead</a>' in page


def test_the_portals_report_says_what_the_review_left_out_or_hid_and_why(client, prove):
    export = _export("reviewed-view@example.com")
    export.review = {"decisions": [
        {"item": "accounts:searches_commands:0", "action": "withhold", "fields": [], "reason": "others_personal_data", "reason_text": ""},
        {"item": "accounts:searches_commands:1", "action": "redact", "fields": ["query"], "reason": "other",
         "reason_text": "It names a colleague"},
        {"item": "content:content:0", "action": "release", "fields": [], "reason": "", "reason_text": ""}], "by": "rita", "at": "x"}
    export.save(update_fields=["review"])
    prove(export)
    page = client.get(_view(export)).content.decode()
    assert ('<tr><th scope="row">Searches and commands</th><td class="num">1</td><td class="num">1</td>'
            "<td>Another person&#39;s personal data; It names a colleague</td></tr>") in page


def test_the_portals_report_says_the_period_asked_for_and_the_systems_that_could_not_keep_to_it(client, prove):
    export = _export("ranged-view@example.com", date_range={"from": "2024-01-01", "to": None, "time_zone": "Europe/Berlin",
                                                            "not_applied": [{"system": "crm", "where": ["crm"]}]})
    Request.objects.filter(pk=export.request_id).update(date_from=dt.date(2024, 1, 1))
    prove(export)
    page = client.get(_view(export)).content.decode()
    assert "You asked only for data from 1 January 2024 to the day we gathered it, counted in your time zone (Europe/Berlin)." in page
    assert "<li>Our crm system</li>" in page


def test_the_export_pages_in_german_and_in_english(client, prove):
    export = _export("deutsch-view@example.com")
    Export.objects.filter(pk=export.pk).update(expires_at=dt.datetime(2099, 12, 14, 10, 0, tzinfo=dt.timezone.utc))
    client.cookies["django_language"] = "de"
    asking = client.get(_view(export)).content.decode()
    assert '<html lang="de">' in asking and "<h1>Ihre Daten im Browser ansehen</h1>" in asking
    assert "Sobald Sie den Code eingegeben haben, zeigt dieser Browser Ihre Daten 30 Minuten lang an." in asking
    assert "Code per E-Mail senden</button>" in asking
    prove(export)
    page = client.get(_view(export)).content.decode()
    assert ("Sie können ihn hier ansehen und herunterladen, bis zum 14. Dezember 2099, 11:00 (Zeitzone Europe/Berlin).") in page
    assert f'<input type="hidden" name="next" value="{_view(export)}">' in page
    bad = client.get(_view(export), {"page": "0"}).content.decode()
    assert "<h1>Das können wir nicht anzeigen</h1>" in bad and "Die Seitenzahl muss eine ganze Zahl sein, 1 oder größer." in bad
    assert f'<input type="hidden" name="next" value="{_view(export)}">' in bad  # back to the report's first page
    del client.cookies["django_language"]
    english = client.get(_view(export)).content.decode()
    assert '<html lang="en">' in english
    assert "You can see it here, and download it, until 14 December 2099, 11:00 (Europe/Berlin time)." in english
