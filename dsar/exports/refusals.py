"""What staff refused to answer of a request at its approval, in the words the person reads it in:
the approval email, the export's report and the deletion receipt."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from connectors.taxonomy import category_label


def refusals_in_words(refusals: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """Each refusal as {"part": what was refused, "reason": why}: a category by its label, a system
    by its name, never an id the person does not know."""
    return [{"part": category_label(refusal["category"]) if "category" in refusal
             else f"The data our {refusal['system']} system holds", "reason": refusal["reason"]} for refusal in refusals]
