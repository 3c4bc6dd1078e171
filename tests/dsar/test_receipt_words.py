"""A deletion's receipt in the person's words on their request's page, the same words as its email;
the receipt the API gives stays as the contract has it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from dsar import notifications
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
