"""What the portal's pages read: the category groups, a request's timeline, its outcome in words.

Reads only. Every word a person sees about a category comes from the taxonomy data file; the
workflow's facts (status, audit trail, export, receipt) come from the request's rows.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from connectors.taxonomy import category_ids, category_label, category_root, taxonomy

from .. import exports
from ..deadlines import deadline_paused_while_asked, deadline_rule
from ..lifecycle import transition_target
from ..models import AuditEntry, Export, Request, RequestType, Status

# The taxonomy group whose data is the account itself: erasing any of it closes the account.
ACCOUNT_GROUP = "identity"


# --- Categories -------------------------------------------------------------------------------------


def category_groups(selected: list[str] | None = None) -> list[dict]:
    """The taxonomy's groups, each with its categories in order; only `selected` ones when given."""
    categories = taxonomy()["categories"]
    chosen = set(selected) if selected else set(categories)
    groups = []
    for group in taxonomy()["groups"]:
        members = [
            {"id": category, **info} for category, info in categories.items() if info["group"] == group["id"] and category in chosen
        ]
        if members:
            groups.append({**group, "categories": members})
    return groups


def deletion_closes_account(selected: list[str] | None) -> bool:
    """Whether erasing these categories (none: all of them) erases the account itself."""
    categories = taxonomy()["categories"]
    return any(categories[c]["group"] == ACCOUNT_GROUP for c in (selected or categories))


def _counts(by_category: dict[str, int]) -> list[dict]:
    """{category: count} as labelled rows in the taxonomy's order, leaving out empty ones."""
    order = {category: index for index, category in enumerate(category_ids())}
    rows = sorted(by_category.items(), key=lambda item: (order.get(category_root(item[0]), len(order)), item[0]))
    return [{"category": c, "label": category_label(c), "count": n} for c, n in rows if n]


# --- Deadlines ---------------------------------------------------------------------------------------


def _period_words(period: relativedelta) -> str:
    """A period as the start page says it: "one month", "two months", "45 days"."""
    if period.months:
        # Translators: how long the law gives us to answer, as in "The law gives us one month to answer".
        small = {1: gettext("one month"), 2: gettext("two months"), 3: gettext("three months")}
        return small.get(period.months) or ngettext("%(count)d month", "%(count)d months", period.months) % {"count": period.months}
    if period.days:
        # Translators: how long the law gives us to answer, as in "The law gives us 45 days to answer".
        small = {1: gettext("one day"), 2: gettext("two days"), 3: gettext("three days")}
        return small.get(period.days) or ngettext("%(count)d day", "%(count)d days", period.days) % {"count": period.days}
    return ""


def deadline_words() -> dict[str, str]:
    """How long the law gives us, and how much longer it may allow, in words ("one month")."""
    rule = deadline_rule()
    return {"within": _period_words(rule.respond_within), "extension": _period_words(rule.extension)}


# --- Times in the person's words ---------------------------------------------------------------------


def zone_words(time_zone: str) -> str:
    """The person's time zone as they would name it: "Berlin time" for Europe/Berlin, "UTC" for UTC."""
    if time_zone in ("UTC", "Etc/UTC"):
        return "UTC"
    place = time_zone.rsplit("/", 1)[-1].replace("_", " ")
    # Translators: a time zone named by its city, as in "Times are in Berlin time." and "(Berlin time)".
    return gettext("%(place)s time") % {"place": place}


def days_left_words(due_at: dt.datetime, time_zone: str, *, now: dt.datetime | None = None) -> str:
    """The calendar days until `due_at` where the person is: "12 days left", "due today"."""
    zone = zoneinfo.ZoneInfo(time_zone)
    days = (due_at.astimezone(zone).date() - (now or timezone.now()).astimezone(zone).date()).days
    if days > 0:
        return ngettext("%(days)d day left", "%(days)d days left", days) % {"days": days}
    if days == 0:
        return gettext("due today")
    return ngettext("%(days)d day late", "%(days)d days late", -days) % {"days": -days}


# --- One request -------------------------------------------------------------------------------------


