"""What staff refused to answer of a request at its approval, in the words the person reads it in:
the approval email, the export's report and the deletion receipt."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.conf import settings

from connectors.taxonomy import category_label


def refusals_in_words(refusals: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """Each refusal as {"part": what was refused, "reason": why}: a category by its label, a system
    by its name, never an id the person does not know. Parts refused for the same reason are named
    together, so the person reads the reason once (a child's withheld categories)."""
    parts: dict[str, list[str]] = {}
    for refusal in refusals:
        parts.setdefault(refusal["reason"], []).append(category_label(refusal["category"]) if "category" in refusal
                                                       else f"The data our {refusal['system']} system holds")
    return [{"part": ", ".join(named), "reason": reason} for reason, named in parts.items()]


def child_withheld_reason(*, under: int) -> str:
    """Why a child's sensitive category was withheld, and how a parent or guardian can obtain it: the
    reason of its refusal, which the person reads wherever refusals are shown."""
    return (f"We withheld this data to protect a child: our records show you may be under {under}, and we give data that can "
            "show where a child is, or what they look or sound like, only to a parent or guardian whose authority we have "
            f"confirmed. A parent or guardian can obtain it by writing to {settings.DEFAULT_FROM_EMAIL} from their own email "
            "address, quoting this request's reference: we will confirm that they are your parent or guardian, then send it "
            "to them.")
