"""Emails to the data subject and to staff, each rendered from a plain-text and an HTML template.

An email is a row (OutgoingEmail) written in the transaction of the change it tells of: it exists
exactly when the change committed, and no mail relay, slow or down, stands in a request's way. Once
the transaction commits, a doorbell rings for a worker, which renders and sends what is due over
one SMTP session a batch. A send that fails is tried again with backoff; the sweeper rings for any
email whose doorbell was lost.

- **The doorbell rings once a burst.** A filing sets a key in Redis only if it is absent (SET NX)
  and publishes the task only when it set it. The task sends for as long as emails keep coming,
  then deletes the key and looks once more. So an email whose doorbell found the key taken was
  committed before the task's last look.
- **At least once.** A worker killed between a relay's answer and its commit sends that batch
  again. A duplicate email is the price of never losing one.
- **Rendered when sent, from the row as it is then.** An email whose news went stale is dropped:
  a code replaced by a newer one or expired, a reminder of a question answered since, or a subject
  whose record was anonymised.
- **Permanent refusals are given up at once** (an SMTP 5xx), transient failures after
  DSAR_EMAIL_GIVE_UP_HOURS; either way the request's audit trail records it.

With the setting DSAR_EMAIL_DELIVERY = "inline", the committing process sends instead, with no
worker or doorbell: what the tests use to read mail in their own process.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import time
from typing import Any

import redis.exceptions
from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext_lazy as _

from . import verification
from .cache import cache_redis
from .deadlines import deadline_rule
from .exports import ReportWithheld, receipt_in_words, referral_in_words, refusals_in_words
from .lifecycle import audit_record, rows_insert
from .models import OutgoingEmail, Request, Status

logger = logging.getLogger(__name__)

SUBJECTS = {
    "code": _("Your verification code"),
    "export_view_code": _("Your code to see your data"),
    "received": _("We have received your request"),
    "started": _("We have started work on your request"),
    "answered": _("Thank you for your answer"),
    "withdrawn": _("You have withdrawn your request"),
    "completed": _("Your request is complete"),
    "checking": _("We are checking your data before we send it"),
    "denied": _("About your request"),
    "refused_in_part": _("We will not answer all of your request"),
    "extended": _("We need more time for your request"),
    "referred": _("Your request is handled by your organisation"),
    "failed": _("Your request is delayed"),
    "expiring": _("Your download expires soon"),
    "lapsed": _("Your request has lapsed"),
    "question": _("We need more information about your request"),
    "question_reminder": _("We are still waiting for your answer"),
    "staff_deadline": _("Request deadline"),
    "staff_erasure_alert": _("Data found after an erasure"),
    "recipient_erasure": _("Erasure notice: please erase a person's data we shared with you"),
    "staff_recipient_failed": _("A recipient could not be told of an erasure"),
}


def email_subject(template: str) -> str:
    """The subject of an email of `template`, led by the company's name (DSAR_BRAND)."""
    return f"{settings.DSAR_BRAND['name']}: {SUBJECTS[template]}"


STATUS_SALT = "dsar.status"
STATUS_LINK_DAYS = 120


def status_url(request: Request) -> str:
    """The request's page, with a signed key that opens it for whoever holds the email."""
    key = signing.dumps(str(request.id), salt=STATUS_SALT)
    return f"{settings.DSAR_PUBLIC_URL}/requests/{request.id}?key={key}"


def status_key_valid(request_id, key: str) -> bool:
    """Whether `key` is a genuine, unexpired status-link key for this request."""
    try:
        return signing.loads(key, salt=STATUS_SALT, max_age=STATUS_LINK_DAYS * 86400) == str(request_id)
    except signing.BadSignature:
        return False


# --- Queueing ---------------------------------------------------------------------------------------


def email_new(request: Request | None, template: str, *, to: list[str] | None = None, **context: Any) -> OutgoingEmail:
    """An unsaved email: to the request's subject, or to `to` (staff) about the request if any."""
    now = timezone.now()
    return OutgoingEmail(request=request, to=to or [], template=template, context=_context_dump(context), created_at=now, not_before=now)


def code_email(request: Request) -> OutgoingEmail:
    """The unsaved email that carries the code issued at the request's `code_sent_at`."""
    return email_new(request, "code", issued=request.code_sent_at)


def email_enqueue(email: OutgoingEmail) -> None:
    """Write `email` in the current transaction; it goes out once that commits, and only then."""
    rows_insert([email])  # with the kept INSERT text, as audit entries are
    emails_ring_on_commit([email])