def request_get(*, request_id) -> Request | None:
    """The request with its export, or None."""
    return Request.objects.select_related("export").filter(pk=request_id).first()


def code_attempts_left(request: Request) -> int:
    """How many more codes an unverified request takes before it locks."""
    return max(settings.DSAR_CODE_MAX_ATTEMPTS - request.code_attempts, 0)


def code_locked(request: Request) -> bool:
    """Whether too many wrong codes locked the request: it can never be confirmed."""
    return request.status == Status.UNVERIFIED and code_attempts_left(request) == 0


@dataclass(frozen=True)
class Step:
    """One line of the timeline: done (with when), the current step, or one still to come."""

    text: str
    state: str
    at: dt.datetime | None = None
    note: str = ""


_EVENTS: dict[str, Promise | dict[str, Promise]] = {
    "filed": {RequestType.ACCESS: _("You asked for a copy of your data"), RequestType.DELETION: _("You asked us to delete your data")},
    "verified": _("You confirmed your email address"),
    "auto_approved": _("You confirmed your email address"),
    "referred": _("We found that an organisation manages your account"),
    "approved": _("Our privacy team approved your request"),
    "extended": _("We moved the due date"),
    "denied": _("Our privacy team turned down your request"),
    "canceled": _("You canceled your request"),
    "failed": _("Something held up your request"),
    "retried": _("We started again"),
    "completed": {RequestType.ACCESS: _("We gathered your data into one file"), RequestType.DELETION: _("We deleted your data")},
    "released": _("We checked your file and made it ready to download"),
    "expired": _("Your download expired and we deleted the file"),
    "asked": _("We asked you for more information"),
    "answered": _("You answered our question"),
}
# Staff notes are shown only where the subject is emailed them anyway.
_NOTES_SHOWN = {"extended"}

_CONFIRM = _("Confirm your email address with the code we sent you")
_REVIEW = _("Our privacy team checks your request")
_WORK = {RequestType.ACCESS: _("We gather your data from our systems"), RequestType.DELETION: _("We delete your data from our systems")}
_END = {RequestType.ACCESS: _("You download your data"), RequestType.DELETION: _("You get a receipt of what we deleted")}
_CHECK = _("We check the file before you can download it")
_ANSWER = _("Answer our question")
_AHEAD = {
    Status.UNVERIFIED: [_CONFIRM, _REVIEW, _WORK, _END],
    Status.PENDING_REVIEW: [_REVIEW, _WORK, _END],
    Status.PROCESSING: [_WORK, _END],
    Status.FAILED: [_WORK, _END],
    Status.AWAITING_SUBJECT: [_ANSWER, _REVIEW, _WORK, _END],
}


def _words(words: Promise | dict[str, Promise], request: Request) -> str:
    """The words for this kind of request, in the language now active."""
    return str(words[request.type] if isinstance(words, dict) else words)


def request_timeline(request: Request, audit: list[AuditEntry], *, export_state: str | None = None) -> list[Step]:
    """What has happened, in plain words (never who on our side did it), then what is still to come."""
    steps = [
        Step(_words(_EVENTS[entry.action], request), "done", entry.at, entry.note if entry.action in _NOTES_SHOWN else "")
        for entry in audit
        if entry.action in _EVENTS
    ]
    ahead = [_CHECK, _END] if export_state == "checking" else _AHEAD.get(request.status, [])
    steps.extend(Step(_words(words, request), "current" if index == 0 else "next") for index, words in enumerate(ahead))
    return steps


_HEADLINES: dict[str, Promise | dict[str, Promise]] = {
    Status.UNVERIFIED: _("Confirm your email address"),
    Status.PENDING_REVIEW: _("We are checking your request"),
    Status.PROCESSING: {RequestType.ACCESS: _("We are gathering your data"), RequestType.DELETION: _("We are deleting your data")},
    Status.COMPLETED: {RequestType.ACCESS: _("Your data is ready to download"), RequestType.DELETION: _("We deleted your data")},
    Status.FAILED: _("Your request is delayed"),
    Status.DENIED: _("We could not carry out your request"),
    Status.CANCELED: _("You canceled this request"),
    Status.EXPIRED: _("Your download has expired"),
    Status.REFERRED: _("Your organisation handles this request"),
    Status.AWAITING_SUBJECT: _("We need more information from you"),
}
_EXPORT_HEADLINES = {"checking": _("We are checking your file"), "gone": _("Your download has expired")}


