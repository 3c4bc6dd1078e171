"""Helpers for the export report (Jinja2, dsar/jinja2.py) and its parts rendered once (Django's language)."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from django import template
from django.utils.safestring import mark_safe

from connectors.base import Source
from connectors.taxonomy import taxonomy

if TYPE_CHECKING:
    from ..exports.report import PreviewRecord

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


def _source_html(source: Source) -> str:
    text = f"{escape(_label('source_types', source.type))} (<code>{escape(source.type or 'not known')}</code>)"
    if source.type == "third_party":
        text += f": {escape(source.name or 'organisation not named')}"
        if source.kind:
            text += f" (kind: {escape(_label('source_kinds', source.kind))}, <code>{escape(source.kind)}</code>)"
    return text


@register.filter
def source_words(source: Source) -> str:
    """Where a record came from, in words, with the ids in code."""
    return mark_safe(_source_html(source))  # noqa: S308 (every value is escaped above)


@register.simple_tag
def record_block(record: PreviewRecord, slug: str, number: int) -> str:
    """One record of the export's page. Built here rather than in template syntax: the page shows
    up to PREVIEW_RECORDS records per category, and this is many times faster."""
    anchor = f"{slug}-{number}"
    collected = record.collected_at
    parts = [
        f'<div class="record"><h4 id="r-{anchor}">Record {number}</h4><dl class="meta">',
        f"<dt>Held in</dt><dd>{escape(record.system or 'Not known')}</dd>",
        f"<dt>Source</dt><dd>{_source_html(record.source)}</dd>",
        "<dt>Collected</dt><dd>"
        + (f'<time datetime="{escape(collected)}">{escape(collected)}</time>' if collected else "Not known")
        + "</dd></dl>",
    ]
    rows = record.fields
    if rows:
        parts.append(
            f'<div class="table-wrap" role="region" aria-labelledby="c-{anchor}" tabindex="0"><table>'
            f'<caption id="c-{anchor}">Details in record {number}</caption>'
            '<thead><tr><th scope="col">Field</th><th scope="col">Value</th></tr></thead><tbody>'
        )
        for name, value in rows:
            shown = '<span class="muted">(empty)</span>' if value is None else escape(str(value))
            parts.append(f'<tr><th scope="row"><code>{escape(name)}</code></th><td class="value">{shown}</td></tr>')
        parts.append("</tbody></table></div>")
    else:
        parts.append('<p class="muted">This record has no details to show.</p>')
    parts.append("</div>")
    return mark_safe("".join(parts))  # noqa: S308 (every value is escaped above)
