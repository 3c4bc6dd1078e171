"""Staff members, their roles (reviewer, admin) and their API tokens."""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from .models import StaffToken

ROLE_REVIEWER = "reviewer"
ROLE_ADMIN = "admin"
ROLES = (ROLE_REVIEWER, ROLE_ADMIN)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def staff_has_role(user, role: str) -> bool:
    """Admins hold every role; reviewers only theirs. Inactive users hold none."""
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return False
    names = {group.name for group in user.groups.all()}
    return ROLE_ADMIN in names or user.is_superuser or role in names


@transaction.atomic
def staff_user_ensure(*, username: str, role: str):
    """The staff user, created if needed, holding exactly `role`."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    user, _ = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": True})
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    groups = [Group.objects.get_or_create(name=name)[0] for name in ROLES]
    user.groups.remove(*groups)
    user.groups.add(Group.objects.get(name=role))
    return user


def staff_token_create(*, user) -> str:
    """A new API token for a staff user. Only its hash is kept: show the key once."""
    key = secrets.token_urlsafe(32)
    StaffToken.objects.create(user=user, key_hash=_digest(key))
    return key


def staff_token_user(key: str):
    """The active staff user a token belongs to, or None."""
    if not key:
        return None
    token = StaffToken.objects.select_related("user").filter(key_hash=_digest(key)).first()
    if token is None or not token.user.is_active:
        return None
    StaffToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user
