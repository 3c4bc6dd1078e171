"""The console's recipients to tell of an erasure: those staff tell by hand and those that could
not be told, one such notification's page, and retrying a failed one. The rules are the services'
(dsar/recipients/)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from .. import recipients
from ..errors import NotFound, ServiceError
from ..staff import staff_actor
from . import forms
from .access import console_access
from .views import require_page_or_form


@console_access
@require_safe
def recipient_notifications(request):
    """The recipients waiting for staff to tell them by hand, and those that could not be told, oldest first."""
    return render(request, "console/recipient_notifications.html", {"notifications": recipients.recipient_notification_list_open()})


@console_access
@require_page_or_form
def recipient_notification(http_request, notification_id):
    """One recipient to tell of an erasure: what to tell them and how, and the form saying it is done."""
    try:
        item = recipients.recipient_notification_get(notification_id=notification_id)
    except NotFound:
        raise Http404("No such recipient notification.") from None
    form = forms.RecipientToldForm(http_request.POST if http_request.method == "POST" else None)
    if form.is_valid():
        try:
            recipients.recipient_notification_done(notification_id=notification_id, actor=staff_actor(http_request.user),
                                                   note=form.cleaned_data["note"])
        except ServiceError as error:
            messages.error(http_request, error.detail)
        else:
            messages.success(http_request, f"{item.notification.recipient}: done, and noted in the request's audit trail.")
            return redirect("console:request", request_id=item.notification.request_id)
    context = {"item": item, "notification": item.notification, "req": item.notification.request, "form": form}
    return render(http_request, "console/recipient_notification.html", context)


@console_access
@require_POST
def recipient_notification_retry(http_request, notification_id):
    """Send a failed notification again; a refusal is shown as a message and changes nothing."""
    try:
        notification = recipients.recipient_notification_retry(notification_id=notification_id, actor=staff_actor(http_request.user))
    except NotFound:
        raise Http404("No such recipient notification.") from None
    except ServiceError as error:
        messages.error(http_request, error.detail)
        return redirect("console:recipient-notification", notification_id=notification_id)
    messages.success(http_request, f"{notification.recipient}: trying again.")
    return redirect("console:request", request_id=notification.request_id)
