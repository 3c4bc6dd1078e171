"""The taxonomy's words for ids, in the product's Django templates (emails, console, portal)."""

from __future__ import annotations

from django import template

from connectors import taxonomy

register = template.Library()


@register.filter
def category_label(category: str) -> str:
    """'Payment details' for 'payment'; the id itself when the taxonomy no longer lists it."""
    return taxonomy.category_label(category)
