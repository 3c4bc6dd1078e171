"""Times as the staff console says them: relative to now in words that never say "0 minutes"."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.translation import gettext, ngettext

register = template.Library()


@register.filter
def relative(value: dt.datetime | None) -> str:
    """'just now' within a minute either way, else 'in 3 days' or '2 hours ago': minutes under an
    hour, hours under a day, whole days beyond."""
    if value is None:
        return ""
    seconds = (value - timezone.now()).total_seconds()
    minutes = int(abs(seconds) // 60)
    if minutes < 1:
        return gettext("just now")
    if minutes < 60:
        span = ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}
    elif minutes < 24 * 60:
        hours = minutes // 60
        span = ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}
    else:
        days = minutes // (24 * 60)
        span = ngettext("%(count)d day", "%(count)d days", days) % {"count": days}
    return (gettext("%(span)s ago") if seconds < 0 else gettext("in %(span)s")) % {"span": span}
