"""A deletion's receipt in the person's words on their request's page, the same words as its email;
the receipt the API gives stays as the contract has it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import datetime as dt

import pytest
from django.db import transaction
from django.utils import translation

from dsar import notifications
from dsar.exports import receipt_in_words
from dsar.models import Request

from ..factories import request_make

TOKEN = "receipt-token"
RESULT = {
    "erased": {"name_contact": 1, "feedback_ratings": 2, "location": 0},
    "retained": [{"category": "interactions.account_history", "count": 1, "until": "2036-09-01", "connector": "third_party",
                  "reason": "Invoices are kept for 10 years because tax law requires it (legal_obligation)"}],
    "notify_sources": ["Northwind Insights"],
}


@pytest.fixture
def receipt(db) -> Request:
    request = request_make(status="completed", type="deletion", token=TOKEN)
    Request.objects.filter(pk=request.pk).update(result=RESULT)
    return Request.objects.get(pk=request.pk)


def _words(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_receipt_on_the_request_page_names_categories_counts_bases_and_systems_in_words(client, receipt):
    link = urlsplit(notifications.status_url(receipt))
    page = client.get(f"{link.path}?{link.query}", follow=True).content.decode()
    said = _words(page)
    assert "What we deleted Name and contact details 1 record Feedback, surveys and reviews 2 records What we kept, and why" in said
    assert ("Purchases and account activity 1 record Why Invoices are kept for 10 years because tax law requires it "
            "Legal basis The law requires it Kept in our third party system Kept until 1 September 2036") in said
    assert "Northwind Insights" in said
    for word in ("legal_obligation", "interactions.account_history", "feedback_ratings", "name_contact", "third_party"):
        assert word not in said, word


def test_the_receipt_the_api_gives_keeps_its_ids_and_iso_dates(api, receipt):
    answer = api.get(f"/api/v1/requests/{receipt.pk}", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert answer.status_code == 200, answer.content
    assert answer.json()["result"] == RESULT


def test_the_receipts_counts_and_systems_are_told_in_the_language_they_are_read_in():
    with translation.override("de"):
        receipt = receipt_in_words(RESULT)
    assert [item["records"] for item in receipt["erased"]] == ["1 Datensatz", "2 Datensätze"]
    [kept] = receipt["retained"]
    assert (kept["records"], kept["system"], kept["until"]) == ("1 Datensatz", "unser System „third party“", dt.date(2036, 9, 1))
    assert receipt_in_words(RESULT)["retained"][0]["system"] == "our third party system"


def test_the_completion_email_of_a_deletion_filed_in_german_gives_its_receipt_in_german(
        receipt, mailoutbox, django_capture_on_commit_callbacks):
    Request.objects.filter(pk=receipt.pk).update(language="de")
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        notifications.email_on_commit(Request.objects.get(pk=receipt.pk), "completed")
    [sent] = mailoutbox
    assert sent.subject == "Example Company: Ihre Anfrage ist abgeschlossen"
    for said in (" ".join(sent.body.split()), _words(sent.alternatives[0][0])):
        assert "Wir haben Ihre Daten wie gewünscht gelöscht. Was wir gelöscht haben:" in said
        assert ": 2 Datensätze" in said
        assert "Einige Daten mussten wir für eine gewisse Zeit aufbewahren. Folgendes haben wir aufbewahrt, jeweils mit Grund:" in said
        assert ("Grund: Invoices are kept for 10 years because tax law requires it Rechtsgrundlage: ") in said
        assert "Speicherort: unser System „third party“ Aufbewahrt bis: 1. September 2036" in said
        assert ("Wir verwenden diese Daten für keinen anderen Zweck und löschen sie, sobald wir sie nicht mehr aufbewahren "
                "müssen.") in said
