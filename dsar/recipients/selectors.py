"""Reads behind the console's list of recipients to tell and its page for one. Nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from connectors.registry import systems
from connectors.systems import Recipient

from ..errors import NotFound
from ..models import NotificationStatus, RecipientNotification


def recipient_notification_list_open() -> QuerySet[RecipientNotification]:
    """The notifications waiting for staff (to tell by hand, or failed), with their requests, the
    oldest first: one query."""
    return (RecipientNotification.objects.filter(status__in=[NotificationStatus.WITH_STAFF, NotificationStatus.FAILED])
            .select_related("request").order_by("created_at", "system", "recipient"))


@dataclass(frozen=True)
class NotificationItem:
    """One notification as staff work it: the row (with its request) and its recipient as its
    system file declares it now (None when it no longer does)."""

    notification: RecipientNotification
    recipient: Recipient | None

    @property
    def instructions(self) -> str | None:
        """What the system file tells staff to do, for a recipient told by hand."""
        return self.recipient.notify.manual if self.recipient else None


def recipient_declared(notification: RecipientNotification) -> Recipient | None:
    """The notification's recipient as its system's file declares it now, or None when it no longer does."""
    system = systems().get(notification.system)
    return next((r for r in system.recipients if r.name == notification.recipient), None) if system else None


def recipient_notification_get(*, notification_id) -> NotificationItem:
    """One notification with its request and its recipient's declaration; NotFound for no such one."""
    notification = RecipientNotification.objects.select_related("request").filter(pk=notification_id).first()
    if notification is None:
        raise NotFound("No such recipient notification.")
    return NotificationItem(notification, recipient_declared(notification))
