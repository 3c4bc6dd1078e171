"""Deletion receipts: what each connector erased and kept, as its task row stores it, and the one
receipt of the request that the subject sees (CONTRACT.md §4, `result` of a completed deletion)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext, ngettext

from connectors.base import ErasureReceipt, Retained
from connectors.taxonomy import category_ids, category_label, category_root, taxonomy

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


def records_in_words(count: int) -> str:
    """"1 record", "2 records": a count as the person reads it."""
    return ngettext("%(count)d record", "%(count)d records", count) % {"count": count}


def system_in_words(connector: str) -> str:
    """A system as the person knows it: what the company calls it, never a table or a file."""
    return gettext("our %(system)s system") % {"system": connector.replace("_", " ")}


def _reason_and_basis(reason: str) -> tuple[str, str]:
    """A connector writes a kept item's reason as "why (basis)": the why, and the basis in words."""
    for key, info in taxonomy()["legal_bases"].items():
        if reason.endswith(f"({key})"):
            return reason[: -len(key) - 2].strip(), info["label"]
    return reason, ""


def receipt_in_words(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The receipt of a completed deletion (`receipt_merge`'s shape) as the person reads it, in the
    email and on the request's page: categories by their labels in the taxonomy's order, counts in
    words, each kept item's reason, its legal basis in words, the system keeping it and the day
    until when (a date, for the template to format in the person's language), never an id."""
    result = result or {}
    order = {category: index for index, category in enumerate(category_ids())}

    def by_category(category: str) -> tuple[int, str]:
        return order.get(category_root(category), len(order)), category

    erased = [{"label": category_label(category), "count": count, "records": records_in_words(count)}
              for category, count in sorted(result.get("erased", {}).items(), key=lambda item: by_category(item[0])) if count]
    retained = []
    for item in sorted(result.get("retained", []), key=lambda item: by_category(item.get("category", ""))):
        reason, basis = _reason_and_basis(item.get("reason") or "")
        count, until = item.get("count"), item.get("until")
        retained.append({"label": category_label(item.get("category", "")), "count": count,
                         "records": records_in_words(count) if count else "", "reason": reason, "basis": basis,
                         "system": system_in_words(item["connector"]) if item.get("connector") else "",
                         "until": dt.date.fromisoformat(until[:10]) if until else None})
    return {"erased": erased, "retained": retained, "notify_sources": list(result.get("notify_sources", []))}
