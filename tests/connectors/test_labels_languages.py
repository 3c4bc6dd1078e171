"""A system file's labels in several languages (connectors/systems.py, sql_dataset.py, http.py): a
label is words, or words by language code that must give English and only languages the product
offers; it reads in the language active when it is read, English where it gives none, so the
person's report names where their data is held and its fields in their language."""

from __future__ import annotations

import datetime as dt
import json
import re
import textwrap
from pathlib import Path

import pytest
from django.utils import translation

from connectors.base import OBSERVED, PROVIDED
from connectors.systems import SystemsError, system_load
from dsar.exports.report import report_category, report_render

from ..factories import request_make

SHOP = """\
name: shop
label: {en: Your shop account, de: Ihr Shop-Konto}
kind: sql
tables:
  - name: orders
    label: {en: your orders, de: Ihre Bestellungen}
    identity: {email: email}
    columns:
      placed_at: {category: interactions.account_history, label: {en: When you ordered, de: Bestellt am}}
      total: {category: interactions.account_history, label: {en: Total}}
      note: {category: interactions.account_history, label: Note}
    secrets:
      password: {column: password_hash, category: credentials, label: {en: Password, de: Passwort}}
  - name: returns
    label: your returns
    parent: {table: orders, column: order_id}
    columns:
      reason: interactions.account_history
"""

HELPDESK = """\
name: helpdesk
label: {en: Customer support, de: Kundenservice}
kind: http
connection: {base_url: "https://helpdesk.example"}
lookup:
  name: users
  path: /users
  params: {email: "{email}"}
  items: users
lists:
  - name: tickets
    label: {en: your conversations, de: Ihre Unterhaltungen}
    path: /users/{id}/tickets
    items: tickets
    fields:
      created: {category: interactions.support, label: {en: Started, de: Begonnen am}}
erase:
  - {method: DELETE, path: "/users/{id}"}
"""

GENERATED = dt.datetime(2026, 5, 6, 7, 8, tzinfo=dt.UTC)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "system.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _in(language: str, *labels) -> list[str]:
    with translation.override(language):
        return [str(label) for label in labels]


def test_an_sql_systems_place_and_fields_read_in_german_under_german_and_in_english_under_english(tmp_path):
    shop = system_load(_file(tmp_path, SHOP), {})
    place, fields = shop.words("shop.orders")
    labels = (shop.title, place, fields["placed_at"], fields["password"], fields["password_last_changed"])

    assert _in("de", *labels) == ["Ihr Shop-Konto", "Ihr Shop-Konto: Ihre Bestellungen", "Bestellt am", "Passwort",
                                  "Passwort: zuletzt geändert"]
    assert _in("en", *labels) == ["Your shop account", "Your shop account: your orders", "When you ordered", "Password",
                                  "Password: last changed"]


def test_where_a_label_gives_no_german_the_english_is_shown_and_a_plain_label_reads_the_same_in_both(tmp_path):
    shop = system_load(_file(tmp_path, SHOP), {})
    orders, fields = shop.words("shop.orders")
    returns, _fields = shop.words("shop.returns")

    assert _in("de", fields["total"], fields["note"], returns) == ["Total", "Note", "Ihr Shop-Konto: your returns"]
    assert _in("en", fields["total"], fields["note"], returns) == ["Total", "Note", "Your shop account: your returns"]


def test_an_http_systems_listing_and_field_read_in_the_active_language(tmp_path):
    helpdesk = system_load(_file(tmp_path, HELPDESK), {})
    place, fields = helpdesk.words("helpdesk.tickets")

    assert _in("de", place, fields["created"]) == ["Kundenservice: Ihre Unterhaltungen", "Begonnen am"]
    assert _in("en", place, fields["created"]) == ["Customer support: your conversations", "Started"]


def test_a_label_made_in_one_language_reads_in_the_one_active_when_it_is_read(tmp_path):
    with translation.override("en"):
        place, _fields = system_load(_file(tmp_path, SHOP), {}).words("shop.orders")
    assert _in("de", place) == ["Ihr Shop-Konto: Ihre Bestellungen"]


