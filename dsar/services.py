"""What people and staff do to a request: file, verify, cancel, approve, deny, extend, retry, ask
the person for more information and take their answer.

Each service locks the request's row, checks the change with the state machine, writes the audit
entry in the same transaction, and sends mail or Celery messages only once that transaction has
committed. Views, API classes and commands call these; none of them holds a workflow rule.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import math
import secrets
import uuid
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext_lazy

from connectors.base import AgeEvidence, Connector, ErasureReceipt, ErasureStep, FileItem, Identity, Organization, Record, TransientError
from connectors.manual import ManualConnector
from connectors.registry import connector_get, connector_names, connector_waits_for, systems
from connectors.systems import System
from connectors.taxonomy import category_ids, category_known, category_label, category_root, category_sensitive

from . import exports, locks, orm_bypass, processing, verification
from .zones import time_zones
from .deadlines import deadline_paused_while_asked, due_at_for, extension_limit
from .errors import Conflict, InvalidInput, Locked, NotFound, ServiceError, TooSoon, Unavailable
from .lifecycle import IllegalTransition, audit_entry_new, audit_record, request_transition, transition_target
from .models import (AuditEntry, Authority, ConnectorTask, DenialGround, Export, QuestionPurpose, Request, RequestQuestion, RequestType,
                     Status, SystemCheck, TaskStatus)
from .notifications import code_email, email_enqueue, email_on_commit, emails_ring_on_commit
from .staff import ROLE_REVIEWER, staff_has_role
from .system_checks import system_check_record, system_check_run

logger = logging.getLogger(__name__)
T = TypeVar("T")

SUBJECT = "subject"
SYSTEM = "system"
OPEN_STATUSES = (Status.UNVERIFIED, Status.PENDING_REVIEW, Status.PROCESSING, Status.FAILED, Status.AWAITING_SUBJECT)


def email_normalize(email: str) -> str:
    """Trim and lower-case an address, or refuse it."""
    normalized = email.strip().lower()
    try:
        EmailValidator()(normalized)
    except ValidationError:
        raise InvalidInput(_("Enter a valid email address."), code="invalid_email") from None
    return normalized


def _locked(request_id) -> Request:
    try:
        return locks.request_lock(request_id)
    except Request.DoesNotExist:
        raise NotFound(_("No such request.")) from None


# A request's status as the person's refusals below name it ("This request is pending review").
_STATUS_WORDS = {
    # Translators: a request's status, in "This request is %(status)s; it cannot be canceled." (and answered).
    Status.UNVERIFIED: pgettext_lazy("request status", "unverified"),
    Status.PENDING_REVIEW: pgettext_lazy("request status", "pending review"),
    Status.PROCESSING: pgettext_lazy("request status", "processing"),
    Status.COMPLETED: pgettext_lazy("request status", "completed"),
    Status.FAILED: pgettext_lazy("request status", "failed"),
    Status.DENIED: pgettext_lazy("request status", "denied"),
    Status.CANCELED: pgettext_lazy("request status", "canceled"),
    Status.EXPIRED: pgettext_lazy("request status", "expired"),
    Status.REFERRED: pgettext_lazy("request status", "referred"),
    Status.AWAITING_SUBJECT: pgettext_lazy("request status", "awaiting subject"),
}
# The person's own actions the state machine may refuse, each in a whole sentence of their language;
# the actions of staff are refused in the console's English.
_SUBJECT_REFUSALS = {
    "canceled": gettext_lazy("This request is %(status)s; it cannot be canceled."),
    "answered": gettext_lazy("This request is %(status)s; it cannot be answered."),
}


def _transition(request: Request, action: str, **kwargs) -> None:
    try:
        request_transition(request, action, **kwargs)
    except IllegalTransition as error:
        if action in _SUBJECT_REFUSALS:
            detail = _SUBJECT_REFUSALS[action] % {"status": _STATUS_WORDS[error.from_status]}
        else:
            detail = f"This request is {error.from_status.replace('_', ' ')}; it cannot be {action.replace('_', ' ')}."
        raise Conflict(detail, code="illegal_transition") from None


# --- The data subject ------------------------------------------------------------------------------


def request_create(*, type: str, email: str, categories: Sequence[str] | None = None, time_zone: str | None = None,
                   language: str | None = None, date_from: dt.date | None = None, date_to: dt.date | None = None,
                   part_size: int | None = None) -> Request:
    """File a request and email a verification code. Never reveals whether the email is known.
    `time_zone` and `language` are the person's (their browser's): what they read is given in them.
    An access request may ask only for data from the days `date_from` to `date_to` (either open), and
    for its export in zips of at most `part_size` bytes (`request_choices_check`)."""
    if type not in RequestType.values:
        raise InvalidInput(_("type must be one of %(types)s.") % {"types": ", ".join(RequestType.values)}, code="invalid_type")
    if time_zone is not None and time_zone not in time_zones():
        raise InvalidInput(_("time_zone must be an IANA time zone name, such as Europe/Berlin."), code="invalid_time_zone")
    request_choices_check(type=type, date_from=date_from, date_to=date_to, part_size=part_size, time_zone=time_zone)
    languages = [code for code, _ in settings.LANGUAGES]
    if language is not None and language not in languages:
        raise InvalidInput(_("language must be one of %(languages)s.") % {"languages": ", ".join(languages)},
                           code="invalid_language")
    email = email_normalize(email)
    known = category_ids()
    if categories is None or len(categories) == 0:
        chosen = known
    else:
        unknown = sorted(set(categories) - set(known))
        if unknown:
            raise InvalidInput(_("Unknown categories: %(categories)s.") % {"categories": ", ".join(unknown)},
                               code="invalid_category")
        chosen = [c for c in known if c in set(categories)]
    now = timezone.now()
    request = Request(type=type, email=email, categories=chosen, jurisdiction=settings.DSAR_JURISDICTION,
                      time_zone=time_zone or "UTC", language=language or settings.LANGUAGE_CODE, date_from=date_from, date_to=date_to,
                      part_size=part_size, created_at=now, due_at=due_at_for(now))
    verification.code_issue(request, now)
    email = code_email(request)
    orm_bypass.request_file(request, audit_entry_new(request, actor=SUBJECT, action="filed", note=f"{type} request filed"), email)
    emails_ring_on_commit([email])
    logger.info("request %s: filed (%s)", request.id, type)
    return request


# The sizes a person can choose for the parts of a large export, by the name the API and the form
# give them (decimal gigabytes, so a 4 GB part fits a FAT32 drive's largest file).
PART_SIZES = {"1GB": 10**9, "2GB": 2 * 10**9, "4GB": 4 * 10**9}


def request_choices_check(*, type: str, date_from: dt.date | None, date_to: dt.date | None, part_size: int | None,
                          time_zone: str | None) -> None:
    """InvalidInput unless the period and the part size fit the request: only an access request has
    them (a deletion is of everything asked), the period's first day is not after its last, and
    neither is in the future where the person is (`time_zone`)."""
    if type == RequestType.DELETION and (date_from or date_to):
        raise InvalidInput(_("A deletion request covers all the data asked for: it cannot be limited to dates."),
                           code="period_not_allowed")
    if type == RequestType.DELETION and part_size:
        raise InvalidInput(_("A deletion request has no export to split into parts."), code="part_size_not_allowed")
    if part_size is not None and part_size <= 0:
        raise InvalidInput(_("part_size must be a positive number of bytes."), code="invalid_part_size")
    if date_from and date_to and date_from > date_to:
        raise InvalidInput(_("The first day of the period comes after its last day."), code="invalid_period")
    today = timezone.now().astimezone(zoneinfo.ZoneInfo(time_zone or "UTC")).date()
    if any(day and day > today for day in (date_from, date_to)):
        raise InvalidInput(_("A day of the period is in the future."), code="period_in_future")


def _locked_awaiting_code(request_id) -> Request:
    """Lock a request that still waits for its code; refuse one verified already, lapsed or locked."""
    request = _locked(request_id)
    if request.status != Status.UNVERIFIED:
        raise Conflict(_("This request is already verified."), code="already_verified")
    # Past this age the person is told the request lapsed and nothing was done (jobs.unverified_purge),
    # whether or not that job has run yet: it cannot come back to life.
    if request.created_at < timezone.now() - dt.timedelta(days=settings.DSAR_UNVERIFIED_PURGE_DAYS):
        days = settings.DSAR_UNVERIFIED_PURGE_DAYS
        said = ngettext("This request lapsed: it was not confirmed within %(days)d day. Make a new request.",
                        "This request lapsed: it was not confirmed within %(days)d days. Make a new request.", days)
        raise Conflict(said % {"days": days}, code="request_lapsed")
    if request.code_attempts >= settings.DSAR_CODE_MAX_ATTEMPTS:
        raise Locked(_("Too many wrong codes: this request is locked. File a new request."))
    return request


def request_verify(*, request_id, code: str) -> tuple[Request, str]:
    """Check a verification code. On success returns the request and its new bearer token.

    A wrong code counts an attempt, committed even though the call fails; the fifth locks the
    request. A verified request is approved automatically or queued for review; but when an
    organisation manages the account (GDPR Art. 28: the company processes its data on the
    organisation's behalf), the systems whose data it controls are referred to it, recorded on the
    request with its name and contact, and the person is told whom to ask for that part; when no
    system of the company's own could hold what the request asks for, the whole request is
    referred, and closed.
    """
    failure: Exception | None = None
    with transaction.atomic():
        request = _locked_awaiting_code(request_id)
        if request.code_expires_at is None or request.code_expires_at <= timezone.now():
            raise InvalidInput(_("This code has expired. Ask for a new one."), code="code_expired")
        if not verification.code_matches(code, request.code_hash):
            request.code_attempts += 1
            request.save(update_fields=["code_attempts", "updated_at"])
            audit_record(request, actor=SUBJECT, action="code_rejected", note=f"attempt {request.code_attempts}")
            if request.code_attempts >= settings.DSAR_CODE_MAX_ATTEMPTS:
                failure = Locked(_("Too many wrong codes: this request is locked. File a new request."))
            else:
                left = settings.DSAR_CODE_MAX_ATTEMPTS - request.code_attempts
                said = ngettext("That code is not right. %(left)d attempt left.", "That code is not right. %(left)d attempts left.", left)
                failure = InvalidInput(said % {"left": left}, code="invalid_code")
        else:
            token, token_hash = verification.token_new()
            request.token_hash = token_hash
            request.code_hash = ""
            request.verified_at = timezone.now()
            fields = ["token_hash", "code_hash", "verified_at", *_minor_flag(request)]
            organization = _managing_organization(request)
            referred, answered_here = _organization_part(request) if organization else ([], True)
            referral = None
            if referred:
                request.referred_to, request.referred_contact = organization.name, organization.contact or ""
                request.referred_systems = referred
                fields += ["referred_to", "referred_contact", "referred_systems"]
                referral = {"referred_to": organization.name, "systems": [part["system"] for part in referred]}
            if referred and not answered_here:
                request.result = exports.referral_as_dict(request)
                _transition(request, "referred", actor=SUBJECT, note=f"managed by {organization.name}", data=referral,
                            update_fields=[*fields, "result"])
                email_on_commit(request, "referred")
            elif settings.DSAR_AUTO_APPROVE and request.minor_age is None:  # a child's request waits for a reviewer
                _transition(request, "auto_approved", actor=SYSTEM, update_fields=fields, data=referral)
                processing.tasks_create(request)
                # One email for the one change: work has started, which also says it was received.
                email_on_commit(request, "started", confirmed=True)
            else:
                _transition(request, "verified", actor=SUBJECT, update_fields=fields, data=referral)
                email_on_commit(request, "received")
    if failure is not None:
        raise failure
    logger.info("request %s: verified, now %s", request.id, request.status)
    return request, token


def request_code_resend_wait(*, request: Request) -> int:
    """Whole seconds until another code may be sent for this request (0: now)."""
    if request.code_sent_at is None:
        return 0
    left = (request.code_sent_at + dt.timedelta(seconds=settings.DSAR_CODE_RESEND_SECONDS) - timezone.now()).total_seconds()
    return max(0, math.ceil(left))


def request_code_resend(*, request_id) -> Request:
    """Send a fresh code for an unverified request, at most once a minute. Wrong attempts still
    count against the request: a new code does not reset them."""
    with transaction.atomic():
        request = _locked_awaiting_code(request_id)
        wait = request_code_resend_wait(request=request)
        if wait > 0:
            said = ngettext("A code was sent moments ago. You can ask for another in %(seconds)d second.",
                            "A code was sent moments ago. You can ask for another in %(seconds)d seconds.", wait)
            raise TooSoon(said % {"seconds": wait}, code="resend_cooldown")
        verification.code_issue(request, timezone.now())
        request.save(update_fields=["code_hash", "code_sent_at", "code_expires_at", "updated_at"])
        audit_record(request, actor=SUBJECT, action="code_resent")
        email_enqueue(code_email(request))
    return request


def _organization_part(request: Request) -> tuple[list[dict], bool]:
    """For a subject whose account an organisation manages: the systems whose data it controls
    (`organization_controls`) that could hold what the request asks for, each with those of the
    request's categories, and whether any system of the company's own could hold some of it too."""
    referred, answered_here = [], False
    for name, system in systems().items():
        held = {category_root(category) for category in connector_get(name).categories}
        asked = [category for category in request.categories if category in held]
        if asked and system.organization_controls:
            referred.append({"system": name, "categories": asked})
        elif asked:
            answered_here = True
    return referred, answered_here


def _systems_answer(request: Request, question: str, ask: Callable[[Connector], T | None]) -> Iterator[T]:
    """Each system's answer to `ask` about the request's subject, those with none left out, in the
    systems' order; Unavailable as soon as one cannot answer (the person tries again later)."""
    for name in connector_names():
        try:
            answer = ask(connector_get(name))
        except TransientError as error:
            logger.warning("request %s: %s could not say %s: %s", request.id, name, question, error)
            raise Unavailable(_("A system we must check is unavailable. Try again in a few minutes.")) from None
        if answer is not None:
            yield answer


def _managing_organization(request: Request) -> Organization | None:
    """The organisation that manages this subject's account, as the first system to know says."""
    identity = Identity(email=request.email)
    return next(_systems_answer(request, "who manages the account", lambda connector: connector.managing_organization(identity)), None)


def _minor_flag(request: Request) -> list[str]:
    """Flag a verified request whose subject a system shows may be younger than its law's age of a
    child (DSAR_CHILD_AGE: GDPR Art. 8, CCPA §1798.120(c)): keep the lowest age and where it came
    from, with an audit entry saying why it waits for a reviewer, auto-approval or not. The fields set."""
    evidence = _subject_age(request)
    child_age = settings.DSAR_CHILD_AGE[request.jurisdiction]
    if evidence is None or evidence.lowest >= child_age:
        return []
    request.minor_age, request.minor_age_source = evidence.lowest, evidence.source
    audit_record(request, actor=SYSTEM, action="minor_flagged", data={"age": evidence.lowest, "source": evidence.source},
                 note=f"{evidence.source} shows the subject may be as young as {evidence.lowest}, under {child_age}: a child under "
                      f"the {request.jurisdiction.upper()}. A reviewer approves the request, confirming whose authority it is made "
                      "on, even with auto-approval on.")
    return ["minor_age", "minor_age_source"]


def _subject_age(request: Request) -> AgeEvidence | None:
    """The youngest age any connector shows the subject may be on the day they verified, and where."""
    identity, on = Identity(email=request.email), request.verified_at.date()
    ages = _systems_answer(request, "how old the subject is", lambda connector: connector.subject_age(identity, on=on))
    return min(ages, key=lambda evidence: evidence.lowest, default=None)


def request_get_for_subject(*, request_id, token: str | None) -> Request:
    """The request, if `token` is its bearer token; NotFound for anything else."""
    try:
        request = Request.objects.select_related("export").get(pk=request_id)
    except (Request.DoesNotExist, ValidationError, ValueError):
        raise NotFound(_("No such request.")) from None
    if not token or not verification.token_matches(token, request.token_hash):
        raise NotFound(_("No such request."))
    return request


def request_cancel(*, request_id) -> Request:
    """The subject withdraws a request that is not yet being processed. Once its address was
    confirmed, the address is told: a withdrawal by someone else who had the link comes to light."""
    with transaction.atomic():
        request = _locked(request_id)
        confirmed = request.status != Status.UNVERIFIED
        _transition(request, "canceled", actor=SUBJECT)
        if confirmed:
            email_on_commit(request, "withdrawn", start_url=settings.DSAR_PUBLIC_URL + reverse("portal:request-new"))
    return request


# --- Staff ------------------------------------------------------------------------------------------


def request_approve(*, request_id, actor: str, note: str = "", refuse: Sequence[Mapping[str, str]] = (), authority: str = "",
                    withhold_sensitive: bool = False) -> Request:
    """pending_review -> processing, and fan out one task per connector.

    `refuse` names the parts staff will not answer (GDPR Art. 12(4)), each {"category": id} or
    {"system": name} with its "reason": a refused category is neither gathered nor erased, a refused
    system gets no task, and the person is emailed what will not be answered and why. The request
    keeps them (`refusals`), and so does the approval's audit entry. Refusing all of it is a denial:
    InvalidInput, as for any part that cannot be refused, and nothing changes.

    A request flagged as a child's (`minor_age`) needs `authority`: whose authority the reviewer
    confirmed, `subject` or `parent_or_guardian` (GDPR Art. 8, CCPA §1798.120(c)). Under
    DSAR_CHILD_YOUNGEST_AGE only a parent's or guardian's releases an access request's sensitive
    categories; `withhold_sensitive` refuses them instead, the person told why and how a parent or
    guardian can obtain them. The request keeps the authority, and so does the audit entry."""
    if authority and authority not in Authority.values:
        raise InvalidInput(f"authority must be one of {', '.join(Authority.values)}.", code="invalid_authority")
    with transaction.atomic():
        request = _locked(request_id)
        withheld = _child_withheld(request, refuse, authority=authority, withhold_sensitive=withhold_sensitive)
        # The categories are what every connector and the export read: the refused ones go from them.
        request.refusals, request.categories = _refusals_checked(request, [*refuse, *withheld])
        request.authority_confirmed = authority
        said = {"refusals": request.refusals, "authority": authority}
        _transition(request, "approved", actor=actor, note=note, update_fields=["categories", "refusals", "authority_confirmed"],
                    data={key: value for key, value in said.items() if value} or None)
        processing.tasks_create(request)
        # Either email tells the person that work has started; the one with refusals also says what will not be answered.
        email_on_commit(request, "refused_in_part" if request.refusals else "started")
    logger.info("request %s: approved", request.id)
    return request


def _child_withheld(request: Request, refuse: Sequence[Mapping[str, str]], *, authority: str,
                    withhold_sensitive: bool) -> list[dict[str, str]]:
    """The refusals withholding a child's sensitive categories at approval, those staff do not refuse
    themselves; InvalidInput when the approval does not say whose authority was confirmed, names one
    for a request not flagged as a child's, or names the child's own where only a parent's or
    guardian's may release them."""
    if request.minor_age is None:
        if authority or withhold_sensitive:
            raise InvalidInput("This request is not flagged as a child's: approve it without an authority.", code="not_a_child")
        return []
    if not authority:
        raise InvalidInput(f"The subject may be a child (as young as {request.minor_age}, by {request.minor_age_source}): say "
                           f"whose authority you confirmed, {' or '.join(Authority.values)}.", code="authority_required")
    refused = {refusal.get("category") for refusal in refuse}
    # Only an access request releases data: a child's deletion erases their sensitive data with the rest.
    sensitive = [category for category in request.categories if category_sensitive(category) and category not in refused
                 and request.type == RequestType.ACCESS]
    child_age, youngest = settings.DSAR_CHILD_AGE[request.jurisdiction], settings.DSAR_CHILD_YOUNGEST_AGE[request.jurisdiction]
    if withhold_sensitive:
        # Kept with the request and shown to the person: in their language, not the reviewer's.
        with translation.override(request.language or settings.LANGUAGE_CODE):
            reason = exports.child_withheld_reason(under=youngest if request.minor_age < youngest else child_age)
        return [{"category": category, "reason": reason} for category in sensitive]
    if sensitive and authority == Authority.SUBJECT and request.minor_age < youngest:
        # A reviewer's refusal, in the console's English: the labels too, whatever language the browser asks for.
        with translation.override(None):
            labels = ", ".join(map(category_label, sensitive))
        raise InvalidInput(f"Only a parent or guardian may receive {labels} of a child under "
                           f"{youngest}: confirm a parent's or guardian's authority, or withhold them.",
                           code="parent_or_guardian_required")
    return []


def _refusals_checked(request: Request, refuse: Sequence[Mapping[str, str]]) -> tuple[list[dict[str, str]], list[str]]:
    """The parts of `request` refused at its approval, each with its reason trimmed, and the
    categories left to answer; InvalidInput names the first part that cannot be refused."""
    refusals: list[dict[str, str]] = []
    for refusal in refuse:
        if len(refusal.keys() & {"category", "system"}) != 1:
            raise InvalidInput("Name either a category or a system to refuse.", code="invalid")
        kind = "category" if "category" in refusal else "system"
        name, reason = refusal[kind], refusal.get("reason", "").strip()
        if kind == "category" and not category_known(name):
            raise InvalidInput(f"Unknown category: {name}.", code="invalid_category")
        if kind == "category" and name not in request.categories:
            raise InvalidInput(f"This request does not ask for {name}, so it cannot be refused.", code="category_not_requested")
        if kind == "system" and name not in connector_names():
            raise InvalidInput(f"No system is named {name}.", code="invalid_system")
        if kind == "system" and any(part["system"] == name for part in request.referred_systems):
            raise InvalidInput(f"{name} holds data the organisation managing the account controls: it was referred to "
                               f"{request.referred_to} at verification, and is not answered here.", code="system_referred")
        if not reason:
            raise InvalidInput(f"Give the reason for refusing {name}: the person is told it.", code="reason_required")
        if any(other.get(kind) == name for other in refusals):
            raise InvalidInput(f"{name} is refused twice.", code="duplicate_refusal")
        refusals.append({kind: name, "reason": reason})
    refused = {refusal.get("category") for refusal in refusals}
    categories_left = [category for category in request.categories if category not in refused]
    systems_left = processing.systems_answering(refusals, request.referred_systems)
    if refusals and not (categories_left and systems_left):
        raise InvalidInput("That refuses the whole request: deny it instead, with the reason.", code="deny_instead")
    # A system found by identities a refused one finds would wait for it forever.
    for name in systems_left:
        if needed := sorted(connector_waits_for(name) - set(systems_left)):
            raise InvalidInput(f"{name} is found by what {', '.join(needed)} finds: refuse {name} too, or answer "
                               f"{', '.join(needed)}.", code="system_needed")
    return refusals, categories_left


def request_deny(*, request_id, actor: str, reason: str, ground: str = DenialGround.NONE) -> Request:
    """Refuse a request with a reason the subject is told and, when the law's, its ground: manifestly
    unfounded or excessive (GDPR Art. 12(5), CCPA §1798.145(h)(3)), which the reason must show."""
    if not reason.strip():
        raise InvalidInput("A reason is required.", code="reason_required")
    if ground not in DenialGround.values:
        raise InvalidInput(f"ground must be one of {', '.join(value for value in DenialGround.values if value)}.",
                           code="invalid_ground")
    with transaction.atomic():
        request = _locked(request_id)
        request.denial_ground = ground
        _transition(request, "denied", actor=actor, note=reason, data={"ground": ground} if ground else None,
                    update_fields=["denial_ground"])
        email_on_commit(request, "denied", reason=reason)
    return request


def _extend_refusal(request: Request) -> Conflict | None:
    if request.status not in OPEN_STATUSES:
        return Conflict(f"A {request.status} request has no deadline to extend.", code="illegal_transition")
    if request.extended_at is not None:
        return Conflict("This request's deadline was already extended once.", code="already_extended")
    # The law lets a deadline be extended while it runs (GDPR Art. 12(3), CCPA): a missed one stays missed.
    if request.due_at <= timezone.now():
        return Conflict(f"This request's deadline passed on {request.due_at:%Y-%m-%d}; it can no longer be extended.",
                        code="deadline_passed")
    return None


def request_extend(*, request_id, actor: str, reason: str, days: int) -> Request:
    """Move the deadline once, before it passes, by at most the jurisdiction's extension; the
    subject is emailed the reason and the new date."""
    if not reason.strip():
        raise InvalidInput("A reason is required.", code="reason_required")
    if days < 1:
        raise InvalidInput("days must be at least 1.", code="invalid_days")
    with transaction.atomic():
        request = _locked(request_id)
        if refusal := _extend_refusal(request):
            raise refusal
        new_due = request.due_at + dt.timedelta(days=days)
        limit = extension_limit(request.due_at, request.jurisdiction)
        if new_due > limit:
            raise InvalidInput(f"The law allows extending to {limit:%Y-%m-%d} at the latest.", code="extension_too_long")
        old_due = request.due_at
        request.due_at, request.extended_at = new_due, timezone.now()
        request.save(update_fields=["due_at", "extended_at", "updated_at"])
        audit_record(request, actor=actor, action="extended", note=reason, data={"from": old_due.isoformat(), "to": new_due.isoformat()})
        email_on_commit(request, "extended", reason=reason, new_due_at=new_due)
    return request


def _release_refusal(request: Request, export: Export | None) -> Conflict | None:
    if request.status != Status.COMPLETED or export is None or export.deleted_at is not None:
        return Conflict("Only a completed access request with an export can be released.", code="illegal_transition")
    if export.released_at is not None:
        return Conflict("This export was already released.", code="already_released")
    if export.others and export.review is None:
        return Conflict("This export may hold other people's data: review it, then release it as decided.", code="review_required")
    if not settings.DSAR_REVIEW_BEFORE_RELEASE:
        return Conflict("This deployment releases each export as soon as it is made.", code="illegal_transition")
    return None


def request_release(*, request_id, actor: str, note: str = "") -> Request:
    """Release a completed access request's export to the subject after review (when the
    deployment reviews exports before release). The subject is emailed the download link, which
    works for DSAR_EXPORT_TTL_DAYS from now: the download period starts when the person can use it."""
    with transaction.atomic():
        request = _locked(request_id)
        export = locks.export_lock(request.pk)
        if refusal := _release_refusal(request, export):
            raise refusal
        export.released_at = timezone.now()
        export.expires_at = export.released_at + dt.timedelta(days=settings.DSAR_EXPORT_TTL_DAYS)
        export.save(update_fields=["released_at", "expires_at"])
        audit_record(request, actor=actor, action="released", note=note)
        email_on_commit(request, "completed", **exports.download_links(export), expires_at=export.expires_at)
    return request


def _review_refusal(request: Request, export: Export | None) -> Conflict | None:
    if request.status != Status.COMPLETED or export is None or export.deleted_at is not None:
        return Conflict("Only a completed access request with an export can be reviewed.", code="illegal_transition")
    if export.released_at is not None:
        return Conflict("This export was already released.", code="already_released")
    if not export.others:
        return Conflict("This export holds nothing that may be other people's data.", code="nothing_to_review")
    return None


def request_review_items(*, request_id) -> list[exports.ReviewItem]:
    """The records and files of a held export that may be other people's data, for staff to decide
    on (`request_release_reviewed`); Conflict when the request has no such export waiting."""
    request = Request.objects.select_related("export").filter(pk=request_id).first()
    if request is None:
        raise NotFound("No such request.")
    if refusal := _review_refusal(request, getattr(request, "export", None)):
        raise refusal
    return exports.review_items(request.tasks.order_by("connector"))


def request_release_reviewed(*, request_id, actor: str, decisions: Sequence[Mapping], note: str = "") -> Request:
    """Release an export held because it may hold other people's data (GDPR Art. 15(4)), as staff
    decided for each such record and file: released as it is, withheld, or a record's named fields
    redacted, anything withheld or redacted with its reason (`exports.review_decisions_checked`).

    When anything is withheld or redacted, the archive is written again from the staged work as
    decided, its report saying per category what was left out or hidden and why, and in the
    transaction that releases the export it takes the held archive's place, which is deleted once
    that commits. The decisions are kept on the export and in the audit entry, and the person is
    emailed the link and what was withheld. Decisions that are wrong are InvalidInput, and nothing
    changes."""
    items = request_review_items(request_id=request_id)
    decided = exports.review_decisions_checked(items, decisions)
    withheld = exports.review_withheld(items, decided)
    archive = None
    if withheld:
        # Written before the transaction, which it would hold open for as long as a large archive takes.
        request = Request.objects.get(pk=request_id)
        archive = exports.review_archive_build(request, request.tasks.order_by("connector"), items, decided)
    try:
        with transaction.atomic():
            request = _locked(request_id)
            export = locks.export_lock(request.pk)
            if refusal := _review_refusal(request, export):
                raise refusal
            now, changed = timezone.now(), ["review", "released_at", "expires_at"]
            if archive is not None:
                held = exports.export_paths(export)
                transaction.on_commit(lambda: [exports.storage_delete(path) for path in held])
                export.path, export.bytes, export.sha256 = archive.path, archive.bytes, archive.sha256
                export.parts = exports.export_parts_as_json(archive)
                changed += ["path", "bytes", "sha256", "parts"]
                request.result = {**(request.result or {}), "categories": archive.categories, "bytes": archive.total_bytes}
                request.save(update_fields=["result", "updated_at"])
            export.review = {"decisions": [decision.as_dict() for decision in decided], "by": actor, "at": now.isoformat()}
            export.released_at, export.expires_at = now, now + dt.timedelta(days=settings.DSAR_EXPORT_TTL_DAYS)
            export.save(update_fields=changed)
            audit_record(request, actor=actor, action="released", note=note, data={"review": export.review["decisions"]})
            email_on_commit(request, "completed", **exports.download_links(export), expires_at=export.expires_at,
                            withheld=[asdict(item) for item in withheld])
            transaction.on_commit(lambda: exports.stage_discard(request.pk))
    except BaseException:
        if archive is not None:
            for path in archive.paths:  # nobody's: the held archive stays as it was
                exports.storage_delete(path)
        raise
    logger.info("request %s: released after review", request.pk)
    return request


def request_retry(*, request_id, actor: str) -> Request:
    """Re-run what failed in a failed request: its failed connector tasks, or its final step."""
    with transaction.atomic():
        request = _locked(request_id)
        reason, request.failure_reason = request.failure_reason, ""
        _transition(request, "retried", actor=actor, note=reason, update_fields=["failure_reason"])
        processing.tasks_retry(request)
    return request


# The review actions whose rule is the state machine's, by the transition each makes.
_REVIEW_TRANSITIONS = {"approve": "approved", "deny": "denied", "retry": "retried", "ask": "asked"}


def request_actions_allowed(*, request: Request) -> set[str]:
    """The review actions (approve, deny, extend, retry, release, review, ask) the services would accept for
    `request` as it is now: what the console offers. Its export, if any, is read from the request."""
    allowed = {name for name, action in _REVIEW_TRANSITIONS.items() if transition_target(request.status, action)}
    if _extend_refusal(request) is None:
        allowed.add("extend")
    if _release_refusal(request, getattr(request, "export", None)) is None:
        allowed.add("release")
    if _review_refusal(request, getattr(request, "export", None)) is None:
        allowed.add("review")
    return allowed


# --- Asking the person for more information -------------------------------------------------------------

ANSWER_MAX_CHARS = 5000
# The kinds of file an answer may carry, by the bytes each kind starts with: what the file is, read
# from the file itself, never from its name or the type its sender declared. A scan of an identity
# document or a letter is one of these.
ANSWER_FILE_TYPES = {b"%PDF-": ("application/pdf", ".pdf"), b"\x89PNG\r\n\x1a\n": ("image/png", ".png"),
                     b"\xff\xd8\xff": ("image/jpeg", ".jpg")}


def request_ask(*, request_id, actor: str, question: str, purpose: str) -> Request:
    """Ask the person a question before acting on their request: `identity` when there are
    reasonable doubts about who is asking (GDPR Art. 12(6), 11(2)), `scope` when it is unclear what
    the request covers (Recital 63). pending_review -> awaiting_subject; the question is kept and
    emailed to the person with the link to their request's page, where they answer it. Where the
    request's law stops the clock while the person is asked (`deadlines.deadline_paused_while_asked`),
    the deadline stands still from now until the request leaves awaiting_subject (`lifecycle`)."""
    if purpose not in QuestionPurpose.values:
        raise InvalidInput(f"purpose must be one of {', '.join(QuestionPurpose.values)}.", code="invalid_purpose")
    if not question.strip():
        raise InvalidInput("A question is required.", code="question_required")
    with transaction.atomic():
        request = _locked(request_id)
        now = timezone.now()
        paused = deadline_paused_while_asked(request.jurisdiction, purpose)
        request.deadline_paused_at = now if paused else None
        _transition(request, "asked", actor=actor, note=question, data={"purpose": purpose, "deadline_paused": paused},
                    update_fields=["deadline_paused_at"])
        RequestQuestion.objects.create(request=request, purpose=purpose, text=question, asked_by=actor, asked_at=now)
        email_on_commit(request, "question", question=question)
    return request


def request_answer(*, request_id, answer: str, file: bytes | None = None) -> Request:
    """The person answers the question they were asked, with text and at most one file (a PDF, PNG
    or JPEG of at most DSAR_ANSWER_FILE_MAX_BYTES, its kind read from its bytes). awaiting_subject ->
    pending_review, for staff to review again; a deadline that stood still while the person was asked
    runs again, moved later by the time they took (`lifecycle`). The file is kept under a random name. A
    bad answer is InvalidInput, one to a request that waits for none Conflict: either changes nothing."""
    if not answer.strip():
        raise InvalidInput(_("Write your answer."), code="answer_required")
    kind = _answer_file_kind(file) if file is not None else None
    with transaction.atomic():
        request = _locked(request_id)
        question = request.questions.filter(answered_at__isnull=True).first()
        if question is None:
            raise Conflict(_("This request is not waiting for an answer."), code="not_awaiting_answer")
        _transition(request, "answered", actor=SUBJECT, data={"purpose": question.purpose})
        question.answer, question.answered_at = answer, timezone.now()
        if kind is not None:
            content_type, extension = kind
            question.answer_content_type = content_type
            question.answer_file = exports.storage_save_bytes(f"answers/{request.pk}/{secrets.token_hex(16)}{extension}", file)
        question.save(update_fields=["answer", "answered_at", "answer_content_type", "answer_file"])
        email_on_commit(request, "answered")
    logger.info("request %s: answered, due %s", request.id, request.due_at.isoformat())
    return request


def _answer_file_kind(content: bytes) -> tuple[str, str]:
    """The content type and file extension of an answer's file; InvalidInput for a file too large
    or of a kind not accepted."""
    limit = settings.DSAR_ANSWER_FILE_MAX_BYTES
    if len(content) > limit:
        megabytes = limit / (1024 * 1024)
        # In the person's own digits: "1.5 MB", "1,5 MB".
        said = number_format(int(megabytes) if megabytes.is_integer() else megabytes)
        raise InvalidInput(_("The file is larger than %(megabytes)s MB.") % {"megabytes": said}, code="upload_too_large")
    kind = next((kind for start, kind in ANSWER_FILE_TYPES.items() if content.startswith(start)), None)
    if kind is None:
        raise InvalidInput(_("Attach a PDF, PNG or JPEG file: this file is none of them."), code="upload_type_refused")
    return kind


# --- Staff on the systems ------------------------------------------------------------------------------


def system_check(*, name: str, actor: str) -> SystemCheck:
    """Check one configured system now and keep the result as its last check, which workers obey
    (a problem stops them running it), with an audit entry naming who checked and what was found."""
    if name not in connector_names():
        raise NotFound("No such system.")
    # Reaching the system can take a while: no transaction of the product's is held open meanwhile.
    findings = system_check_run(name)
    with transaction.atomic():
        check = system_check_record(name, findings)
        audit_record(None, actor=actor, action="system_checked",
                     data={"system": name, "problems": len(check.problems), "advice": len(check.advice)})
    return check


# --- Staff on systems with no API -----------------------------------------------------------------------

MANUAL_UPLOAD_MAX_BYTES = 5 * 1024 * 1024  # a file
MANUAL_UPLOAD_BODY_MAX_BYTES = 25 * 1024 * 1024  # the whole upload: the records' file and the scans
MANUAL_TASK_COMPLETED = "manual_task_completed"


def manual_task_gather(*, task_id: int, actor: str, filename: str | None = None, content: bytes | None = None,
                       files: Sequence[tuple[str, bytes]] = (), files_category: str | None = None) -> ConnectorTask:
    """Complete an access request's task for a system with no API with what staff upload: the
    records found (`filename`, `content`), a CSV (a header row `category`, then one column per
    field; an empty cell is no field) or a JSON list of {"category": id, "fields": {...}}; and files
    found (scans, documents: (name, bytes) each), all of one category, `files_category`. Either or
    both. They are staged as a connector's records and files are, the task succeeds as a worker's
    does (the request completes once every task has), and the audit names who uploaded what. A bad
    upload is InvalidInput naming what is wrong, and changes nothing."""
    task, system = _manual_task(task_id)
    if content is None and not files:
        raise InvalidInput("Upload the records found, or the files found, or both.", code="upload_missing")
    records = _uploaded_records(system, filename or "", content) if content is not None else []
    found = _uploaded_files(system, files, files_category)
    with transaction.atomic():
        request = _manual_task_start(task, RequestType.ACCESS)
        connector = _Uploaded(system.name, records)
        # Kept in the request's work area (discarded when the request completes) until the export is built.
        area = f"work/{request.pk}/{system.name}/{task.attempts}-uploads"
        for name, data in found:
            connector.files.append(FileItem(files_category, name, exports.storage_save_bytes(f"{area}/{name}", data), len(data)))
        # The staging reads the upload as it would read a connector: the same checks, the same files.
        staged = exports.stage_gather(connector, Identity(email=request.email), frozenset(request.categories),
                                      request_id=request.pk, attempt=task.attempts)
        _manual_task_succeed(task, request, actor=actor, counts=staged.counts, output=staged.as_json())
    return task


def manual_task_erase(*, task_id: int, actor: str, counts: dict[str, int], note: str, kept: dict[str, int] | None = None,
                      kept_reason: str = "") -> ConnectorTask:
    """Complete a deletion's task for a system with no API: staff say how many records of each
    category they erased by hand, and how many they kept and why (paper invoices the tax law keeps),
    and add a note, kept in the task's receipt and the audit entry. What was kept reaches the
    person's receipt with its reason, as a connector's retained records do."""
    task, system = _manual_task(task_id)
    kept = {category: count for category, count in (kept or {}).items() if count}
    if not note.strip():
        raise InvalidInput("A note is required: say what was erased and how.", code="note_required")
    if unknown := sorted((set(counts) | set(kept)) - set(system.options["categories"])):
        raise InvalidInput(f"{system.name} does not hold {', '.join(unknown)}.", code="invalid_category")
    if negative := sorted(category for category, count in [*counts.items(), *kept.items()] if count < 0):
        raise InvalidInput(f"A count cannot be negative: {', '.join(negative)}.", code="invalid_count")
    if kept and not kept_reason.strip():
        raise InvalidInput("Say why records were kept: the person's receipt gives the reason.", code="reason_required")
    with transaction.atomic():
        request = _manual_task_start(task, RequestType.DELETION)
        receipt = ErasureReceipt()
        for category, count in counts.items():
            receipt.record(ErasureStep(system.name, "deleted", category, count))
        for category, count in kept.items():
            receipt.record(ErasureStep(system.name, "kept", category, count, reason=kept_reason.strip()))
        _manual_task_succeed(task, request, actor=actor, counts=receipt.erased, receipt={**exports.receipt_as_dict(receipt), "note": note},
                             note=note)
    return task


def _manual_task(task_id: int) -> tuple[ConnectorTask, System]:
    """The task, if it is one of a configured system with no API, and that system."""
    task = ConnectorTask.objects.filter(pk=task_id).only("pk", "request_id", "connector", "attempts").first()
    system = systems().get(task.connector) if task is not None else None
    if system is None or system.kind != "manual":
        raise NotFound("No such manual task.")
    return task, system


def _manual_task_start(task: ConnectorTask, type: RequestType) -> Request:
    """Lock the task's request and take the task from staff, as a worker claims one (running, one
    attempt more), so that processing records its result as it records a worker's. Conflict if the
    task is no longer with staff or the request no longer open to it."""
    request = _locked(task.request_id)
    if request.type != type:
        raise Conflict("This is an access request: upload what you found instead." if request.type == RequestType.ACCESS
                       else "This is a deletion request: confirm what you erased instead.", code="wrong_type")
    if request.status not in (Status.PROCESSING, Status.FAILED):
        raise Conflict(f"This request is {request.get_status_display().lower()}; its manual task cannot be completed.",
                       code="illegal_transition")
    now = timezone.now()
    taken = ConnectorTask.objects.filter(pk=task.pk, status=TaskStatus.WITH_STAFF, attempts=task.attempts).update(
        status=TaskStatus.RUNNING, attempts=task.attempts + 1, started_at=now, updated_at=now)
    if not taken:
        raise Conflict("This task is not waiting for staff: it is done, or still waits for other systems.", code="task_not_open")
    task.attempts += 1
    return request


def _manual_task_succeed(task: ConnectorTask, request: Request, *, actor: str, counts: dict[str, int], note: str = "", **result) -> None:
    """Record the task's result as processing records a worker's, ring for the request's final step
    if it was the last task, and audit who completed it."""
    if processing.task_succeed(task, counts=counts, **result):
        processing.final_step_ring_on_commit(request.pk)
    audit_record(request, actor=actor, action=MANUAL_TASK_COMPLETED, note=note, data={"system": task.connector, "counts": counts})


class _Uploaded(ManualConnector):
    """What staff uploaded, offered to the staging as a connector's gather: the records, then the
    files (in the product's storage, which the system's connector reads them from)."""

    def __init__(self, name: str, records: list[Record]) -> None:
        super().__init__(name=name, instructions="", categories=[])
        self.records = records
        self.files: list[FileItem] = []

    def gather(self, identity: Identity) -> Iterator[Record | FileItem]:
        """The uploaded records, then the files."""
        yield from self.records
        yield from self.files


def _uploaded_records(system: System, filename: str, content: bytes) -> list[Record]:
    """The records of an upload, each in a category the system holds; InvalidInput names the first
    thing wrong."""
    if len(content) > MANUAL_UPLOAD_MAX_BYTES:
        raise InvalidInput(f"The file is larger than {MANUAL_UPLOAD_MAX_BYTES // (1024 * 1024)} MB.", code="upload_too_large")
    try:
        text = content.decode("utf-8-sig")  # a spreadsheet's CSV often starts with a byte-order mark
    except UnicodeDecodeError:
        raise InvalidInput("The file is not UTF-8 text.", code="upload_malformed") from None
    suffix = PurePath(filename).suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(text)
    elif suffix == ".json":
        rows = _json_rows(text)
    else:
        raise InvalidInput("Upload a .csv or a .json file.", code="upload_malformed")
    held = system.options["categories"]
    records = []
    for where, category, fields in rows:
        if not category_known(category):
            raise InvalidInput(f"{where}: {category!r} is not a category of the taxonomy.", code="invalid_category")
        if category not in held:
            raise InvalidInput(f"{where}: {system.name} does not hold {category!r}; its categories are {', '.join(held)}.",
                               code="invalid_category")
        records.append(Record(category, fields, system=system.name))
    return records


def _uploaded_files(system: System, files: Sequence[tuple[str, bytes]], category: str | None) -> list[tuple[str, bytes]]:
    """The files of an upload under the names they are exported as (their own, without any
    folder); InvalidInput names the first thing wrong."""
    if not files:
        return []
    held = system.options["categories"]
    if category not in held:
        raise InvalidInput(f"Say which category the files are: one of {', '.join(held)}.", code="invalid_category")
    named = []
    for name, data in files:
        base = PurePath(name.replace("\\", "/")).name.strip()
        if not base or base.startswith("."):
            raise InvalidInput(f"A file needs a name: {name!r}.", code="upload_malformed")
        if len(data) > MANUAL_UPLOAD_MAX_BYTES:
            raise InvalidInput(f"{base} is larger than {MANUAL_UPLOAD_MAX_BYTES // (1024 * 1024)} MB.", code="upload_too_large")
        if base in (other for other, _ in named):
            raise InvalidInput(f"Two files are named {base}: rename one.", code="upload_malformed")
        named.append((base, data))
    return named


def _csv_rows(text: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(where, category, fields) of each row of a CSV whose header is `category` and the field names."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [column.strip() for column in next(reader, [])]
        if not header or header[0] != "category":
            raise InvalidInput("Line 1 must be the header row: category, then one column per field.", code="upload_malformed")
        columns = header[1:]
        if not columns or "" in columns or len(set(columns)) != len(columns):
            raise InvalidInput("Line 1: each field column needs a name of its own.", code="upload_malformed")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                raise InvalidInput(f"Line {reader.line_num}: {len(row)} cells, but the header names {len(header)} columns.",
                                   code="upload_malformed")
            yield f"Line {reader.line_num}", row[0].strip(), {column: value for column, value in zip(columns, row[1:]) if value != ""}
    except csv.Error as error:
        raise InvalidInput(f"Line {reader.line_num}: not CSV: {error}.", code="upload_malformed") from None


def _json_rows(text: str) -> Iterator[tuple[str, str, dict]]:
    """(where, category, fields) of each item of a JSON list of {"category": id, "fields": {...}}."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"The file is not JSON: {error}.", code="upload_malformed") from None
    if not isinstance(items, list):
        raise InvalidInput('The file must hold a JSON list of {"category": id, "fields": {...}}.', code="upload_malformed")
    for number, item in enumerate(items, start=1):
        if not (isinstance(item, dict) and item.keys() == {"category", "fields"} and isinstance(item["category"], str)
                and isinstance(item["fields"], dict)):
            raise InvalidInput(f'Item {number}: must be {{"category": id, "fields": {{...}}}}.', code="upload_malformed")
        yield f"Item {number}", item["category"], item["fields"]


# --- Staff working the queue: several requests at once, assignment, internal notes ------------------------

BULK_ACTIONS = ("approve", "deny")
BULK_MAX = 100  # two pages of the queue
NOTED = "noted"
NOTE_MAX_CHARS = 2000
ASSIGNED = "assigned"


@dataclass(frozen=True)
class BulkOutcome:
    """What became of one request of a bulk review: done, or refused with the reason."""

    request_id: str
    done: bool
    reason: str = ""


def request_review_bulk(*, request_ids: Sequence, action: str, actor: str, reason: str = "") -> list[BulkOutcome]:
    """Approve or deny several requests with one reason (a note when approving), each through
    `request_approve` or `request_deny` as if done one at a time, in its own transaction: the same
    rules and audit entries, and one refused (no longer pending review, a child's needing whose
    authority was confirmed) leaves the others done. One outcome a request, in the order given."""
    if action not in BULK_ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(BULK_ACTIONS)}.", code="invalid_action")
    try:
        ids = list(dict.fromkeys(str(uuid.UUID(str(request_id))) for request_id in request_ids))
    except ValueError:
        raise InvalidInput("Name requests by their ids.", code="invalid_id") from None
    if not ids:
        raise InvalidInput("Select at least one request.", code="nothing_selected")
    if len(ids) > BULK_MAX:
        raise InvalidInput(f"Select at most {BULK_MAX} requests at a time.", code="too_many")
    if action == "deny" and not reason.strip():
        raise InvalidInput("A reason is required: each person is emailed it.", code="reason_required")
    outcomes = []
    for request_id in ids:
        try:
            if action == "approve":
                request_approve(request_id=request_id, actor=actor, note=reason)
            else:
                request_deny(request_id=request_id, actor=actor, reason=reason)
        except ServiceError as error:
            outcomes.append(BulkOutcome(request_id, False, error.detail))
        else:
            outcomes.append(BulkOutcome(request_id, True))
    return outcomes


def request_assign(*, request_id, actor: str, assignee: str | None) -> Request:
    """Give a request to an active staff member (reviewer or admin) by username to work, or to
    nobody (None); the audit entry names who had it and who has it now. Giving it to whoever has
    it already changes nothing and writes nothing."""
    with transaction.atomic():
        request = _locked(request_id)
        member = None
        if assignee is not None:
            member = get_user_model().objects.filter(username=assignee).prefetch_related("groups").first()
            if member is None or not staff_has_role(member, ROLE_REVIEWER):
                raise InvalidInput("Assign it to an active reviewer or admin.", code="invalid_assignee")
        before = request.assigned_to.get_username() if request.assigned_to_id else None
        if before == assignee:
            return request
        request.assigned_to = member
        request.save(update_fields=["assigned_to", "updated_at"])
        audit_record(request, actor=actor, action=ASSIGNED, data={"from": before, "to": assignee})
    return request


def request_note_add(*, request_id, actor: str, note: str) -> AuditEntry:
    """An internal note on a request, for staff alone: an entry in its audit trail. The person never
    reads it: the portal's timeline shows only the events it names, and no email, export or subject
    API reads the trail's notes."""
    note = note.strip()
    if not note:
        raise InvalidInput("Write the note.", code="note_required")
    if len(note) > NOTE_MAX_CHARS:
        raise InvalidInput(f"A note is at most {NOTE_MAX_CHARS} characters.", code="note_too_long")
    with transaction.atomic():
        request = _locked(request_id)
        return audit_record(request, actor=actor, action=NOTED, note=note)
