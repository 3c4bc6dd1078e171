"""Helpers for the export report (Jinja2, dsar/jinja2.py) and its parts rendered once (Django's language).

A record's values are shown as a person reads them: a time in their time zone and language, a date
as a date, a yes or no, a conversation as who said what and when, a stored file as a link to it
beside the report (a picture as a thumbnail too), and anything else as its text.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils.dates import MONTHS
from django.utils.safestring import mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from connectors.base import Source, label_default
from connectors.taxonomy import taxonomy

register = template.Library()

# 2026-01-02, or 2026-01-02T03:04:05 with seconds' fractions and a zone or not: ISO 8601 as records carry it.
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
IMAGES = frozenset({"png", "jpg", "jpeg", "gif", "webp", "avif", "bmp"})
FILES = "files/"  # where the archive keeps the content files: a record's value starting so names one
# Who wrote a message of a conversation (the helpdesk's `from`), in words; another value is shown as it is.
SPEAKERS = {"customer": gettext_lazy("You"), "subject": gettext_lazy("You"), "agent": gettext_lazy("Our support team"),
            "bot": gettext_lazy("Our assistant (a computer program)"), "another person": gettext_lazy("Another person")}
SAID = ("body", "text", "message", "content")
WHO = ("from", "author", "sender")
WHEN = ("at", "created_at", "sent_at", "time")


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
    text = escape(_label("source_types", source.type) or _("Not known"))
    if source.type == "third_party":
        name = source.name or _("organisation not named")  # outside the f-string, where makemessages finds it
        text += f": {escape(name)}"
        if source.kind:
            text += f" ({escape(_label('source_kinds', source.kind))})"
    return text


@register.filter
def source_words(source: Source) -> str:
    """Where a record came from, in words."""
    return mark_safe(_source_html(source))  # noqa: S308 (every value is escaped above)


def zone_of(name: str | None) -> dt.tzinfo:
    """The person's time zone by its IANA name; UTC for one this machine does not know."""
    try:
        return ZoneInfo(name or "UTC")
    except (ValueError, KeyError, OSError):
        return dt.UTC


@functools.lru_cache(maxsize=8)
def _words(language: str | None) -> dict[str, Any]:
    """The fixed words of a record's block and its times, in one language: translated once per
    language, not once per record (a report shows up to PREVIEW_RECORDS of each category)."""
    return {"months": {number: str(name) for number, name in MONTHS.items()}, "speakers": {key: str(text) for key, text in SPEAKERS.items()},
            # Translators: a date in the export's report, "7 December 2026": as the language's DATE_FORMAT says.
            "date": _("%(day)s %(month)s %(year)s"),
            # Translators: a time in the export's report, "7 December 2026, 14:05": as the language's DATETIME_FORMAT says.
            "datetime": _("%(day)s %(month)s %(year)s, %(time)s"),
            "record": _("Record %(number)s"), "held_in": _("Held in"),
            "source": _("Source"), "collected": _("Collected"), "not_known": _("Not known"), "empty": _("(empty)"), "yes": _("Yes"),
            "no": _("No"), "picture": _("Picture: %(name)s"), "no_details": _("This record has no details to show.")}


def time_html(value: dt.datetime | dt.date, zone: dt.tzinfo) -> str:
    """A time in the person's zone and language ("2 January 2026, 04:04", "2. Januar 2026, 04:04"; a
    date as a date), with its ISO form for programs. Written by the language's pattern (_words), which
    says what its DATETIME_FORMAT and DATE_FORMAT say (a test holds them together): Django's date
    formatting costs nearly three times as much, and a report can show a time in each of hundreds
    of records."""
    words = _words(get_language())
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        local = value.astimezone(zone)
        shown = words["datetime"] % {"day": local.day, "month": words["months"][local.month], "year": local.year,
                                     "time": f"{local:%H:%M}"}
    else:
        shown = words["date"] % {"day": value.day, "month": words["months"][value.month], "year": value.year}
    return f'<time datetime="{value.isoformat()}">{shown}</time>'


@register.filter
def in_zone(value: dt.datetime | None, zone: dt.tzinfo) -> str:
    """A time of the report itself (when the request was made), as time_html shows it."""
    return mark_safe(time_html(value, zone)) if value else _words(get_language())["not_known"]  # noqa: S308 (nothing to escape)


def _parsed_time(text: str) -> dt.datetime | dt.date | None:
    if len(text) < 10 or text[4] != "-" or not ISO_TIME.fullmatch(text):
        return None
    try:
        return dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def file_href(path: str) -> str:
    """The link to a file of the archive from the report beside it, as a relative URL (it opens
    from the unzipped folder, and from the portal, which serves the files at the same place)."""
    return quote(path, safe="/")