def _last_note(audit: list[AuditEntry], action: str) -> str:
    return next((entry.note for entry in reversed(audit) if entry.action == action), "")


def _export_state(request: Request) -> tuple[str | None, Export | None]:
    """For a completed access request: "ready", "checking" (waiting for release) or "gone"."""
    if request.type != RequestType.ACCESS or request.status not in (Status.COMPLETED, Status.EXPIRED):
        return None, None
    try:
        export = request.export
    except Export.DoesNotExist:
        export = None
    if export is None or export.deleted_at is not None or export.expires_at <= timezone.now():
        return "gone", None
    return ("ready" if export.released_at else "checking"), export


def contact_href(contact: str) -> str:
    """A link for an organisation's contact route when it is an email address or a web page, else ""."""
    contact = contact.strip()
    if contact.startswith(("https://", "http://")) and not any(c.isspace() for c in contact):
        return contact
    if "@" in contact and "://" not in contact and not any(c.isspace() for c in contact):
        return f"mailto:{contact}"
    return ""


def contact_html(contact: str) -> str:
    """An organisation's contact route as the page shows it, a link when it is an address or a web
    page: made here, so that the sentence around it is translated whole; "" when there is none."""
    if not contact:
        return ""
    href = contact_href(contact)
    if href:
        return format_html('<a class="contact" href="{}">{}</a>', href, contact)
    return format_html('<strong class="contact">{}</strong>', contact)


def export_downloadable(request: Request) -> Export | None:
    """The request's export if it can be downloaded now, by the same rules as its emailed link."""
    state, export = _export_state(request)
    if state != "ready":
        return None
    signature = exports.download_url(export).rsplit("/", 1)[1]
    return exports.export_for_download(request_id=request.id, signature=signature)


def request_page(request: Request) -> dict:
    """Everything the request's page shows."""
    audit = list(request.audit.all())
    state, export = _export_state(request)
    result = request.result or {}
    page = {
        "request": request,
        "headline": _words(_EXPORT_HEADLINES.get(state) or _HEADLINES[request.status], request),
        "timeline": request_timeline(request, audit, export_state=state),
        "open": request.status in _AHEAD,
        # Worth watching for a change: something on our side is under way.
        "poll": request.status in (Status.PENDING_REVIEW, Status.PROCESSING, Status.FAILED) or state == "checking",
        "can_cancel": transition_target(request.status, "canceled") is not None,
        "extension_reason": _last_note(audit, "extended") if request.extended_at else "",
        "export_state": state,
        "export": export,
        "download_url": exports.download_url(export) if state == "ready" else "",
        "download_parts": exports.download_urls(export) if state == "ready" else [],
        "referral": exports.referral_in_words(request),
        "contact": contact_html(request.referred_contact or ""),
        "zone": zone_words(request.time_zone),
        "days_left": days_left_words(request.due_at, request.time_zone),
    }
    if request.status == Status.DENIED:
        page["denial_reason"] = _last_note(audit, "denied")
    if request.status == Status.COMPLETED and request.type == RequestType.DELETION:
        page["recipients_notified"] = result.get("recipients_notified", [])
    if request.refusals and request.status in (Status.PROCESSING, Status.COMPLETED, Status.EXPIRED):
        page["refused"] = exports.refusals_in_words(request.refusals)
    if state == "ready":
        page["contents"] = _counts(result.get("categories", {}))
    if request.status == Status.AWAITING_SUBJECT:
        question = request.questions.filter(answered_at__isnull=True).first()
        page["question"] = question
        # What the deadline does until the person answers, which the page tells them in the words of their law.
        page["deadline_paused"] = question is not None and deadline_paused_while_asked(request.jurisdiction, question.purpose)
        page["deadline_rule"] = deadline_rule(request.jurisdiction)
        page["answer_file_max_bytes"] = settings.DSAR_ANSWER_FILE_MAX_BYTES
    return page
