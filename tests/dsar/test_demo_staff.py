"""The demo's staff logins (`manage.py demo_staff`, run by `make run`): a password made for each
install, the logins only on a loopback address, and each login's authenticator set up only with a
one-time code."""

from __future__ import annotations

import io
import stat

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django_otp.plugins.otp_totp.models import TOTPDevice

import devstack
from dsar.staff import ROLE_ADMIN, ROLE_REVIEWER, staff_has_role, staff_setup_code_valid

pytestmark = pytest.mark.django_db


def _demo_staff(*args: str) -> str:
    out = io.StringIO()
    call_command("demo_staff", *args, stdout=out)
    return out.getvalue()


def test_the_demo_password_is_made_for_the_install_and_readable_by_its_owner_alone(tmp_path):
    first = devstack.demo_password(tmp_path / "var" / "demo-password")
    assert len(first) >= 16 and first != devstack.demo_password(tmp_path / "other")
    assert devstack.demo_password(tmp_path / "var" / "demo-password") == first  # kept
    assert stat.S_IMODE((tmp_path / "var" / "demo-password").stat().st_mode) == 0o600


def test_on_loopback_the_demo_logins_are_made_once_and_each_gets_a_setup_code_until_they_have_an_authenticator():
    printed = _demo_staff("--password", "a-password-for-this-install", "--host", "127.0.0.1").splitlines()
    assert printed[:2] == ["created demo staff user admin (admin)", "created demo staff user reviewer (reviewer)"]
    admin, reviewer = (get_user_model().objects.get(username=name) for name in ("admin", "reviewer"))
    assert staff_has_role(admin, ROLE_ADMIN) and admin.check_password("a-password-for-this-install")
    assert staff_has_role(reviewer, ROLE_REVIEWER) and not staff_has_role(reviewer, ROLE_ADMIN)
    assert len(printed) == 4
    said = "'s one-time setup code for their authenticator: "
    assert staff_setup_code_valid(user=admin, code=printed[2].removeprefix(f"admin{said}"))
    assert staff_setup_code_valid(user=reviewer, code=printed[3].removeprefix(f"reviewer{said}"))

    again = _demo_staff("--password", "another", "--host", "::1").splitlines()  # nothing made twice
    assert [line.split(": ")[0] for line in again] == ["admin's one-time setup code for their authenticator",
                                                        "reviewer's one-time setup code for their authenticator"]
    TOTPDevice.objects.create(user=admin, name="phone", confirmed=True)
    TOTPDevice.objects.create(user=reviewer, name="phone", confirmed=False)  # shown, never confirmed: still none
    (only,) = _demo_staff("--password", "another", "--host", "localhost").splitlines()
    assert only.startswith("reviewer's one-time setup code for their authenticator: ")
    TOTPDevice.objects.filter(user=reviewer).update(confirmed=True)
    assert _demo_staff("--password", "another", "--host", "localhost") == ""


def test_on_another_address_the_demo_logins_are_not_made_and_their_existence_stops_the_start():
    assert _demo_staff("--password", "pw", "--host", "0.0.0.0") == ""
    assert not get_user_model().objects.filter(username__in=["admin", "reviewer"]).exists()

    _demo_staff("--password", "pw", "--host", "127.0.0.1")
    with pytest.raises(CommandError, match=r"^the demo's staff logins \(admin, reviewer\) exist, and 192\.0\.2\.7 is not a loopback "
                                           r"address: anyone reaching it could sign in with them\. Remove them"):
        _demo_staff("--password", "pw", "--host", "192.0.2.7")
    assert _demo_staff("--remove") == "removed the demo's staff logins: admin, reviewer\n"
    assert _demo_staff("--host", "192.0.2.7") == ""
