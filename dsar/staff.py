"""Staff members, their roles (reviewer, admin), their second factor and their API tokens.

Every change to staff is a service here that writes its audit entry in the same transaction, into
the same tamper-evident chain as the requests' (an entry with no request). `by` is the staff
member acting, or None for the operator at the command line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets
from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
import django_otp
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import locks
from .errors import Conflict, InvalidInput, NotFound
from .lifecycle import audit_record
from .models import SecondFactorSetupCode, StaffPreference, StaffToken
from .zones import time_zones

ROLE_REVIEWER = "reviewer"
ROLE_ADMIN = "admin"
ROLES = (ROLE_REVIEWER, ROLE_ADMIN)
OPERATOR = "system"
SETUP_CODE_VALID = dt.timedelta(hours=24)
TOKEN_VALID = dt.timedelta(days=90)  # an API token's life unless its maker says otherwise
SETUP_CODE_REFUSED = "That setup code is not right, or has expired: ask an admin for a new one."
DEFAULT_TIME_ZONE = "UTC"
SETUP_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread; 12 of them are 60 bits


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def staff_actor(user) -> str:
    """How the audit trail names a staff member acting, or the operator (None)."""
    return f"staff:{user.get_username()}" if user is not None else OPERATOR


def staff_emails(role: str) -> list[str]:
    """The addresses of the active staff who hold `role` (reviewers: admins too), to alert."""
    users = get_user_model().objects.filter(is_active=True, is_staff=True).exclude(email="")
    if role == ROLE_ADMIN:
        users = users.filter(Q(groups__name=ROLE_ADMIN) | Q(is_superuser=True))
    else:
        users = users.filter(groups__name__in=[ROLE_REVIEWER, ROLE_ADMIN])
    return sorted(set(users.values_list("email", flat=True)))


def staff_has_role(user, role: str) -> bool:
    """Admins hold every role; reviewers only theirs. Inactive users hold none."""
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return False
    names = {group.name for group in user.groups.all()}
    return ROLE_ADMIN in names or user.is_superuser or role in names


def _audit(by, action: str, member, **data) -> None:
    audit_record(None, actor=staff_actor(by), action=action, data={"staff": member.get_username(), **data})


def _role_give(user, role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}.", code="invalid_role")
    groups = [Group.objects.get_or_create(name=name)[0] for name in ROLES]
    user.groups.remove(*groups)
    user.groups.add(*[group for group in groups if group.name == role])


@transaction.atomic
def staff_user_ensure(*, username: str, role: str, by=None):
    """The staff user `username`, created if needed, holding exactly `role`."""
    user, created = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": True})
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    _role_give(user, role)
    _audit(by, "staff_created" if created else "staff_role_changed", user, role=role)
    return user


@transaction.atomic
def staff_member_create(*, username: str, email: str, role: str, password: str, by=None):
    """A new staff member with a role and an initial password (already validated by the caller)."""
    if get_user_model().objects.filter(username__iexact=username).exists():
        raise Conflict("A user with that username already exists.", code="username_taken")
    user = get_user_model().objects.create_user(username=username, email=email, password=password, is_staff=True)
    _role_give(user, role)
    _audit(by, "staff_created", user, role=role)
    return user


def _member_locked(user_id, by):
    """Lock another staff member's row; nobody changes their own role or access (an admin could
    leave the console with no admin at all)."""
    if by is not None and str(by.pk) == str(user_id):
        raise Conflict("You cannot change your own role or access: ask another admin.", code="own_account")
    try:
        return locks.staff_user_lock(user_id)
    except get_user_model().DoesNotExist:
        raise NotFound("No such staff member.") from None


@transaction.atomic
def staff_role_change(*, user_id, role: str, by=None):
    """Give another staff member a different role."""
    member = _member_locked(user_id, by)
    _role_give(member, role)
    _audit(by, "staff_role_changed", member, role=role)
    return member


def _sessions_end(member) -> int:
    """Delete every live session signed in as `member`; how many there were.

    The session store keeps no index by user, so each unexpired session is read: deactivating is
    rare, and the sessions are the database's (Django's default engine; `cached_db` works too, its
    cache entry deleted with the row)."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    live = store.get_model_class().objects.filter(expire_date__gt=timezone.now()).values_list("session_key", "session_data")
    ended = [key for key, data in live.iterator() if store().decode(data).get(SESSION_KEY) == str(member.pk)]
    for key in ended:
        store(session_key=key).delete()
    return len(ended)


