"""The archive's index.html: per category what it is, why and how long it is kept, where it came
from, and the person's first records (templates/jinja2/exports/index.html)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.template.loader import get_template, render_to_string
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify

from connectors.base import Source
from connectors.taxonomy import category_ids, category_info, taxonomy

from ..models import Request
from .staging import flatten

PREVIEW_RECORDS = 50  # records shown per category; all of them are in the data files


@dataclass(frozen=True, slots=True)
class PreviewRecord:
    """One record as the report shows it, its fields flattened into rows."""

    system: str
    source: Source
    collected_at: str | None
    fields: list[tuple[str, Any]]


@dataclass(frozen=True, slots=True)
class ReportCategory:
    """A category as the report shows it. Attributes rather than a dict's keys: Jinja2 looks
    `category.records` up as an attribute first. `past_promise`: some of its records are older than
    its retention promises (retention.py), which the report then says."""

    id: str
    slug: str
    info: dict
    about: tuple[SafeString, SafeString]
    records: int
    sources: list[Source]
    preview: list[PreviewRecord]
    past_promise: bool = False


def report_category(category: str, *, records: int, sources: list[Source], lines: Iterable[str],
                    past_promise: bool = False) -> ReportCategory:
    """A category of the report, previewing the first PREVIEW_RECORDS of its JSON lines."""
    preview = []
    for line in lines:
        if len(preview) == PREVIEW_RECORDS:
            break
        record = json.loads(line)
        preview.append(PreviewRecord(system=record["system"], source=Source(**record["source"]), collected_at=record["collected_at"],
                                     fields=list(flatten(record["fields"]))))
    return ReportCategory(id=category, slug=category_slug(category), info=category_info(category), about=category_about(category),
                          records=records, sources=sources, preview=preview, past_promise=past_promise)


def report_render(*, request: Request, categories: list[ReportCategory], generated_at: dt.datetime) -> bytes:
    """The report's page, as UTF-8."""
    context = {"request": request, "generated_at": generated_at, "terms_html": terms_html(), "categories": categories,
               "preview_limit": PREVIEW_RECORDS}
    return render_to_string("exports/index.html", context, using="jinja2").encode("utf-8")


def report_prepare() -> None:
    """Compile the report's template and render its fixed parts (the terms, each category's words),
    and load the URLconf its download link is reversed with. Called in a worker's parent before it
    forks its pool, so that its children share all of it instead of each spending a third of a
    second of CPU on it at its first export."""
    import_module(settings.ROOT_URLCONF)
    get_template("exports/index.html", using="jinja2")
    terms_html()
    for category in category_ids():
        category_slug(category)
        category_about(category)


# The report's words from the taxonomy are the same in every export: rendered once per process.


@functools.cache
def terms_html() -> SafeString:
    """What the legal bases, source types and source kinds mean."""
    return mark_safe(render_to_string("exports/terms.html", {"taxonomy": taxonomy()}))  # noqa: S308 (a rendered template)


@functools.cache
def category_slug(category: str) -> str:
    """The category's anchor in the report."""
    return slugify(category)


@functools.cache
def category_about(category: str) -> tuple[SafeString, SafeString]:
    """A category's description, purposes and legal basis; and its retention and recipients."""
    info = category_info(category)
    return tuple(mark_safe(render_to_string("exports/category_about.html", {"info": info, "part": part}))  # noqa: S308
                 for part in ("why", "keep"))
