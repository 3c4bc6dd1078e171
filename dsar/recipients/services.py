"""Telling the recipients of a person's data that a deletion erased it (GDPR Art. 19, CCPA
regulations §7022(b)(2) and (3)).

A deletion's final step creates one RecipientNotification a recipient of each system that erased
something that recipient receives (`recipient_notifications_create`), in the transaction that
completes the request: a crash neither loses them nor makes them twice. A system that erased
nothing of the person disclosed nothing of them, and its recipients are not told of a request
they have no part in. The recipient is told what its system erased of what it receives, and the
identities the request found the person by.

The row is the job; the doorbell rung on commit carries its id (dsar/doorbell.py). A worker takes
a due row by locking it, skipping one another worker holds, and keeps the lock while it sends, as
the email outbox does: a worker that dies mid-send lets the row go with its connection, still
queued, and the sweeper rings for it again. So a webhook may be delivered twice, always with the
same event id. How each recipient is told is read from its system file when it is sent:

- `webhook`: a signed POST (dsar/recipients/webhook.py); only a 2xx answer counts;
- `email`: an email to the recipient through the email outbox (dsar/notifications.py), which
  delivers it as it delivers every email; `sent` means it went to the outbox;
- `manual`: staff tell them by hand, following the file's instructions, and say how.

A delivery that fails is tried again with backoff, up to DSAR_RECIPIENT_NOTIFY_MAX_ATTEMPTS; then
it fails, and admins are emailed. Each delivery, failure and staff action is an audit entry on the
request.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connectors.registry import systems
from connectors.systems import Notify
from connectors.taxonomy import category_label, category_root

from .. import doorbell, locks
from ..errors import Conflict, InvalidInput, NotFound
from ..lifecycle import audit_record, rows_insert
from ..models import ConnectorTask, NotificationMethod, NotificationStatus, RecipientNotification, Request
from ..notifications import email_enqueue, email_new, staff_email_on_commit
from ..staff import ROLE_ADMIN, staff_emails
from .selectors import recipient_declared
from .webhook import DeliveryFailed, webhook_body, webhook_post

logger = logging.getLogger(__name__)

SYSTEM = "system"
EMAIL_TEMPLATE = "recipient_erasure"
NOTIFIED, FAILED, RETRIED, DONE = "recipient_notified", "recipient_notify_failed", "recipient_notify_retried", "recipient_notify_done"


class _Undeclared(Exception):
    """The system file no longer tells this recipient this way: no attempt can succeed until it does."""


# --- Creating them -----------------------------------------------------------------------------------


def recipient_notifications_create(request: Request, *, result: dict, now: dt.datetime) -> dict:
    """Create the notifications of a deletion that completes now, in the transaction that completes
    it (the request locked), ringing for those a worker sends once it commits. Returns the receipt
    `result` naming the recipients told, each once (`recipients_notified`), when there are any."""
    tasks = list(ConnectorTask.objects.filter(request_id=request.pk).order_by("connector").only("connector", "receipt", "identities"))
    configured = systems()
    identities = _identities(request, tasks)
    notifications: list[RecipientNotification] = []
    for task in tasks:
        system = configured.get(task.connector)
        erased = [category for category, count in (task.receipt or {}).get("erased", {}).items() if count]
        named: set[str] = set()
        for recipient in system.recipients if system else ():
            told = sorted(c for c in erased if c in recipient.categories or category_root(c) in recipient.categories)
            if not told or recipient.name in named:
                continue
            named.add(recipient.name)
            method = _method(recipient.notify)
            notifications.append(RecipientNotification(
                request=request, system=system.name, recipient=recipient.name, method=method, categories=told, identities=identities,
                status=NotificationStatus.WITH_STAFF if method == NotificationMethod.MANUAL else NotificationStatus.QUEUED,
                not_before=now, created_at=now))
    rows_insert(notifications)
    _ring_on_commit(n for n in notifications if n.status == NotificationStatus.QUEUED)
    names = sorted({notification.recipient for notification in notifications})
    return {**result, "recipients_notified": names} if names else result


def _method(notify: Notify) -> NotificationMethod:
    return next(method for method in NotificationMethod if getattr(notify, method) is not None)


def _identities(request: Request, tasks: list[ConnectorTask]) -> dict[str, list[str]]:
    """What the request found the person by: its email first, then what its systems found, by name."""
    found: dict[str, list[str]] = {"email": [request.email]}
    for task in tasks:
        for name, values in (task.identities or {}).items():
            found.setdefault(name, []).extend(str(value) for value in values if str(value) not in found[name])
    return {"email": found.pop("email"), **dict(sorted(found.items()))}


def _ring_on_commit(notifications: Iterable[RecipientNotification], *, countdown: float | None = None) -> None:
    calls = [((str(notification.pk),), {"countdown": countdown}) for notification in notifications]
    if calls:
        transaction.on_commit(lambda: doorbell.ring_all(doorbell.RECIPIENT_NOTIFY, calls))


# --- Sending them ------------------------------------------------------------------------------------


def recipient_notification_send(notification_id) -> None:
    """A worker's part: send a notification that is queued and due, and record the outcome. Safe
    to call twice, and at once: the row is locked while it is sent, and a second caller skips it."""
    now = timezone.now()
    with transaction.atomic():
        due = RecipientNotification.objects.filter(pk=notification_id, status=NotificationStatus.QUEUED, not_before__lte=now)
        taken = locks.rows_lock_free(due.select_related("request"), limit=1)
        if not taken:
            logger.info("recipient notification %s: nothing to do (sent, being sent, or not due)", notification_id)
            return
        notification = taken[0]
        notification.attempts += 1
        try:
            outcome = _deliver(notification, now)
        except _Undeclared as error:
            _fail(notification, str(error), now)
        except DeliveryFailed as error:
            if notification.attempts >= settings.DSAR_RECIPIENT_NOTIFY_MAX_ATTEMPTS:
                _fail(notification, f"gave up after {notification.attempts} attempts; last error: {error}", now)
            else:
                _reschedule(notification, str(error), now)
        else:
            _sent(notification, outcome, now)


def _deliver(notification: RecipientNotification, now: dt.datetime) -> str:
    """Tell the recipient the way its system file says now; what happened, in words."""
    recipient = recipient_declared(notification)
    destination = getattr(recipient.notify, notification.method) if recipient else None
    if destination is None:
        raise _Undeclared(f"the system file of {notification.system} no longer gives {notification.recipient} "
                          f"a {notification.method} to be told by")
    request = notification.request
    if notification.method == NotificationMethod.WEBHOOK:
        body = webhook_body(event_id=str(notification.pk), reference=str(request.pk), categories=notification.categories,
                            identities=notification.identities, erased_at=request.completed_at)
        return webhook_post(url=destination.url, secret=destination.secret.get_secret_value(), body=body, now=now)
    email_enqueue(email_new(request, EMAIL_TEMPLATE, to=[destination], recipient=notification.recipient,
                            categories=[_category(category) for category in notification.categories],
                            identities=notification.identities, erased_at=request.completed_at,
                            reply_to=settings.DEFAULT_FROM_EMAIL))
    return f"emailed to {destination}"


def _category(category: str) -> dict[str, str]:
    """A category as a recipient reads it: its id, which both sides share, and its label."""
    return {"id": category, "label": category_label(category)}


def _audited(notification: RecipientNotification, *, actor: str, action: str, note: str) -> None:
    audit_record(notification.request, actor=actor, action=action, note=note[:1000],
                 data={"recipient": notification.recipient, "system": notification.system, "method": notification.method})


def _sent(notification: RecipientNotification, outcome: str, now: dt.datetime) -> None:
    notification.status, notification.sent_at, notification.last_error = NotificationStatus.SENT, now, ""
    notification.identities = {}  # told: nothing more to send, so nothing of the person is kept for it
    notification.save(update_fields=["status", "sent_at", "last_error", "identities", "attempts", "updated_at"])
    _audited(notification, actor=SYSTEM, action=NOTIFIED, note=f"{notification.recipient} told of the erasure: {outcome}")
    logger.info("request %s: %s (%s) told: %s", notification.request_id, notification.recipient, notification.system, outcome)


def _reschedule(notification: RecipientNotification, error: str, now: dt.datetime) -> None:
    delay = doorbell.backoff_seconds(notification.attempts)
    notification.not_before, notification.last_error = now + dt.timedelta(seconds=delay), error
    notification.save(update_fields=["not_before", "last_error", "attempts", "updated_at"])
    _ring_on_commit([notification], countdown=delay)
    logger.warning("request %s: %s (%s) not told, trying again in %.1fs: %s", notification.request_id, notification.recipient,
                   notification.system, delay, error)


def _fail(notification: RecipientNotification, error: str, now: dt.datetime) -> None:
    """Give up: the failure is in the audit trail, the console and the log, and admins are emailed."""
    notification.status, notification.last_error = NotificationStatus.FAILED, error
    notification.save(update_fields=["status", "last_error", "attempts", "updated_at"])
    _audited(notification, actor=SYSTEM, action=FAILED, note=f"{notification.recipient} could not be told of the erasure: {error}")
    staff_email_on_commit(staff_emails(ROLE_ADMIN), "staff_recipient_failed", request=notification.request,
                          recipient=notification.recipient, system=notification.system, error=error)
    logger.error("request %s: %s (%s) could not be told of the erasure: %s", notification.request_id, notification.recipient,
                 notification.system, error)


def recipient_notifications_sweep(*, now: dt.datetime, limit: int) -> int:
    """Ring for notifications queued and due for DSAR_SWEEP_QUEUED_MINUTES already: their doorbell
    was lost, or their worker died mid-send. Returns how many; a second doorbell is harmless."""
    stale = now - dt.timedelta(minutes=settings.DSAR_SWEEP_QUEUED_MINUTES)
    lost = list(RecipientNotification.objects.filter(status=NotificationStatus.QUEUED, not_before__lt=stale)
                .order_by("not_before").only("pk")[:limit])
    if lost:
        doorbell.ring_all(doorbell.RECIPIENT_NOTIFY, [((str(notification.pk),), {}) for notification in lost])
    return len(lost)


# --- Staff ---------------------------------------------------------------------------------------------


def _locked(notification_id) -> RecipientNotification:
    """The notification, locked until the transaction ends, with its request; NotFound if there is none."""
    notification = locks.recipient_notification_lock(notification_id)
    if notification is None:
        raise NotFound("No such recipient notification.")
    return notification


def recipient_notification_retry(*, notification_id, actor: str) -> RecipientNotification:
    """Send a failed notification again, with all its attempts (once its system file is mended,
    say); audited. Conflict unless it failed."""
    with transaction.atomic():
        notification = _locked(notification_id)
        if notification.status != NotificationStatus.FAILED:
            raise Conflict(f"This notification is {notification.get_status_display().lower()}: only a failed one can be retried.",
                           code="not_failed")
        error = notification.last_error
        notification.status, notification.attempts, notification.not_before = NotificationStatus.QUEUED, 0, timezone.now()
        notification.save(update_fields=["status", "attempts", "not_before", "updated_at"])
        _audited(notification, actor=actor, action=RETRIED, note=f"{notification.recipient}: trying again after: {error}")
        _ring_on_commit([notification])
    return notification


def recipient_notification_done(*, notification_id, actor: str, note: str) -> RecipientNotification:
    """Staff told a recipient by hand: one whose system file says so, or one that failed (by phone,
    say). The note, required, says how; it goes into the audit entry. Conflict if it is not waiting
    for staff or failed."""
    if not note.strip():
        raise InvalidInput("A note is required: say how you told them.", code="note_required")
    with transaction.atomic():
        notification = _locked(notification_id)
        if notification.status not in (NotificationStatus.WITH_STAFF, NotificationStatus.FAILED):
            raise Conflict(f"This notification is {notification.get_status_display().lower()}: there is nothing left to do by hand.",
                           code="not_open")
        notification.status, notification.done_at, notification.done_by = NotificationStatus.DONE, timezone.now(), actor
        notification.identities = {}
        notification.save(update_fields=["status", "done_at", "done_by", "identities", "updated_at"])
        _audited(notification, actor=actor, action=DONE, note=note.strip())
    return notification