def _file_html(path: str, words: dict[str, Any]) -> str:
    name = path.rsplit("/", 1)[-1]
    href = escape(file_href(path))
    link = f'<a href="{href}">{escape(name)}</a>'
    if name.rpartition(".")[2].lower() in IMAGES:
        picture = escape(words["picture"] % {"name": name})
        return f'<a class="thumb" href="{href}"><img src="{href}" alt="{picture}" loading="lazy"></a>{link}'
    return link


def _conversation(value: list) -> bool:
    """A list of messages: each a mapping saying who wrote what."""
    return bool(value) and all(isinstance(item, Mapping) and any(k in item for k in SAID) and any(k in item for k in WHO)
                               for item in value)


def _first(item: Mapping, keys: tuple[str, ...]) -> Any:
    return next((item[key] for key in keys if item.get(key) is not None), None)


def _conversation_html(messages: list, zone: dt.tzinfo, words: dict[str, Any]) -> str:
    """Who said what, when, in the order it was said."""
    def when(item: Mapping) -> str:
        at = _first(item, WHEN)
        return at if isinstance(at, str) else ""

    parts = ['<ol class="conversation">']
    for item in sorted(messages, key=when):
        who = str(_first(item, WHO) or words["not_known"])
        speaker = words["speakers"].get(who, who)
        if item.get("agent_name") and who != "customer":
            speaker = f"{speaker} ({item['agent_name']})"
        at = _first(item, WHEN)
        parsed = _parsed_time(at) if isinstance(at, str) else None
        moment = f" {time_html(parsed, zone)}" if parsed else ""
        mine = " mine" if who in ("customer", "subject") else ""
        parts.append(f'<li class="said{mine}"><p class="who"><strong>{escape(speaker)}</strong>{moment}</p>'
                     f'<p class="words">{escape(str(_first(item, SAID)))}</p></li>')
    parts.append("</ol>")
    return "".join(parts)


def value_html(name: str, value: Any, zone: dt.tzinfo, words: dict[str, Any]) -> str:
    """One value of a record, as the person reads it; `words` are _words' in the report's language."""
    if value is None or value == "" or value == []:
        return f'<span class="muted">{escape(words["empty"])}</span>'
    if value is True or value is False:
        return escape(words["yes"] if value else words["no"])
    if isinstance(value, str):
        if value.startswith(FILES):
            return _file_html(value, words)
        parsed = _parsed_time(value)
        return time_html(parsed, zone) if parsed else escape(value)
    if isinstance(value, int) and name == "bytes":
        return escape(filesizeformat(value))
    if isinstance(value, list):
        if _conversation(value):
            return _conversation_html(value, zone, words)
        return "<ul class=\"values\">" + "".join(f"<li>{value_html(name, item, zone, words)}</li>" for item in value) + "</ul>"
    if isinstance(value, Mapping):
        return ('<dl class="values">' + "".join(f"<dt>{escape(label_default(str(key)))}</dt><dd>{value_html(str(key), item, zone, words)}</dd>"
                                                for key, item in value.items()) + "</dl>")
    return escape(str(value))


@register.simple_tag
def record_block(record: Any, slug: str, number: int, zone: dt.tzinfo) -> str:
    """One record of the export's page (an exports.report.PreviewRecord). Built here rather than in
    template syntax: the page shows up to PREVIEW_RECORDS records per category, and this is many
    times faster."""
    words = _words(get_language())
    anchor = f"{slug}-{number}"
    collected = _parsed_time(record.collected_at) if record.collected_at else None
    heading = escape(words["record"] % {"number": number})
    parts = [
        f'<article class="record" aria-labelledby="r-{anchor}"><h4 id="r-{anchor}">{heading}</h4><dl class="meta">',
        f"<dt>{escape(words['held_in'])}</dt><dd>{escape(str(record.place))}</dd>",  # a system file's Label: in this language
        f"<dt>{escape(words['source'])}</dt><dd>{_source_html(record.source)}</dd>",
        f"<dt>{escape(words['collected'])}</dt><dd>" + (time_html(collected, zone) if collected else escape(words["not_known"])) + "</dd>",
    ]
    for name, label, value in record.fields:
        parts.append(f'<dt>{escape(str(label))}</dt><dd class="value">{value_html(name, value, zone, words)}</dd>')
    parts.append("</dl>")
    if not record.fields:
        parts.append(f'<p class="muted">{escape(words["no_details"])}</p>')
    parts.append("</article>")
    return mark_safe("".join(parts))  # noqa: S308 (every value is escaped above)