@transaction.atomic
def staff_active_set(*, user_id, active: bool, by=None):
    """Deactivate a staff member (their sessions and API tokens stop working at once), or reactivate.

    Deactivating also deletes their sessions: an inactive member's session only stops working while
    they are inactive, and reactivating them would otherwise bring every old session back (ASVS 7.4.5)."""
    member = _member_locked(user_id, by)
    member.is_active = active
    member.save(update_fields=["is_active"])
    if not active:
        _sessions_end(member)
    _audit(by, "staff_reactivated" if active else "staff_deactivated", member)
    return member


@transaction.atomic
def staff_second_factor_reset(*, user_id, by=None):
    """Remove a staff member's TOTP devices (a lost phone); they set a new one up at their next
    sign-in, with a setup code an admin gives them (`staff_setup_code_issue`)."""
    member = _member_locked(user_id, by)
    TOTPDevice.objects.filter(user=member).delete()
    _audit(by, "staff_second_factor_reset", member)
    return member


@transaction.atomic
def staff_second_factor_device(*, user) -> TOTPDevice:
    """The staff member's TOTP device being set up, made with a new secret if there is none. It
    keeps the secret between showing it and confirming it; the OTP middleware ignores unconfirmed
    devices, so it grants nothing until then."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
        _audit(user, "staff_second_factor_issued", user)
    return device


@transaction.atomic
def staff_second_factor_confirm(*, user, device: TOTPDevice, setup_code: str | None = None) -> None:
    """A staff member confirmed a new TOTP device with a code: it replaces any earlier one. Their
    first device also needs the one-time setup code an admin gave them, which it uses up:
    InvalidInput when it is missing, wrong or expired."""
    locks.staff_user_lock(user.pk)
    if not TOTPDevice.objects.filter(user=user, confirmed=True).exists() and not _setup_code_live(user, setup_code or "").delete()[0]:
        raise InvalidInput(SETUP_CODE_REFUSED, code="setup_code_invalid")
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
    device.confirmed = True
    _audit(user, "staff_second_factor_set", user)


@transaction.atomic
def staff_setup_code_issue(*, user_id, by=None) -> str:
    """A one-time code with which the member sets up their first authenticator (replacing any
    earlier code), valid for SETUP_CODE_VALID. Only its digest is kept: show it once, and give it
    to them apart from their password."""
    member = _member_locked(user_id, by)
    code = "".join(secrets.choice(SETUP_CODE_ALPHABET) for _ in range(12))
    SecondFactorSetupCode.objects.update_or_create(
        user=member, defaults={"code_hash": _digest(code), "expires_at": timezone.now() + SETUP_CODE_VALID})
    _audit(by, "staff_setup_code_issued", member)
    return "-".join(code[i:i + 4] for i in range(0, 12, 4))


def staff_setup_code_valid(*, user, code: str) -> bool:
    """Whether `code` is the member's setup code, not yet used nor expired (it is not used up here)."""
    return _setup_code_live(user, code).exists()


def _setup_code_live(user, code: str):
    """The member's setup code if it is `code` as typed (any case, with or without its dashes and
    spaces) and has not expired."""
    typed = "".join(code.split()).replace("-", "").upper()
    return SecondFactorSetupCode.objects.filter(user=user, code_hash=_digest(typed), expires_at__gt=timezone.now())


