"""Template filters that put the taxonomy's words beside its ids: `{{ source.kind|source_kind }}`."""

from django import template

from connectors.taxonomy import taxonomy

register = template.Library()


def _describe(section: str, key: str | None) -> str:
    item = taxonomy()[section].get(key or "")
    return f"{item['label']}: {item['description']}" if item else ""


def _label(section: str, key: str | None) -> str:
    item = taxonomy()[section].get(key or "")
    return item["label"] if item else ""


@register.filter
def legal_basis(key: str | None) -> str:
    """'Our agreement with you: …' for 'contract'."""
    return _describe("legal_bases", key)


@register.filter
def source_type(key: str | None) -> str:
    return _label("source_types", key)


@register.filter
def source_kind(key: str | None) -> str:
    return _label("source_kinds", key)
