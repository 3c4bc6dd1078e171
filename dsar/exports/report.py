"""The archive's index.html: per category what it is, why and how long it is kept, where it came
from, who receives it and whether a computer decides with it, and the person's first records; then
the person's rights, and under the CCPA what that law asks an answer to list
(templates/jinja2/exports/index.html)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import import_module
from pathlib import Path
from typing import Any

from django.conf import settings
from django.template.loader import get_template, render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify

from connectors.base import Label, Source, label_default
from connectors.countries import COUNTRIES
from connectors.registry import systems
from connectors.taxonomy import category_ids, category_info, category_label, category_root, taxonomy
from connectors.transfers import Area, transfer_area

from ..models import Request
from ..templatetags.export_report import zone_of
from .referrals import referral_in_words
from .refusals import refusals_in_words

PREVIEW_RECORDS = 50  # records shown per category; all of them are in the data files

# The person's rights (GDPR Art. 15(1)(e), (f) and 13(2)), in the report's order. The portal's
# request form serves access and erasure, and portability by the access export's JSON and CSV; the
# privacy team serves the others, and the supervisory authority hears complaints.
RIGHTS = ("access", "rectification", "erasure", "restriction", "objection", "portability", "automated_decisions",
          "withdraw_consent", "complain")
PORTAL_RIGHTS = frozenset({"access", "erasure", "portability"})
CCPA_DISCLOSURES = ("disclosed", "sold", "shared")


@dataclass(frozen=True, slots=True)
class PreviewRecord:
    """One record as the report shows it: where it is held and its fields' labels, in words, each
    field as (name, label, value). The place and labels read in the language the report is
    rendered in (a system file's Label), whatever language the record was read in."""

    place: Label | str
    source: Source
    collected_at: str | None
    fields: list[tuple[str, Label | str, Any]]


@dataclass(frozen=True, slots=True)
class ReportRecipient:
    """An organisation that receives a category of the person's data, as a system's file declares
    it, less how it is told of an erasure; `area` says whether its country is in the EEA, covered by
    an adequacy decision, or a third country (where `safeguard` says what protects the transfer)."""

    name: str
    role: str
    country: str
    country_name: str
    area: Area
    safeguard: str | None
    safeguard_detail: str | None
    ccpa: str | None


@dataclass(frozen=True, slots=True)
class ReportCategory:
    """A category as the report shows it. Attributes rather than a dict's keys: Jinja2 looks
    `category.records` up as an attribute first. `past_promise`: some of its records are older than
    its retention promises (retention.py), which the report then says."""

    id: str
    slug: str
    info: dict
    records: int
    sources: list[Source]
    preview: list[PreviewRecord]
    recipients: list[ReportRecipient]
    past_promise: bool = False
    held_in: list[Label | str] = field(default_factory=list)  # the systems holding it, in words (read as PreviewRecord's)
    count_words: str = ""  # "1 record", "2 records", in the report's language (report_context)
    about: tuple[SafeString, ...] = ()  # category_about's two parts, in the report's language (report_context)
    first: int = 1  # the number of the first record of `preview` (the portal shows a page at a time)
    page: int = 1  # in the portal: the page of records shown, of how many, and whether its section is open
    pages: int = 1
    open: bool = False


# Why a review left an item out or hid part of it, by the reason the reviewer chose; `other` is the
# reviewer's own words.
WITHHELD_REASONS = {
    "others_personal_data": gettext_lazy("Another person's personal data"),
    "others_confidential": gettext_lazy("Confidential information about another person"),
    "trade_secret": gettext_lazy("A trade secret"),
    "legal_privilege": gettext_lazy("Information covered by legal privilege"),
}
WITHHELD_OTHER = "other"


@dataclass(frozen=True, slots=True)
class ReportWithheld:
    """What a review of other people's data did to one category of the archive: so many items left
    out (`withheld`) and so many with parts hidden (`redacted`), and why (GDPR Art. 15(4)): each
    reason a reviewer chose, with their own words for `other`. Worded when read, so in the language
    of the page or email it is read in, whoever's language the review was made in."""

    category: str
    withheld: int
    redacted: int
    reasons: list[tuple[str, str]]

    @property
    def label(self) -> str:
        return category_label(self.category)

    @property
    def reason_words(self) -> list[str]:
        return [text if reason == WITHHELD_OTHER else str(WITHHELD_REASONS.get(reason, "")) for reason, text in self.reasons]

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> ReportWithheld:
        """One as an email's context keeps it (`dataclasses.asdict`)."""
        return cls(stored["category"], stored["withheld"], stored["redacted"], [tuple(reason) for reason in stored["reasons"]])


@dataclass(frozen=True, slots=True)
class Right:
    """One of the person's rights and where to use it: `how` is `portal` (the request form's page),
    `privacy_contact` (a mailto: link) or `supervisory_authority` (its website)."""

    id: str
    how: str
    url: str


@dataclass(frozen=True, slots=True)
class CcpaCategory:
    """A category of the person's data as the CCPA asks an answer to list it."""

    label: str
    sources: list[str]  # the categories of sources, in words
    purposes: list[str]  # the business or commercial purposes


@dataclass(frozen=True, slots=True)
class CcpaDisclosure:
    """A recipient of the person's data under one of the CCPA's headings, with what it received."""

    recipient: ReportRecipient
    categories: list[str]  # labels


@dataclass(frozen=True, slots=True)
class CcpaAnswer:
    """What the CCPA asks an access answer to list, for the categories holding the person's data;
    `disclosures` maps each of CCPA_DISCLOSURES to its recipients (none: an empty list)."""

    categories: list[CcpaCategory]
    disclosures: dict[str, list[CcpaDisclosure]]


def report_category(category: str, *, records: int, sources: list[Source], lines: Iterable[str],
                    connectors: Iterable[str] = (), past_promise: bool = False, first: int = 1,
                    limit: int = PREVIEW_RECORDS) -> ReportCategory:
    """A category of the report, previewing `limit` of its JSON lines (the first of them record
    number `first`), with the recipients the systems that hold it (`connectors`) declare;
    `past_promise`: some of it is older than the category's retention promises."""
    connectors = list(connectors)
    words = PlaceWords()
    preview = []
    for line in lines:
        if len(preview) == limit:
            break
        record = json.loads(line)
        place, labels = words.of(record.get("connector") or record["system"], record["system"])
        preview.append(PreviewRecord(place=place, source=Source(**record["source"]), collected_at=record["collected_at"],
                                     fields=[(name, labels.get(name) or words.label(name), value)
                                             for name, value in record["fields"].items()]))
    declared = systems()
    return ReportCategory(id=category, slug=category_slug(category), info=category_info(category), records=records,
                          sources=sources, preview=preview, recipients=category_recipients(category, connectors),
                          past_promise=past_promise, first=first,
                          held_in=[declared[name].title if name in declared else label_default(name) for name in connectors])


class PlaceWords:
    """Where records are held and their fields' labels, in words, from the system files: worked
    out once per place and field name, not once per record. A system file's words are Labels, read
    in the language active when the report is rendered, which may not be the one active here."""

    def __init__(self) -> None:
        self.declared = systems()
        self.places: dict[tuple[str, str], tuple[Label | str, Mapping[str, Label | str]]] = {}
        self.defaults: dict[str, str] = {}

    def of(self, connector: str, place: str) -> tuple[Label | str, Mapping[str, Label | str]]:
        """The place a record says it is held in (`accounts.users`) in words, and its fields' labels."""
        key = (connector, place)
        if key not in self.places:
            system = self.declared.get(connector)
            self.places[key] = system.words(place) if system else (label_default(connector), {})
        return self.places[key]

    def label(self, name: str) -> str:
        """A field's name in words, where its file gives it no label."""
        if name not in self.defaults:
            self.defaults[name] = label_default(name)
        return self.defaults[name]


def category_recipients(category: str, connectors: Iterable[str]) -> list[ReportRecipient]:
    """The organisations the named systems declare they disclose this category to, each once, in
    the systems' order (a hosting provider of several systems is one recipient)."""
    declared = systems()
    found: dict[ReportRecipient, None] = {}
    for connector in connectors:
        system = declared.get(connector)
        for recipient in system.recipients if system else ():
            if category in {category_root(c) for c in recipient.categories}:
                found[ReportRecipient(name=recipient.name, role=recipient.role, country=recipient.country,
                                      country_name=str(COUNTRIES[recipient.country]), area=transfer_area(recipient.country),
                                      safeguard=recipient.safeguard, safeguard_detail=recipient.safeguard_detail,
                                      ccpa=recipient.ccpa)] = None
    return list(found)


def report_rights() -> list[Right]:
    """The person's rights, each with where to use it with us."""
    portal = settings.DSAR_PUBLIC_URL + reverse("portal:request-new")
    rights = []
    for right in RIGHTS:
        if right in PORTAL_RIGHTS:
            rights.append(Right(right, "portal", portal))
        elif right == "complain":
            rights.append(Right(right, "supervisory_authority", settings.DSAR_SUPERVISORY_AUTHORITY["website"]))
        else:
            rights.append(Right(right, "privacy_contact", f"mailto:{settings.DEFAULT_FROM_EMAIL}"))
    return rights


def report_ccpa(categories: list[ReportCategory]) -> CcpaAnswer:
    """The CCPA's statutory categories for the categories that hold some of the person's data: where
    each came from and why it is collected, and whom it was disclosed to for a business purpose,
    sold to, or shared with for cross-context behavioural advertising."""
    held = [category for category in categories if category.records]
    disclosures: dict[str, dict[ReportRecipient, list[str]]] = {heading: {} for heading in CCPA_DISCLOSURES}
    for category in held:
        for recipient in category.recipients:
            if recipient.ccpa:
                disclosures[recipient.ccpa].setdefault(recipient, []).append(category.info["label"])
    return CcpaAnswer(
        categories=[CcpaCategory(category.info["label"], _source_categories(category.sources), category.info.get("purposes", []))
                    for category in held],
        disclosures={heading: [CcpaDisclosure(recipient, labels) for recipient, labels in found.items()]
                     for heading, found in disclosures.items()},
    )


def _source_categories(sources: list[Source]) -> list[str]:
    """The kinds of source, in words: how the data was obtained, or the kind of organisation that
    gave it."""
    words = taxonomy()
    kinds = [words["source_kinds"].get(s.kind, {}).get("label", s.kind) if s.type == "third_party" and s.kind
             else words["source_types"].get(s.type, {}).get("label", s.type or _("Not known")) for s in sources]
    return list(dict.fromkeys(kinds))


def report_context(*, request: Request, categories: list[ReportCategory], generated_at: dt.datetime,
                   withheld: Iterable[ReportWithheld] = ()) -> dict[str, Any]:
    """What the report's templates show: the archive's page, and the portal's (export_view.py). In
    the report's language: called with it active."""
    language = translation.get_language()
    # A category may have been made in another language (a worker's, the browser's): its words, its recipients' countries
    # among them, are taken again in the report's.
    categories = [replace(category, info=category_info(category.id), about=category_about(category.id, language),
                          count_words=ngettext("%(n)s record", "%(n)s records", category.records) % {"n": category.records},
                          recipients=[replace(recipient, country_name=str(COUNTRIES[recipient.country]))
                                      for recipient in category.recipients])
                  for category in categories]
    return {"request": request, "generated_at": generated_at, "terms_html": terms_html(language), "categories": categories,
            "preview_limit": PREVIEW_RECORDS, "refused": refusals_in_words(request.refusals), "withheld": list(withheld),
            "referral": referral_in_words(request), "rights": report_rights(), "authority": settings.DSAR_SUPERVISORY_AUTHORITY,
            "privacy_contact": settings.DEFAULT_FROM_EMAIL, "zone": zone_of(request.time_zone), "zone_name": request.time_zone or "UTC",
            "ccpa": report_ccpa(categories) if request.jurisdiction == "ccpa" else None}


def report_render(*, request: Request, categories: list[ReportCategory], generated_at: dt.datetime,
                  withheld: Iterable[ReportWithheld] = (), date_range: dict | None = None, parts: list[dict] | None = None) -> bytes:
    """The report's page, as UTF-8, in the person's language and time zone; `withheld` says what a
    review left out or hid, per category; `date_range` the period asked for and the systems that
    could not keep to it, `parts` what each zip of an archive in parts holds, its categories by id (archive.py)."""
    with translation.override(request.language or "en"):
        context = report_context(request=request, categories=categories, generated_at=generated_at, withheld=withheld)
        if parts:
            parts = [{**part, "categories": [category_label(category) for category in part["categories"]]} for part in parts]
        page = render_to_string("exports/index.html", {**context, "date_range": date_range, "parts": parts, "styles": report_styles()},
                                using="jinja2")
    return page.encode("utf-8")


def report_body(*, request: Request, categories: list[ReportCategory], generated_at: dt.datetime,
                page_url: Callable[[ReportCategory, int], str], withheld: Iterable[ReportWithheld] = (),
                date_range: dict | None = None) -> SafeString:
    """The report's content without its page around it, for the portal to show inside its own;
    each category's records a page at a time, `page_url` the link to a category's page; `date_range` as
    report_render takes it."""
    with translation.override(request.language or "en"):
        context = report_context(request=request, categories=categories, generated_at=generated_at, withheld=withheld)
        return mark_safe(render_to_string("exports/_report.html", {**context, "page_url": page_url, "date_range": date_range},
                                          using="jinja2"))  # noqa: S308


@functools.cache
def report_styles() -> SafeString:
    """The report's style sheet, the portal's static file, put inside the archive's page so that
    it opens on its own, offline."""
    return mark_safe((Path(__file__).resolve().parent.parent / "static" / "dsar" / "export-report.css").read_text())  # noqa: S308


def report_prepare() -> None:
    """Compile the report's template and render its fixed parts (the terms, each category's words,
    in every language), and load the URLconf its download link is reversed with. Called in a
    worker's parent before it forks its pool, so that its children share all of it instead of each
    spending a third of a second of CPU on it at its first export."""
    import_module(settings.ROOT_URLCONF)
    get_template("exports/index.html", using="jinja2")
    report_styles()
    for category in category_ids():
        category_slug(category)
    for language, _name in settings.LANGUAGES:
        terms_html(language)
        for category in category_ids():
            category_about(category, language)


# The report's words from the taxonomy are the same in every export of a language: rendered once
# per process and language.


@functools.cache
def terms_html(language: str) -> SafeString:
    """What the legal bases, source types and source kinds mean, in `language`."""
    with translation.override(language):
        return mark_safe(render_to_string("exports/terms.html", {"taxonomy": taxonomy()}))  # noqa: S308 (a rendered template)


@functools.cache
def category_slug(category: str) -> str:
    """The category's anchor in the report."""
    return slugify(category)


@functools.cache
def category_about(category: str, language: str) -> tuple[SafeString, SafeString]:
    """A category's description, purposes and legal basis; and its retention and recipients; in `language`."""
    with translation.override(language):
        info = category_info(category)
        return tuple(mark_safe(render_to_string("exports/category_about.html", {"info": info, "part": part}))  # noqa: S308
                     for part in ("why", "keep"))