def email_on_commit(request: Request, template: str, **context: Any) -> None:
    """Email the request's subject about the change the current transaction makes."""
    email_enqueue(email_new(request, template, **context))


def staff_email_on_commit(recipients: list[str], template: str, *, request: Request | None = None, **context: Any) -> None:
    """Tell staff something once the transaction commits (reminders, escalations, alerts)."""
    if not recipients:
        logger.warning("no staff address to send %s to", template)
        return
    email_enqueue(email_new(request, template, to=recipients, **context))


def _context_dump(context: dict[str, Any]) -> dict[str, Any]:
    """A template's values as JSON: datetimes tagged, anything else JSON has already."""
    def dump(value):
        if isinstance(value, dt.datetime):
            return {"$datetime": value.isoformat()}
        if isinstance(value, dict):
            return {key: dump(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [dump(item) for item in value]
        if value is None or isinstance(value, str | int | float | bool):
            return value
        raise TypeError(f"an email's context holds JSON values and datetimes, not {type(value).__name__}")

    return dump(context)


def _context_load(stored: dict[str, Any]) -> dict[str, Any]:
    def load(value):
        if isinstance(value, dict):
            if value.keys() == {"$datetime"}:
                return dt.datetime.fromisoformat(value["$datetime"])
            return {key: load(item) for key, item in value.items()}
        if isinstance(value, list):
            return [load(item) for item in value]
        return value

    return load(stored)


# --- The doorbell ------------------------------------------------------------------------------------

DOORBELL = "mail:doorbell"
# The key's life, renewed by the running task at every batch: a task that died holding it (its
# message lost with it) keeps new emails from ringing this long at most. The sweeper covers the rest.
DOORBELL_SECONDS = 5


def emails_ring_on_commit(emails: list[OutgoingEmail]) -> None:
    """Ring for `emails` once the transaction commits."""
    transaction.on_commit(lambda: _ring(emails), robust=True)


def _ring(emails: list[OutgoingEmail]) -> None:
    if settings.DSAR_EMAIL_DELIVERY == "inline":
        # This process sends what it queued (its requests' emails), not what others queued for theirs.
        emails_send(only=Q(pk__in=[e.pk for e in emails if e.pk]) | Q(request_id__in=[e.request_id for e in emails if not e.pk]))
        return
    try:
        if not cache_redis().set(cache.make_key(DOORBELL), 1, nx=True, ex=DOORBELL_SECONDS):
            return  # a task is on its way, and has yet to look for rows
    except (redis.exceptions.RedisError, OSError) as error:  # the cache is Redis, the broker too: the sweeper rings instead
        logger.warning("could not ring for the outgoing emails; the sweeper will: %s", error)
        return
    emails_ring()


def emails_ring() -> None:
    """Publish the sending task (the doorbell's key aside)."""
    from .doorbell import EMAILS_SEND, ring

    ring(EMAILS_SEND)


# --- Sending -----------------------------------------------------------------------------------------

BATCH = 50  # emails a transaction and an SMTP session; a killed worker sends at most these again


RUN_SECONDS = 10  # a doorbell's task sends for at most this long, then rings for the next
# After a batch of several, a moment for the next to fill: a burst goes out in batches, not one by
# one, and whatever is committed within it needs no doorbell of its own. After a batch of one the
# task looks again at once, and ends at the first look that finds nothing: emails that come one at
# a time do not hold a worker process that connector work may be waiting for.
LINGER_SECONDS = 0.05
# Sent emails are deleted, and until vacuum comes their index entries stay, at the low end of the
# id order a batch is looked for in. So a run looks from a little below the last id it sent: not
# through every email sent since the last vacuum, and a row that committed late (its id drawn
# earlier in a longer transaction) still found within a run's end.
LATE_IDS = 100


def emails_send_rung() -> int:
    """The doorbell's task: send for as long as emails keep coming, then take the key down and
    look once more, for what was committed by someone who found the key still up. So a burst of
    filings publishes one task, not one each."""
    deadline, sent, after = time.monotonic() + RUN_SECONDS, 0, 0
    doorbell = cache.make_key(DOORBELL)
    while True:
        cache_redis().set(doorbell, 1, ex=DOORBELL_SECONDS)  # this task is alive
        taken, batch_sent, last_id, relay_failed = _batch_send(after=after)
        sent += batch_sent
        if not taken or relay_failed:
            break
        if time.monotonic() > deadline:
            emails_ring()  # the key stays up: the next task carries on
            return sent
        after = max(after, last_id - LATE_IDS)
        if 1 < taken < BATCH:  # emails come faster than one a look; one alone keeps no worker waiting
            time.sleep(LINGER_SECONDS)
    cache_redis().delete(doorbell)
    return sent + (0 if relay_failed else emails_send())


def emails_send(*, only: Q | None = None) -> int:
    """Send every email that is due (of those `only` selects), a batch at a time; returns how many
    were sent. What committed before it began is seen; what comes meanwhile may wait for its own
    doorbell."""
    sent, after = 0, 0
    while True:
        taken, batch_sent, after, relay_failed = _batch_send(after=after, only=only)
        sent += batch_sent
        if taken < BATCH or relay_failed:
            return sent


def emails_sweep(*, now: dt.datetime) -> int:
    """Ring for the emails that are due, whatever became of their doorbells; returns how many."""
    due = OutgoingEmail.objects.filter(not_before__lte=now).count()
    if due and settings.DSAR_EMAIL_DELIVERY == "inline":
        emails_send()
    elif due:
        emails_ring()
    return due


class _RelayFailed(Exception):
    """The relay could not take an email now; the rest of the batch waits for it too."""


SENT, DROPPED, POSTPONED = "sent", "dropped", "postponed"


def _batch_send(*, after: int, only: Q | None = None) -> tuple[int, int, int, bool]:
    """Send one batch of the emails due with ids above `after`, under one transaction; returns how
    many emails it took and sent, the last one's id, and whether the relay failed."""
    with transaction.atomic():
        batch = list(
            OutgoingEmail.objects.select_for_update(skip_locked=True, of=("self",)).select_related("request")
            .filter(only or Q(), id__gt=after, not_before__lte=timezone.now()).order_by("id")[:BATCH]
        )
        if not batch:
            return 0, 0, after, False
        outcomes: list[str] = []
        relay, relay_failed = get_connection(), False
        try:
            _relay_call(relay.open, refusals=False)
            for email in batch:
                outcomes.append(_deliver(email, relay))
        except _RelayFailed as error:
            _postpone(batch[len(outcomes)], error.__cause__)
            outcomes.append(POSTPONED)
            relay_failed = True
        finally:
            relay.close()
        finished = [email.pk for email, outcome in zip(batch, outcomes) if outcome != POSTPONED]
        OutgoingEmail.objects.filter(pk__in=finished).delete()
        # A relay that failed leaves the rest of the batch untouched, for the next doorbell or sweep.
        return len(batch), outcomes.count(SENT), batch[-1].pk, relay_failed


def _relay_call(call, *args, refusals: bool = True):
    """Call the relay. A failure or a refusal for now (SMTP 4xx) becomes _RelayFailed: the email
    waits, and the rest of the batch with it. A refusal for good (5xx) of a message is raised as it
    is when `refusals`, and the batch goes on."""
    try:
        return call(*args)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException) as error:
        codes = [code for code, _ in error.recipients.values()] if isinstance(error, smtplib.SMTPRecipientsRefused) else [error.smtp_code]
        if refusals and min(codes) >= 500:
            raise
        raise _RelayFailed() from error
    except (smtplib.SMTPException, OSError) as error:
        raise _RelayFailed() from error


def _deliver(email: OutgoingEmail, relay) -> str:
    """Send one email on the open relay; raises _RelayFailed when the relay failed."""
    try:
        message = _message(email)
    except Exception as error:  # a template or a value the product got wrong: kept until fixed
        logger.exception("email %s (%s): could not be rendered", email.pk, email.template)
        _postpone(email, error)
        return POSTPONED
    if message is None:
        logger.info("email %s (%s): no longer needed; not sent", email.pk, email.template)
        return DROPPED
    try:
        _relay_call(relay.send_messages, [message])
    except smtplib.SMTPRecipientsRefused as error:
        reasons = "; ".join(f"{code} {reason.decode(errors='replace')}" for code, reason in error.recipients.values())
        _give_up(email, f"the relay refused the address: {reasons}")
        return DROPPED
    except smtplib.SMTPResponseException as error:
        _give_up(email, f"the relay refused it: {error.smtp_code} {error.smtp_error.decode(errors='replace')}")
        return DROPPED
    if email.request_id:
        logger.info("request %s: sent %s email", email.request_id, email.template)
    return SENT


def _postpone(email: OutgoingEmail, error: BaseException) -> None:
    """Try again later with backoff, or give up once DSAR_EMAIL_GIVE_UP_HOURS have passed."""
    from .doorbell import backoff_seconds

    email.attempts += 1
    email.last_error = str(error)[:1000] or type(error).__name__
    now = timezone.now()
    if now - email.created_at > dt.timedelta(hours=settings.DSAR_EMAIL_GIVE_UP_HOURS):
        _give_up(email, f"still failing after {settings.DSAR_EMAIL_GIVE_UP_HOURS} hours: {email.last_error}")
        email.delete()
        return
    email.not_before = now + dt.timedelta(seconds=backoff_seconds(email.attempts))
    email.save(update_fields=["attempts", "last_error", "not_before"])
    logger.warning("email %s (%s): not sent, trying again from %s: %s", email.pk, email.template,
                   email.not_before.isoformat(timespec="seconds"), email.last_error)


def _give_up(email: OutgoingEmail, reason: str) -> None:
    """Stop trying an email, and say so where staff look: the request's audit trail."""
    logger.error("email %s (%s) for request %s: given up, %s", email.pk, email.template, email.request_id, reason)
    if email.request is not None:
        audit_record(email.request, actor="system", action="email_undelivered", note=f"{email.template} email: {reason}"[:1000])


def _message(email: OutgoingEmail) -> EmailMultiAlternatives | None:
    """The message `email` stands for, rendered now; None when it no longer has anything to say."""
    request, context = email.request, _context_load(email.context)
    if email.to:
        to = email.to
        # Links whole, so that a sentence translated around one never splits it.
        console = {"manual_url": settings.DSAR_PUBLIC_URL + reverse("console:manual-tasks")}
        if request is not None:
            console["request_url"] = settings.DSAR_PUBLIC_URL + reverse("console:request", args=[request.id])
        context = {**console, "request": request, **context}
    else:
        if request is None or request.anonymized_at is not None:
            return None
        if email.template == "question_reminder" and request.status != Status.AWAITING_SUBJECT:
            return None  # answered, or closed, since the reminder was queued
        if email.template == "code":
            if not _code_current(request, context["issued"]):
                return None
            # The minutes as a number: the sentence counts them ("1 minute", "10 minutes") in the
            # person's language. The page to enter it on, for a person who closed the one they filed from.
            context = {"code": verification.code_for(request), "ttl_minutes": settings.DSAR_CODE_TTL_MINUTES,
                       "verify_url": settings.DSAR_PUBLIC_URL + reverse("portal:request-verify", args=[request.id])}
        if email.template == "export_view_code":  # dsar/exports/viewing.py: derived now, never stored, as a code at filing
            if request.code_sent_at != context["issued"] or not request.code_expires_at or request.code_expires_at <= timezone.now():
                return None
            context = {"code": verification.code_for(request), "ttl_minutes": settings.DSAR_CODE_TTL_MINUTES,
                       "view_url": settings.DSAR_PUBLIC_URL + reverse("portal:export-view", args=[request.id])}
        to = [request.email]
        # Signed only if the template shows it: the code email does not. The law the request was
        # filed under gives the periods the person is told (the received email); what staff refused
        # of it, and what was referred to the organisation managing the account, is told in words.
        context = {"request": request, "status_url": SimpleLazyObject(lambda: status_url(request)),
                   "deadline_rule": deadline_rule(request.jurisdiction),
                   "refused": SimpleLazyObject(lambda: refusals_in_words(request.refusals)),
                   "referral": SimpleLazyObject(lambda: referral_in_words(request)),
                   "receipt": SimpleLazyObject(lambda: receipt_in_words(request.result)), **context}
    if "withheld" in context:
        context["withheld"] = [_withheld_load(item) for item in context["withheld"]]
    context = {"brand": settings.DSAR_BRAND, **context}
    # In the person's language, the one they filed in; staff read the product's own.
    language = request.language if request is not None and not email.to else settings.LANGUAGE_CODE
    with translation.override(language or settings.LANGUAGE_CODE):
        message = EmailMultiAlternatives(subject=email_subject(email.template), to=to,
                                         body=render_to_string(f"emails/{email.template}.txt", context))
        message.attach_alternative(render_to_string(f"emails/{email.template}.html", context), "text/html")
    return message


def _withheld_load(stored: dict[str, Any]) -> ReportWithheld | dict[str, Any]:
    """What a review withheld, as the email's context keeps it, to be worded in the email's language;
    as the release before kept it (worded already, with `label`), as it was."""
    if "category" in stored:
        return ReportWithheld.from_dict(stored)
    return {**stored, "reason_words": stored["reasons"]}


def _code_current(request: Request, issued: dt.datetime) -> bool:
    """Whether the code issued at `issued` is still the request's, and still of use."""
    return (request.status == Status.UNVERIFIED and request.code_sent_at == issued
            and request.code_expires_at is not None and request.code_expires_at > timezone.now())