@transaction.atomic
def staff_token_create(*, user, by=None, valid: dt.timedelta = TOKEN_VALID) -> str:
    """A new API token for a staff user, working for `valid`. Only its hash is kept: show the key once."""
    if valid <= dt.timedelta(0):
        raise InvalidInput("A token must be valid for some time.", code="invalid_validity")
    key = secrets.token_urlsafe(32)
    StaffToken.objects.create(user=user, key_hash=_digest(key), expires_at=timezone.now() + valid)
    _audit(by, "staff_token_created", user)
    return key


@transaction.atomic
def staff_tokens_revoke(*, user, by=None) -> int:
    """Revoke every working API token of a staff user (a leaked one, a member leaving); how many."""
    revoked = StaffToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    _audit(by, "staff_tokens_revoked", user, tokens=revoked)
    return revoked


def staff_token_user(key: str):
    """The active staff user a working token (neither expired nor revoked) belongs to, or None."""
    if not key:
        return None
    token = StaffToken.objects.select_related("user").filter(key_hash=_digest(key), revoked_at__isnull=True,
                                                             expires_at__gt=timezone.now()).first()
    if token is None or not token.user.is_active:
        return None
    StaffToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user


def staff_time_zone(user) -> str:
    """The time zone the console gives this member's times in: theirs, or UTC until one is set."""
    preference = StaffPreference.objects.filter(user=user).first()
    return preference.time_zone if preference else DEFAULT_TIME_ZONE


@transaction.atomic
def staff_time_zone_set(*, user, time_zone: str, chosen: bool) -> str:
    """Keep a member's time zone, and return the one they now have: `chosen` on their settings page,
    or (not chosen) their browser's at sign-in, which never replaces one they chose. InvalidInput
    for a name that is no IANA time zone."""
    if time_zone not in time_zones():
        raise InvalidInput("Choose a time zone by its IANA name, such as Europe/Berlin.", code="invalid_time_zone")
    preference, _ = StaffPreference.objects.select_for_update().get_or_create(user=user)
    if chosen or not preference.time_zone_chosen:
        preference.time_zone, preference.time_zone_chosen = time_zone, chosen or preference.time_zone_chosen
        preference.save(update_fields=["time_zone", "time_zone_chosen"])
    return preference.time_zone


CODE_WRONG = "That code is not right. Enter the code your app shows now."
CODE_USED = "That code was already used: a code works once. Wait for your app to show the next one, then enter it."


def staff_code_verify(*, user, devices: list[TOTPDevice], code: str) -> TOTPDevice:
    """Check a code from one of the member's authenticators (a phone, a tablet), and return the
    device it is right for; else InvalidInput saying why in words. django-otp makes the member wait
    after each wrong code (1, 2, 4... seconds) and refuses any code, even the right one, until then:
    said with the wait left, and the code is not tried, so it is not spent. A code is good once (a
    step at most once): one already used, say at the sign-in just before, is said to be so."""
    refusals = []
    for device in devices:
        try:
            return _code_verify(user, device, code)
        except InvalidInput as refusal:
            refusals.append(refusal)
    # The most telling reason: waiting or reuse explain a right code; "not right" only a wrong one.
    raise min(refusals, key=lambda refusal: _CODE_REFUSALS.index(refusal.code))


_CODE_REFUSALS = ("code_too_soon", "code_used", "code_wrong")


def _code_verify(user, device: TOTPDevice, code: str) -> TOTPDevice:
    device.refresh_from_db()
    allowed, why = device.verify_is_allowed()
    if not allowed:
        until = (why or {}).get("locked_until")
        wait = max(math.ceil((until - timezone.now()).total_seconds()), 1) if until else 1
        raise InvalidInput(f"That was too soon after a wrong code: wait {wait} second{'s' if wait > 1 else ''}, "
                           "then enter the code your app shows.", code="code_too_soon")
    verified = django_otp.verify_token(user, device.persistent_id, code)
    if verified is not None:
        return verified
    device.refresh_from_db()
    if TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).verify(int(code), device.tolerance):
        raise InvalidInput(CODE_USED, code="code_used")  # right for now, but its step is at or before the last one used
    raise InvalidInput(CODE_WRONG, code="code_wrong")
