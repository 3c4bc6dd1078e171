"""Deletion receipts: what each connector erased and kept, as its task row stores it, and the one
receipt of the request that the subject sees (CONTRACT.md §4, `result` of a completed deletion)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.base import ErasureReceipt, Retained

from ..models import ConnectorTask


def receipt_as_dict(receipt: ErasureReceipt) -> dict[str, Any]:
    """A connector's receipt as its task row stores it."""
    return {
        "erased": dict(receipt.erased),
        "retained": [{"category": r.category, "count": r.count, "reason": r.reason, "until": r.until.isoformat() if r.until else None}
                     for r in receipt.retained],
        "suppressed_sources": list(receipt.suppressed_sources),
    }


def receipt_from_dict(data: Mapping[str, Any]) -> ErasureReceipt:
    """What `receipt_as_dict` wrote."""
    return ErasureReceipt(
        erased=dict(data["erased"]),
        retained=[Retained(r["category"], r["count"], r["reason"], dt.date.fromisoformat(r["until"]) if r["until"] else None)
                  for r in data["retained"]],
        suppressed_sources=list(data["suppressed_sources"]),
    )


@dataclass(frozen=True)
class RetainedItem:
    """Data a connector kept, and why, as the subject's receipt lists it."""

    category: str
    count: int
    reason: str
    until: dt.date | None
    connector: str


@dataclass
class DeletionResult:
    """The request's receipt: erased records per category, every retained item, the sources that
    should hear of the erasure, the parts staff refused to erase, and what was referred to the
    organisation managing the account (each omitted when there are none)."""

    erased: dict[str, int] = field(default_factory=dict)
    retained: list[RetainedItem] = field(default_factory=list)
    notify_sources: list[str] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    referred: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The receipt as the API shows it."""
        result: dict[str, Any] = {
            "erased": self.erased,
            "retained": [{"category": r.category, "count": r.count, "reason": r.reason, "until": r.until.isoformat() if r.until else None,
                          "connector": r.connector} for r in self.retained],
        }
        if self.notify_sources:
            result["notify_sources"] = self.notify_sources
        if self.refused:
            result["refused"] = self.refused
        if self.referred:
            result["referred"] = self.referred
        return result


def receipt_merge(tasks: Iterable[ConnectorTask], *, refusals: Iterable[Mapping[str, str]] = (),
                  referred: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One receipt for the request from its connectors' receipts, with what staff refused to erase
    (the request's `refusals`) and what was left to the organisation managing the account
    (`referred`, as `referral_as_dict` gives it), as the API shows it."""
    merged = DeletionResult(refused=list(refusals), referred=dict(referred) if referred else None)
    for task in tasks:
        receipt = receipt_from_dict(task.receipt) if task.receipt else ErasureReceipt()
        for category, count in receipt.erased.items():
            merged.erased[category] = merged.erased.get(category, 0) + count
        merged.retained.extend(RetainedItem(r.category, r.count, r.reason, r.until, task.connector) for r in receipt.retained)
        merged.notify_sources.extend(s for s in receipt.suppressed_sources if s not in merged.notify_sources)
    return merged.as_dict()
