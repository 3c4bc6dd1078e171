"""Telling the recipients of a person's data about its erasure: the notifications a deletion makes,
their sending by the workers, and what staff do with them. The rest of the product uses what this
facade names."""

from .selectors import recipient_notification_get, recipient_notification_list_open
from .services import (recipient_notification_done, recipient_notification_retry, recipient_notification_send,
                       recipient_notifications_create, recipient_notifications_sweep)
from .webhook import webhook_signature

__all__ = [
    "recipient_notification_done",
    "recipient_notification_get",
    "recipient_notification_list_open",
    "recipient_notification_retry",
    "recipient_notification_send",
    "recipient_notifications_create",
    "recipient_notifications_sweep",
    "webhook_signature",
]
