"""Deletion receipts: one connector's, as its task row keeps it, and the request's, merged."""

from __future__ import annotations

import datetime as dt

from connectors.base import ErasureReceipt, Retained
from dsar.exports import receipt_as_dict, receipt_merge
from dsar.models import ConnectorTask


def test_a_connectors_receipt_is_kept_with_its_dates_as_iso_8601():
    receipt = ErasureReceipt(erased={"payment": 2, "subscription": 1},
                             retained=[Retained("interactions.account_history", 3, "tax law (legal_obligation)", dt.date(2036, 1, 1)),
                                       Retained("payment", 1, "a dispute is open (legal_obligation)", None)],
                             suppressed_sources=["Northwind Insights"])
    assert receipt_as_dict(receipt) == {
        "erased": {"payment": 2, "subscription": 1},
        "retained": [{"category": "interactions.account_history", "count": 3, "reason": "tax law (legal_obligation)", "until": "2036-01-01"},
                     {"category": "payment", "count": 1, "reason": "a dispute is open (legal_obligation)", "until": None}],
        "suppressed_sources": ["Northwind Insights"],
    }


def test_two_connectors_receipts_merge_into_the_requests_receipt():
    payments = ConnectorTask(connector="payments", receipt={
        "erased": {"payment": 2, "interactions.account_history": 1},
        "retained": [{"category": "interactions.account_history", "count": 3, "reason": "tax law (legal_obligation)", "until": "2036-01-01"}],
        "suppressed_sources": [],
    })
    third_party = ConnectorTask(connector="third_party", receipt={
        "erased": {"demographic": 4, "interactions.account_history": 2},
        "retained": [],
        "suppressed_sources": ["Northwind Insights", "StreamCo"],
    })
    broker_again = ConnectorTask(connector="brokers", receipt={"erased": {}, "retained": [], "suppressed_sources": ["StreamCo", "Acme"]})
    assert receipt_merge([payments, third_party, broker_again]) == {
        "erased": {"payment": 2, "interactions.account_history": 3, "demographic": 4},
        "retained": [{"category": "interactions.account_history", "count": 3, "reason": "tax law (legal_obligation)", "until": "2036-01-01",
                      "connector": "payments"}],
        "notify_sources": ["Northwind Insights", "StreamCo", "Acme"],
    }


def test_a_receipt_with_no_source_to_notify_says_nothing_of_sources():
    task = ConnectorTask(connector="accounts", receipt={"erased": {"searches_commands": 2}, "retained": [], "suppressed_sources": []})
    assert receipt_merge([task]) == {"erased": {"searches_commands": 2}, "retained": []}
