"""The taxonomy's words for ids, in the product's Django templates (emails, console, portal)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template

from connectors import taxonomy
from dsar.exports import receipt_in_words

register = template.Library()


@register.filter
def category_label(category: str) -> str:
    """'Payment details' for 'payment'; the id itself when the taxonomy no longer lists it."""
    return taxonomy.category_label(category)


@register.simple_tag
def receipt_words(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """A deletion's receipt in the person's words (`exports.receipt_in_words`):
    `{% receipt_words request.result as receipt %}`."""
    return receipt_in_words(result)
