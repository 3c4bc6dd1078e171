"""Staff API tokens: they expire, they can be revoked, and making one never changes a member's role
unless asked (`manage.py staff_token`)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from dsar.models import AuditEntry
from dsar.staff import ROLE_ADMIN, ROLE_REVIEWER, staff_has_role, staff_token_create, staff_token_user, staff_user_ensure

pytestmark = pytest.mark.django_db


def _token(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("staff_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip().splitlines()[-1], err.getvalue()


def test_a_token_works_until_it_expires():
    ada = staff_user_ensure(username="ada", role=ROLE_REVIEWER)
    key = staff_token_create(user=ada, valid=dt.timedelta(days=2))
    with time_machine.travel(timezone.now() + dt.timedelta(days=1, hours=23)):
        assert staff_token_user(key) == ada
    with time_machine.travel(timezone.now() + dt.timedelta(days=2, seconds=1)):
        assert staff_token_user(key) is None
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        assert client.get("/api/v1/staff/requests").status_code == 401


def test_the_command_makes_tokens_for_ninety_days_unless_told_and_revokes_them_all():
    key, said = _token("rob", "--role", ROLE_REVIEWER)
    assert said.endswith("a token for rob, working for 90 days:\n")
    with time_machine.travel(timezone.now() + dt.timedelta(days=89, hours=23)):
        assert staff_token_user(key).username == "rob"
    with time_machine.travel(timezone.now() + dt.timedelta(days=90, seconds=1)):
        assert staff_token_user(key) is None
    short, _ = _token("rob", "--days", "7")
    with time_machine.travel(timezone.now() + dt.timedelta(days=7, seconds=1)):
        assert staff_token_user(short) is None

    revoked = io.StringIO()
    call_command("staff_token", "rob", "--revoke", stdout=revoked)
    assert revoked.getvalue() == "revoked 2 token(s) of rob\n"
    assert staff_token_user(key) is None and staff_token_user(short) is None
    assert AuditEntry.objects.filter(action="staff_tokens_revoked").values_list("data", flat=True)[0] == {"staff": "rob", "tokens": 2}
    with pytest.raises(CommandError, match="--days must be 1 or more"):
        _token("rob", "--days", "0")
    with pytest.raises(CommandError, match="No staff member is named 'nobody'."):
        call_command("staff_token", "nobody", "--revoke")


def test_a_token_for_an_admin_keeps_them_admin_unless_a_role_is_asked_for():
    admin = staff_user_ensure(username="adm", role=ROLE_ADMIN)
    _, said = _token("adm")
    assert staff_has_role(admin, ROLE_ADMIN) and "changed" not in said
    _, said = _token("adm", "--role", ROLE_ADMIN)
    assert staff_has_role(admin, ROLE_ADMIN) and "changed" not in said
    _, said = _token("adm", "--role", ROLE_REVIEWER)
    assert not staff_has_role(admin, ROLE_ADMIN)
    assert said.startswith("changed adm's role from admin to reviewer, as --role said.\n")
