"""Who may see which console page: signed-in staff, the right role, and a second factor.

Every staff member, reviewer or admin, needs a second factor (ASVS 6.3.3): a reviewer approves and
releases exports of people's data, so a password alone must not be enough. One with a confirmed
TOTP device enters a code once per session; one without sets one up first, with the one-time
setup code an admin gave them. Roles are judged by `dsar.staff.staff_has_role`.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.db.models import prefetch_related_objects
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django_otp import user_has_device

from ..staff import ROLE_ADMIN, ROLE_REVIEWER, staff_has_role, staff_time_zone

# What the navigation offers, kept on the request for the base template.
NAV_ADMIN, NAV_REVIEWER, NAV_SECOND_FACTOR = "admin", "reviewer", "second-factor"
# The member's time zone, kept in the session from sign-in so that no page reads it again.
SESSION_TIME_ZONE = "console_time_zone"


def time_zone_remember(request, zone: str) -> None:
    """Give this session's console pages their times in `zone`."""
    request.session[SESSION_TIME_ZONE] = zone


def forbidden(request, message: str):
    """The console's 403 page, inside its own layout rather than Django's bare one."""
    return render(request, "console/forbidden.html", {"message": message}, status=403)


def second_factor_due(user) -> str | None:
    """The URL name of the step this staff member must take before any other console page, if any:
    entering a code, or setting a device up when they have none (a new member, a reset one)."""
    if user.is_verified():
        return None
    return "console:otp-verify" if user_has_device(user) else "console:otp-setup"


def console_access(view=None, *, role: str = ROLE_REVIEWER, second_factor_step: bool = False):
    """Guard a console view: sign-in, staff role `role`, and the second factor unless the view is
    itself a step of it (`second_factor_step`)."""

    def decorate(view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            prefetch_related_objects([user], "groups")  # read once for the role checks below
            if not staff_has_role(user, ROLE_REVIEWER):
                return forbidden(request, "This console is for privacy staff only.")
            step = second_factor_due(user)
            admin = staff_has_role(user, ROLE_ADMIN)
            request.console_nav = NAV_SECOND_FACTOR if step else NAV_ADMIN if admin else NAV_REVIEWER
            if step and not second_factor_step:
                return redirect(f"{reverse(step)}?{urlencode({'next': request.get_full_path()})}")
            if role == ROLE_ADMIN and not admin:
                return forbidden(request, "Only admins can open this page.")
            if SESSION_TIME_ZONE not in request.session:  # a session from before members kept a time zone
                time_zone_remember(request, staff_time_zone(user))
            # Django's date filters then give every time on the page in the member's zone.
            with timezone.override(request.session[SESSION_TIME_ZONE]):
                return view(request, *args, **kwargs)

        return guarded

    return decorate(view) if view is not None else decorate
