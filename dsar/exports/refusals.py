"""What staff refused to answer of a request at its approval, in the words the person reads it in:
the approval email, the export's report and the deletion receipt."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.conf import settings
from django.utils.translation import gettext

from connectors.taxonomy import category_label


def refusals_in_words(refusals: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """Each refusal as {"part": what was refused, "reason": why}: a category by its label, a system
    by its name, never an id the person does not know. Parts refused for the same reason are named
    together, so the person reads the reason once (a child's withheld categories)."""
    parts: dict[str, list[str]] = {}
    for refusal in refusals:
        named = (category_label(refusal["category"]) if "category" in refusal
                 # Translators: %(system)s is the company's own name for one of its systems, such as "payments".
                 else gettext("The data our %(system)s system holds") % {"system": refusal["system"]})
        parts.setdefault(refusal["reason"], []).append(named)
    return [{"part": ", ".join(named), "reason": reason} for reason, named in parts.items()]


def child_withheld_reason(*, under: int) -> str:
    """Why a child's sensitive category was withheld, and how a parent or guardian can obtain it: the
    reason of its refusal, which the person reads wherever refusals are shown. Stored with the
    refusal, it stays in the language active when it was made."""
    return gettext("We withheld this data to protect a child: our records show you may be under %(age)s, and we give data that "
                   "can show where a child is, or what they look or sound like, only to a parent or guardian whose authority we "
                   "have confirmed. A parent or guardian can obtain it by writing to %(address)s from their own email address, "
                   "quoting this request's reference: we will confirm that they are your parent or guardian, then send it to "
                   "them.") % {"age": under, "address": settings.DEFAULT_FROM_EMAIL}