@pytest.mark.parametrize(("text", "problem"), [
    (SHOP.replace("{en: your orders, de: Ihre Bestellungen}", "{de: Ihre Bestellungen}"),
     "tables[0].label: must give the words in en, the product's own language"),
    (SHOP.replace("{en: When you ordered, de: Bestellt am}", "{en: When you ordered, xx: Xyz}"),
     "tables[0].columns.placed_at.label: 'xx' is not a language the product offers (en, de)"),
    (SHOP.replace("label: {en: Your shop account, de: Ihr Shop-Konto}", "label: {en: Your shop account, fr: Votre compte}"),
     "label: 'fr' is not a language the product offers (en, de)"),
    (SHOP.replace("{en: Password, de: Passwort}", "{en: Password, de: ''}"),
     "tables[0].secrets.password.label: gives no words in de"),
    (HELPDESK.replace("{en: Started, de: Begonnen am}", "{de: Begonnen am}"),
     "lists[0].fields.created.label: must give the words in en, the product's own language"),
    (SHOP.replace("label: your returns", "label: [your, returns]"),
     "tables[1].label: must be words, or words by language code such as {en: Your orders, de: Ihre Bestellungen}"),
])
def test_a_label_without_english_or_in_a_language_the_product_does_not_offer_is_refused_naming_the_file_and_key(
        tmp_path, text, problem):
    path = _file(tmp_path, text)
    with pytest.raises(SystemsError) as refused:
        system_load(path, {})
    assert refused.value.problems == [f"{path}: {problem}"]


def _words(html: str) -> str:
    """The page as a reader sees it: tags gone, each run of white space one space."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _report(language: str) -> str:
    """A report of the demo estate's searches and support tickets in `language`, the categories
    made in English, as a worker makes them."""
    request = request_make(status="processing", email="etiketten@example.com")
    request.language, request.time_zone = language, "Europe/Berlin"
    search = json.dumps({"connector": "accounts", "system": "accounts.searches", "source": OBSERVED.as_dict(),
                         "collected_at": "2026-01-02T03:04:05+00:00", "fields": {"query": "wetter"}})
    ticket = json.dumps({"connector": "support", "system": "support.tickets", "source": PROVIDED.as_dict(), "collected_at": None,
                         "fields": {"ticket_id": 41, "subject": "Paket"}})
    with translation.override("en"):
        categories = [report_category("searches_commands", records=1, sources=[OBSERVED], lines=[search], connectors=["accounts"]),
                      report_category("interactions.support", records=1, sources=[PROVIDED], lines=[ticket], connectors=["support"])]
    return report_render(request=request, categories=categories, generated_at=GENERATED).decode()


@pytest.mark.django_db
def test_a_german_report_names_where_data_is_held_and_its_fields_by_the_estates_german_labels():
    page = _report("de")

    assert "<dt>Gespeichert in</dt><dd>Ihr Konto: Ihre Suchanfragen</dd>" in page
    assert '<dt>Wonach Sie gesucht haben</dt><dd class="value">wetter</dd>' in page
    assert "<dt>Gespeichert in</dt><dd>Kundenservice: Ihre Unterhaltungen mit uns</dd>" in page
    assert '<dt>Ticketnummer</dt><dd class="value">41</dd>' in page and '<dt>Betreff</dt><dd class="value">Paket</dd>' in page
    assert "Gespeichert in: Ihr Konto." in _words(page) and "Gespeichert in: Kundenservice." in _words(page)
    assert 'data-label="Gespeichert in">Ihr Konto</td>' in page
    assert "Your account" not in page and "What you searched for" not in page and "Customer support" not in page


@pytest.mark.django_db
def test_an_english_report_names_them_as_before():
    _report("de")
    page = _report("en")

    assert "<dt>Held in</dt><dd>Your account: your searches</dd>" in page
    assert '<dt>What you searched for</dt><dd class="value">wetter</dd>' in page
    assert "<dt>Held in</dt><dd>Customer support: your conversations</dd>" in page
    assert '<dt>Ticket number</dt><dd class="value">41</dd>' in page
    assert "We hold it in: Your account." in _words(page)
    assert "Ihr Konto" not in page and "Kundenservice" not in page
