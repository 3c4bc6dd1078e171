"""The staff console through Django's test client: who gets in, the queue, the review actions and
their audit entries, the dashboard's figures, and the admins' pages."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from connectors.systems import System
from dsar import selectors
from dsar.models import AuditEntry, ConnectorTask, Export, Request
from dsar.staff import ROLE_ADMIN, ROLE_REVIEWER, staff_has_role, staff_setup_code_issue, staff_setup_code_valid, staff_user_ensure

from ..factories import request_make

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-staff-passphrase"
# The session, the user, their roles, their second factor; then the page's own: the queue's count and
# rows, or the request (with its export and assignee), its tasks, its recipient notifications, its audit trail, its questions to
# the person and the staff it can be assigned to.
QUEUE_QUERIES, REQUEST_PAGE_QUERIES = 6, 10


def _staff(username: str, role: str):
    user = staff_user_ensure(username=username, role=role)
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return user


def _sign_in(client: Client, username: str, password: str = PASSWORD):
    return client.post(reverse("console:login"), {"username": username, "password": password})


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, digits=device.digits):0{device.digits}d}"


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def _signed_in(username: str, role: str, next_url: str) -> Client:
    """A staff member signed in with password and TOTP code, through the console's own pages."""
    user = _staff(username, role)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client = Client()
    assert _sign_in(client, username).status_code == 302
    verified = client.post(reverse("console:otp-verify"), {"code": _code(device), "next": next_url})
    assert verified.status_code == 302 and verified["Location"] == next_url
    return client


@pytest.fixture
def reviewer_client():
    return _signed_in("rita", ROLE_REVIEWER, "/console/")


@pytest.fixture
def admin_client():
    return _signed_in("ada", ROLE_ADMIN, "/console/staff")


def _pending(**kwargs) -> Request:
    return request_make(status="pending_review", **kwargs)


# --- Who gets in --------------------------------------------------------------------------------------


def test_a_signed_out_visitor_is_sent_to_sign_in_from_every_page():
    request = _pending()
    user = _staff("someone", ROLE_REVIEWER)
    pages = [
        reverse("console:queue"),
        reverse("console:dashboard"),
        reverse("console:request", args=[request.pk]),
        reverse("console:request-status", args=[request.pk]),
        reverse("console:staff"),
        reverse("console:settings"),
        reverse("console:otp-setup"),
        reverse("console:otp-verify"),
    ]
    client = Client()
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/console/login/?next="), url
    posts = [
        reverse(f"console:request-{action}", args=[request.pk]) for action in ("approve", "deny", "extend", "retry", "release")
    ]
    posts += [reverse(f"console:staff-{action}", args=[user.pk]) for action in ("role", "active", "otp-reset")]
    for url in posts:
        response = client.post(url, {"reason": "x", "days": 1, "role": ROLE_ADMIN, "active": "0"})
        assert response.status_code == 302 and response["Location"].startswith("/console/login/"), url
    assert Request.objects.get(pk=request.pk).status == "pending_review"
    assert staff_has_role(get_user_model().objects.get(pk=user.pk), ROLE_REVIEWER)
    page = client.get(reverse("console:login"))
    assert page.status_code == 200 and b'<label for="id_username"' in page.content


def test_only_staff_can_sign_in():
    get_user_model().objects.create_user(username="customer", password=PASSWORD)
    flagged = get_user_model().objects.create_user(username="flagged", password=PASSWORD, is_staff=True)  # no role
    for username in ("customer", flagged.username):
        client = Client()
        response = _sign_in(client, username)
        assert response.status_code == 200
        assert b"Please enter a correct username and password" in response.content
        assert client.get(reverse("console:queue")).status_code == 302


def test_sign_out_is_a_post_and_ends_the_session(reviewer_client):
    assert reviewer_client.get(reverse("console:queue")).status_code == 200
    assert reviewer_client.get(reverse("console:logout")).status_code == 405
    response = reviewer_client.post(reverse("console:logout"))
    assert response.status_code == 302 and response["Location"] == reverse("console:login")
    assert reviewer_client.get(reverse("console:queue")).status_code == 302


def test_sign_out_tells_the_browser_to_clear_the_sites_cache_cookies_and_storage(reviewer_client):
    signed_out = reviewer_client.post(reverse("console:logout"))
    assert (signed_out.status_code, signed_out["Location"]) == (302, reverse("console:login"))
    assert signed_out.get("Clear-Site-Data") == '"cache", "cookies", "storage"'


def test_a_reviewer_gets_403_on_admin_pages_and_no_links_to_them(reviewer_client):
    other = _staff("otto", ROLE_REVIEWER)
    for url in (reverse("console:staff"), reverse("console:settings")):
        response = reviewer_client.get(url)
        assert response.status_code == 403
        assert b"Only admins" in response.content
    response = reviewer_client.post(reverse("console:staff-role", args=[other.pk]), {"role": ROLE_ADMIN})
    assert response.status_code == 403
    assert not staff_has_role(get_user_model().objects.get(pk=other.pk), ROLE_ADMIN)
    queue = reviewer_client.get(reverse("console:queue")).content.decode()
    assert reverse("console:dashboard") in queue
    assert reverse("console:staff") not in queue and reverse("console:settings") not in queue


def test_an_admin_must_set_up_then_enter_a_totp_code_before_any_page():
    user = _staff("adele", ROLE_ADMIN)
    setup_code = staff_setup_code_issue(user_id=user.pk)
    client = Client()
    assert _sign_in(client, "adele").status_code == 302
    for url in (reverse("console:queue"), reverse("console:staff"), reverse("console:dashboard")):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("console:otp-setup") + "?next="), url

    setup = client.get(reverse("console:otp-setup") + "?next=/console/settings")
    assert setup.status_code == 200
    content = setup.content.decode()
    assert "<svg" in content and "otpauth://totp/" in content
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', content).group(1).replace(" ", "")
    device = TOTPDevice.objects.get(user=user)
    assert not device.confirmed and secret == _b32(device)
    assert client.get(reverse("console:queue")).status_code == 302  # an unconfirmed device grants nothing

    assert 'name="setup_code"' in content
    wrong = client.post(reverse("console:otp-setup"), {"code": "000000", "setup_code": setup_code, "next": "/console/settings"})
    assert wrong.status_code == 200 and b"That code is not right" in wrong.content
    device.refresh_from_db()
    device.throttling_failure_count, device.throttling_failure_timestamp = 0, None  # a real person waits; the test does not
    device.save()
    for guessed in ("", "AAAA-BBBB-CCCC"):  # the password alone, or a guessed code, enrols nothing
        refused = client.post(reverse("console:otp-setup"), {"code": _code(device), "setup_code": guessed, "next": "/console/settings"})
        assert refused.status_code == 200 and not TOTPDevice.objects.get(user=user).confirmed
    assert b"That setup code is not right, or has expired: ask an admin for a new one." in refused.content
    typed = setup_code.lower().replace("-", " ")  # as a person might type it
    confirmed = client.post(reverse("console:otp-setup"), {"code": _code(device), "setup_code": typed, "next": "/console/settings"})
    assert confirmed.status_code == 302 and confirmed["Location"] == "/console/settings"
    assert TOTPDevice.objects.get(user=user).confirmed
    assert client.get(reverse("console:staff")).status_code == 200
    assert _staff_audit()[-3:] == [("system", "staff_setup_code_issued", {"staff": "adele"}),
                                   ("staff:adele", "staff_second_factor_issued", {"staff": "adele"}),
                                   ("staff:adele", "staff_second_factor_set", {"staff": "adele"})]
    assert not staff_setup_code_valid(user=user, code=setup_code)  # used up

    later = Client()  # the next sign-in asks for a code, not a new device
    assert _sign_in(later, "adele").status_code == 302
    response = later.get(reverse("console:staff"))
    assert response["Location"].startswith(reverse("console:otp-verify"))
    assert later.get(reverse("console:otp-setup"))["Location"].startswith(reverse("console:otp-verify"))  # no swapping the device
    assert later.post(reverse("console:otp-verify"), {"code": "123456"}).status_code == 200
    assert later.get(reverse("console:staff")).status_code == 302


def test_a_reviewer_with_a_password_alone_reaches_only_the_set_up_step_until_they_set_up_with_the_code():
    request = _pending()
    rita = _staff("rita", ROLE_REVIEWER)
    setup_code = staff_setup_code_issue(user_id=rita.pk)
    client = Client()
    assert _sign_in(client, "rita").status_code == 302
    pages = [reverse("console:queue"), reverse("console:dashboard"), reverse("console:request", args=[request.pk]),
             reverse("console:request-status", args=[request.pk]), reverse("console:request-preview", args=[request.pk]),
             reverse("console:systems"), reverse("console:manual-tasks"), reverse("console:staff")]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/console/two-factor/setup?next="), url
    for action in ("approve", "deny", "release"):
        response = client.post(reverse(f"console:request-{action}", args=[request.pk]), {"reason": "x", "note": "x"})
        assert response["Location"].startswith("/console/two-factor/setup?next="), action
    assert Request.objects.get(pk=request.pk).status == "pending_review"

    setup = client.get("/console/two-factor/setup?next=/console/")
    assert setup.status_code == 200
    assert "Every staff member needs a code from an authenticator app as well as their password." in setup.content.decode()
    assert 'name="setup_code"' in setup.content.decode()
    device = TOTPDevice.objects.get(user=rita)
    refused = client.post("/console/two-factor/setup", {"code": _code(device), "setup_code": "", "next": "/console/"})
    assert refused.status_code == 200 and not TOTPDevice.objects.get(user=rita).confirmed  # the password alone enrols nothing
    confirmed = client.post("/console/two-factor/setup", {"code": _code(device), "setup_code": setup_code, "next": "/console/"})
    assert confirmed.status_code == 302 and confirmed["Location"] == "/console/"
    assert client.get(reverse("console:queue")).status_code == 200
    approved = client.post(reverse("console:request-approve", args=[request.pk]), {"note": "checked"})
    assert approved.status_code == 302 and Request.objects.get(pk=request.pk).status == "processing"

    later = Client()  # the next sign-in asks for the app's code, not a new device
    assert _sign_in(later, "rita").status_code == 302
    assert later.get(reverse("console:queue"))["Location"].startswith("/console/two-factor/verify?next=")
    assert later.get("/console/two-factor/setup")["Location"].startswith("/console/two-factor/verify")
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=60)):  # the set-up code is good once: the app's next one
        verified = later.post("/console/two-factor/verify", {"code": _code(device), "next": "/console/"})
        assert verified.status_code == 302 and verified["Location"] == "/console/"
        assert later.get(reverse("console:queue")).status_code == 200


def test_a_reviewer_whose_second_factor_an_admin_reset_must_set_it_up_again(admin_client):
    rita = _staff("rita", ROLE_REVIEWER)
    device = TOTPDevice.objects.create(user=rita, name="phone", confirmed=True)
    client = Client()
    assert _sign_in(client, "rita").status_code == 302
    assert client.post("/console/two-factor/verify", {"code": _code(device), "next": "/console/"}).status_code == 302
    assert client.get(reverse("console:queue")).status_code == 200

    done = admin_client.post(reverse("console:staff-otp-reset", args=[rita.pk]), follow=True)
    setup_code = SETUP_CODE.search(_messages(done)[0]).group(1)
    fresh = Client()
    assert _sign_in(fresh, "rita").status_code == 302
    for signed_in in (client, fresh):  # the session that used the lost device, and a new sign-in
        response = signed_in.get(reverse("console:queue"))
        assert response.status_code == 302 and response["Location"].startswith("/console/two-factor/setup?next=")
    assert fresh.get("/console/two-factor/setup").status_code == 200
    new = TOTPDevice.objects.get(user=rita, confirmed=False)
    confirmed = fresh.post("/console/two-factor/setup", {"code": _code(new), "setup_code": setup_code, "next": "/console/"})
    assert confirmed.status_code == 302 and confirmed["Location"] == "/console/"
    assert fresh.get(reverse("console:queue")).status_code == 200


def _wrong(device: TOTPDevice) -> str:
    return f"{(int(_code(device)) + 500000) % 1000000:06d}"


def test_a_right_code_just_after_a_wrong_one_is_refused_with_the_wait_said_then_accepted_once_it_has_passed():
    device = TOTPDevice.objects.create(user=_staff("rita", ROLE_REVIEWER), name="phone", confirmed=True)
    client = Client()
    assert _sign_in(client, "rita").status_code == 302
    verify = reverse("console:otp-verify")
    with time_machine.travel(timezone.now(), tick=False) as clock:
        wrong = client.post(verify, {"code": _wrong(device), "next": "/console/"})
        assert "That code is not right. Enter the code your app shows now." in wrong.content.decode()
        # django-otp refuses any code for a second after a wrong one, the right one too, without trying it.
        too_soon = client.post(verify, {"code": _code(device), "next": "/console/"})
        assert too_soon.status_code == 200
        assert "That was too soon after a wrong code: wait 1 second, then enter the code your app shows." in too_soon.content.decode()
        clock.shift(dt.timedelta(seconds=1))
        right = client.post(verify, {"code": _code(device), "next": "/console/"})
        assert right.status_code == 302 and right["Location"] == "/console/"

        again = Client()  # another sign-in in the same 30 seconds: the code shown is the one just used
        assert _sign_in(again, "rita").status_code == 302
        used = again.post(verify, {"code": _code(device), "next": "/console/"})
        assert ("That code was already used: a code works once. Wait for your app to show the next one, then enter it."
                in used.content.decode())
        assert again.get(reverse("console:queue")).status_code == 302


def test_setting_up_an_authenticator_says_a_right_code_came_too_soon_after_a_wrong_one():
    user = _staff("rita", ROLE_REVIEWER)
    setup_code = staff_setup_code_issue(user_id=user.pk)
    client = Client()
    assert _sign_in(client, "rita").status_code == 302
    assert client.get(reverse("console:otp-setup")).status_code == 200
    device = TOTPDevice.objects.get(user=user)
    setup = reverse("console:otp-setup")
    with time_machine.travel(timezone.now(), tick=False) as clock:
        client.post(setup, {"code": _wrong(device), "setup_code": setup_code, "next": "/console/"})
        too_soon = client.post(setup, {"code": _code(device), "setup_code": setup_code, "next": "/console/"})
        assert "That was too soon after a wrong code: wait 1 second" in too_soon.content.decode()
        assert not TOTPDevice.objects.get(pk=device.pk).confirmed
        clock.shift(dt.timedelta(seconds=1))
        done = client.post(setup, {"code": _code(device), "setup_code": setup_code, "next": "/console/"})
        assert done.status_code == 302 and TOTPDevice.objects.get(pk=device.pk).confirmed


def _b32(device: TOTPDevice) -> str:
    from base64 import b32encode

    return b32encode(device.bin_key).decode()


def test_five_failed_sign_ins_lock_the_account_and_show_the_lockout_page():
    _staff("lou", ROLE_REVIEWER)
    client = Client()
    answers = [_sign_in(client, "lou", "wrong-password") for _ in range(5)]
    assert [a.status_code for a in answers[:4]] == [200] * 4
    assert answers[4].status_code == 429
    locked = _sign_in(client, "lou")  # even the right password, now
    assert locked.status_code == 429
    assert b"Sign-in locked" in locked.content and b"15 minutes" in locked.content
    assert client.get(reverse("console:queue")).status_code == 302


def test_guesses_spread_over_many_addresses_lock_the_member_too(settings):
    settings.DSAR_TRUSTED_PROXIES = ["10.0.0.9"]
    _staff("lou", ROLE_REVIEWER)
    for number in range(4):  # each from another address, through the trusted proxy or not
        client = Client(REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR=f"198.51.100.{number}") if number % 2 else Client(
            REMOTE_ADDR=f"203.0.113.{number}")
        assert _sign_in(client, "lou", "wrong-password").status_code == 200
    assert _sign_in(Client(REMOTE_ADDR="192.0.2.77"), "lou", "wrong-password").status_code == 429
    assert _sign_in(Client(REMOTE_ADDR="192.0.2.78"), "lou").status_code == 429  # the right password, from yet another address
    from axes.models import AccessAttempt

    assert sorted(AccessAttempt.objects.values_list("ip_address", flat=True)) == [
        "192.0.2.77", "192.0.2.78", "198.51.100.1", "198.51.100.3", "203.0.113.0", "203.0.113.2"]  # the proxy's clients, not the proxy


# --- The queue ------------------------------------------------------------------------------------------


def test_the_queue_filters_searches_and_sorts(reviewer_client):
    late = _pending(email="late@example.com")
    Request.objects.filter(pk=late.pk).update(
        due_at=late.due_at - dt.timedelta(days=60), created_at=late.created_at - dt.timedelta(days=61)
    )
    soon = _pending(email="soon@example.com")
    done = request_make(status="completed", type="deletion", email="done@example.com")
    Request.objects.filter(pk=done.pk).update(due_at=done.due_at - dt.timedelta(days=90))  # closed: never overdue

    def emails(query: str = "") -> list[str]:
        # Every request, closed ones too: what the queue opens on is tested in test_console_queue.
        response = reviewer_client.get(reverse("console:queue") + (f"{query}&show=all" if query else "?show=all"))
        assert response.status_code == 200
        return [row.email for row in response.context["page"]]

    assert emails() == ["done@example.com", "late@example.com", "soon@example.com"]
    assert emails("?sort=-created") == ["done@example.com", "soon@example.com", "late@example.com"]
    assert emails("?sort=created")[0] == "late@example.com"
    assert emails("?overdue=yes") == ["late@example.com"]
    assert emails("?overdue=no") == ["done@example.com", "soon@example.com"]
    assert emails("?type=deletion") == ["done@example.com"]
    assert emails("?status=pending_review") == ["late@example.com", "soon@example.com"]
    assert emails("?q=SOON@Example") == ["soon@example.com"]
    assert emails(f"?q={str(soon.pk).upper()}") == ["soon@example.com"]
    assert emails(f"?q={str(late.pk)[:8]}") == ["late@example.com"]
    assert emails("?q=nobody") == []
    assert emails("?status=bogus") == ["done@example.com", "late@example.com", "soon@example.com"]  # ignored, and said so

    page = reviewer_client.get(reverse("console:queue") + "?overdue=yes").content.decode()
    assert re.search(r"Overdue by (29|30|31|32) days", page)


def test_the_queue_pages_by_fifty_and_never_shows_codes_or_tokens(reviewer_client):
    now = timezone.now()
    Request.objects.bulk_create(
        Request(
            type="access",
            status="pending_review",
            email=f"p{i:02d}@example.com",
            categories=[],
            jurisdiction="gdpr",
            created_at=now,
            due_at=now + dt.timedelta(days=i + 1),
        )
        for i in range(55)
    )
    secret = request_make(status="unverified", email="secret@example.com", code="12345678", token="tok-very-secret")
    first = reviewer_client.get(reverse("console:queue"))
    assert len(first.context["page"]) == 50 and first.context["page"].paginator.num_pages == 2
    assert b"page 1 of 2" in first.content
    second = reviewer_client.get(reverse("console:queue") + "?sort=due&page=2&show=all")  # the unverified one too
    assert len(second.context["page"]) == 6 and b"sort=due&amp;page=1" in second.content
    detail = reviewer_client.get(reverse("console:request", args=[secret.pk])).content.decode()
    for page in (detail, reviewer_client.get(reverse("console:queue") + "?q=secret").content.decode()):
        assert "secret@example.com" in page
        assert secret.code_hash not in page and secret.token_hash not in page
        assert "12345678" not in page and "tok-very-secret" not in page


# --- The request page and its actions -----------------------------------------------------------------


def _audit(request: Request) -> AuditEntry:
    return AuditEntry.objects.filter(request=request).order_by("-id").first()


def test_approve_moves_a_pending_request_on_and_audits_the_reviewer(reviewer_client):
    request = _pending()
    page = reviewer_client.get(reverse("console:request", args=[request.pk]))
    assert set(page.context["actions"]) == {"approve", "deny", "extend", "ask"}
    assert b"Approve request" in page.content and b"Retry failed connectors" not in page.content
    response = reviewer_client.post(
        reverse("console:request-approve", args=[request.pk]), {"note": "identity checked"}, follow=True
    )
    assert Request.objects.get(pk=request.pk).status == "processing"
    entry = _audit(request)
    assert (entry.action, entry.actor, entry.note, entry.to_status) == (
        "approved",
        "staff:rita",
        "identity checked",
        "processing",
    )
    assert any(m.startswith("Approved") for m in _messages(response))
    assert ConnectorTask.objects.filter(request=request).exists()
    assert b"Approve request" not in response.content


def test_deny_needs_a_reason(reviewer_client):
    request = _pending()
    url = reverse("console:request-deny", args=[request.pk])
    blank = reviewer_client.post(url, {"reason": "   "})
    assert blank.status_code == 200 and b"Enter a reason." in blank.content
    assert b'aria-invalid="true"' in blank.content
    assert Request.objects.get(pk=request.pk).status == "pending_review"
    assert reviewer_client.post(url, {"reason": "We could not match the account."}).status_code == 302
    assert Request.objects.get(pk=request.pk).status == "denied"
    entry = _audit(request)
    assert (entry.action, entry.actor, entry.note) == ("denied", "staff:rita", "We could not match the account.")


def test_extend_shows_the_legal_limit_and_refuses_to_pass_it(reviewer_client):
    request = _pending()
    page = reviewer_client.get(reverse("console:request", args=[request.pk]))
    form = page.context["actions"]["extend"]
    assert f"{form.limit:%-d %b %Y}".encode() in page.content
    url = reverse("console:request-extend", args=[request.pk])
    too_long = reviewer_client.post(url, {"reason": "complex", "days": form.max_days + 1}, follow=True)
    assert any("The law allows extending to" in m for m in _messages(too_long))
    assert Request.objects.get(pk=request.pk).due_at == request.due_at
    assert reviewer_client.post(url, {"reason": "Many systems to search.", "days": 30}).status_code == 302
    assert Request.objects.get(pk=request.pk).due_at == request.due_at + dt.timedelta(days=30)
    entry = _audit(request)
    assert (entry.action, entry.actor, entry.note) == ("extended", "staff:rita", "Many systems to search.")
    again = reviewer_client.get(reverse("console:request", args=[request.pk]))
    assert "extend" not in again.context["actions"]


def test_retry_requeues_the_failed_connectors(reviewer_client):
    request = request_make(status="failed")
    Request.objects.filter(pk=request.pk).update(failure_reason="accounts: PermanentError: the database said no")
    ConnectorTask.objects.create(
        request=request,
        connector="accounts",
        status="failed",
        attempts=3,
        last_error="PermanentError: the database said no\nTraceback line 1\nline 2",
    )
    ConnectorTask.objects.create(request=request, connector="payments", status="succeeded", attempts=1, counts={"payment": 2})
    page = reviewer_client.get(reverse("console:request", args=[request.pk]))
    assert set(page.context["actions"]) == {"retry", "extend"}
    assert b"<pre>PermanentError: the database said no\nTraceback line 1\nline 2</pre>" in page.content
    assert b"Payment" in page.content
    response = reviewer_client.post(reverse("console:request-retry", args=[request.pk]), follow=True)
    assert Request.objects.get(pk=request.pk).status == "processing"
    assert ConnectorTask.objects.get(request=request, connector="accounts").status == "queued"
    assert (_audit(request).action, _audit(request).actor) == ("retried", "staff:rita")
    assert any(m.startswith("Retrying") for m in _messages(response))


def test_actions_the_status_does_not_allow_are_hidden_and_a_forged_post_changes_nothing(reviewer_client):
    request = request_make(status="completed")
    page = reviewer_client.get(reverse("console:request", args=[request.pk]))
    assert page.context["actions"] == {}
    assert b"Approve request" not in page.content and b"Deny request" not in page.content
    before = AuditEntry.objects.filter(request=request).count()
    for action, data in (
        ("approve", {}),
        ("deny", {"reason": "no"}),
        ("deny", {}),
        ("extend", {"reason": "r", "days": 5}),
        ("retry", {}),
        ("release", {}),
    ):
        response = reviewer_client.post(reverse(f"console:request-{action}", args=[request.pk]), data, follow=True)
        assert response.status_code == 200, action
        assert _messages(response), action
    assert Request.objects.get(pk=request.pk).status == "completed"
    assert AuditEntry.objects.filter(request=request).count() == before
    assert (
        reviewer_client.post(reverse("console:request-approve", args=["00000000-0000-0000-0000-000000000000"])).status_code == 404
    )


def test_a_completed_access_request_shows_its_export_summary_and_can_be_released(reviewer_client, settings):
    settings.DSAR_REVIEW_BEFORE_RELEASE = True
    request = request_make(status="completed")
    now = timezone.now()
    Request.objects.filter(pk=request.pk).update(
        result={"categories": {"name_contact": 3, "searches_commands": 2}, "bytes": 20480}, completed_at=now
    )
    Export.objects.create(
        request=request, path="exports/x.zip", bytes=20480, sha256="0" * 64, created_at=now, expires_at=now + dt.timedelta(days=7)
    )
    page = reviewer_client.get(reverse("console:request", args=[request.pk]))
    content = page.content.decode()
    assert "Export summary" in content and "Name and contact details" in content and "20.0\xa0KB" in content
    assert set(page.context["actions"]) == {"release"}
    response = reviewer_client.post(reverse("console:request-release", args=[request.pk]), {"note": "looked fine"}, follow=True)
    assert any(m.startswith("Released") for m in _messages(response))
    assert Export.objects.get(request=request).released_at is not None
    assert (_audit(request).action, _audit(request).actor) == ("released", "staff:rita")
    assert "release" not in response.context["actions"]

    settings.DSAR_REVIEW_BEFORE_RELEASE = False
    other = request_make(status="completed")
    Export.objects.create(
        request=other, path="exports/y.zip", bytes=1, sha256="0" * 64, created_at=now, expires_at=now + dt.timedelta(days=7)
    )
    assert "release" not in reviewer_client.get(reverse("console:request", args=[other.pk])).context["actions"]


def test_the_request_page_shows_identity_details_and_timeline(reviewer_client):
    request = request_make(status="referred", email="carol@school.example.org")
    Request.objects.filter(pk=request.pk).update(referred_to="Leeds School")
    content = reviewer_client.get(reverse("console:request", args=[request.pk])).content.decode()
    assert "carol@school.example.org" in content and "Leeds School" in content
    assert 'scope="col">Actor<' in content and ">filed<" in content and "subject" in content
    status = reviewer_client.get(reverse("console:request-status", args=[request.pk])).json()
    assert status == {"status": "referred", "label": "Referred"}


# --- Dashboard ---------------------------------------------------------------------------------------


def test_the_dashboard_counts_a_known_dataset(reviewer_client):
    now = timezone.now()

    def make(status: str, *, due_in: float, created_ago: float = 0, completed_ago: float | None = None) -> Request:
        request = request_make(status=status)
        Request.objects.filter(pk=request.pk).update(
            due_at=now + dt.timedelta(days=due_in),
            created_at=now - dt.timedelta(days=created_ago),
            completed_at=None if completed_ago is None else now - dt.timedelta(days=completed_ago),
        )
        return request

    make("pending_review", due_in=-2)  # overdue
    make("pending_review", due_in=20)
    make("processing", due_in=3)  # due this week
    make("unverified", due_in=6.5)  # due this week, but waiting for the person's code: not staff's open work
    make("awaiting_subject", due_in=15)  # open: staff wait for the person's answer
    make("completed", due_in=-5, created_ago=10, completed_ago=10 - 2 / 24)  # took 2 hours
    make("completed", due_in=-5, created_ago=5, completed_ago=5 - 4 / 24)  # took 4 hours
    make("expired", due_in=-5, created_ago=4, completed_ago=4 - 9 / 24)  # took 9 hours; its export since expired
    make("completed", due_in=-50, created_ago=50, completed_ago=40)  # outside the 30 days
    failed = make("failed", due_in=10)
    old = make("failed", due_in=10)
    for connector in ("accounts", "payments"):
        ConnectorTask.objects.create(request=failed, connector=connector, status="failed", finished_at=now - dt.timedelta(days=1))
    ConnectorTask.objects.create(request=old, connector="accounts", status="failed", finished_at=now - dt.timedelta(days=1))
    ConnectorTask.objects.create(request=old, connector="content", status="failed", finished_at=now - dt.timedelta(days=45))
    ConnectorTask.objects.create(request=old, connector="support", status="succeeded", finished_at=now)

    figures = selectors.dashboard_get(now=now)
    assert figures.open_by_status == {"pending_review": 2, "processing": 1, "failed": 2, "awaiting_subject": 1}
    assert (figures.overdue, figures.due_this_week, figures.completed_recently) == (1, 1, 3)
    assert abs(figures.median_completion - dt.timedelta(hours=4)) < dt.timedelta(seconds=1)
    assert figures.failures_by_connector == [("accounts", 2), ("payments", 1)]

    content = reviewer_client.get(reverse("console:dashboard")).content.decode()
    assert "4 hours" in content and "median time to complete" in content
    assert re.search(r">accounts</th><td class=\"num\">2<", content)


# --- Admins: staff and settings -----------------------------------------------------------------------


def test_an_admin_adds_a_staff_member_changes_their_role_and_deactivates_them(admin_client):
    page = admin_client.get(reverse("console:staff"))
    assert page.status_code == 200
    assert [(m.user.username, m.role, m.totp) for m in page.context["members"]] == [("ada", ROLE_ADMIN, True)]
    weak = admin_client.post(
        reverse("console:staff"), {"username": "rob", "email": "rob@example.com", "role": ROLE_REVIEWER, "password": "short"}
    )
    assert weak.status_code == 200 and b"too short" in weak.content
    added = admin_client.post(
        reverse("console:staff"), {"username": "rob", "email": "rob@example.com", "role": ROLE_REVIEWER, "password": PASSWORD}
    )
    assert added.status_code == 302
    rob = get_user_model().objects.get(username="rob")
    assert (
        rob.email == "rob@example.com"
        and rob.is_staff
        and staff_has_role(rob, ROLE_REVIEWER)
        and not staff_has_role(rob, ROLE_ADMIN)
    )
    assert _sign_in(Client(), "rob").status_code == 302
    duplicate = admin_client.post(reverse("console:staff"), {"username": "ROB", "role": ROLE_REVIEWER, "password": PASSWORD})
    assert b"already exists" in duplicate.content

    admin_client.post(reverse("console:staff-role", args=[rob.pk]), {"role": ROLE_ADMIN})
    assert staff_has_role(get_user_model().objects.get(pk=rob.pk), ROLE_ADMIN)
    admin_client.post(reverse("console:staff-active", args=[rob.pk]), {"active": "0"})
    assert not get_user_model().objects.get(pk=rob.pk).is_active
    assert _sign_in(Client(), "rob").status_code == 200

    ada = get_user_model().objects.get(username="ada")
    refused = admin_client.post(reverse("console:staff-active", args=[ada.pk]), {"active": "0"}, follow=True)
    assert any("your own" in m for m in _messages(refused))
    assert get_user_model().objects.get(pk=ada.pk).is_active


def test_a_new_members_password_made_of_the_products_names_is_refused_with_the_reason_shown(admin_client):
    refused = admin_client.post(
        reverse("console:staff"), {"username": "rob", "email": "rob@example.com", "role": ROLE_REVIEWER, "password": "privacy-console-2026"}
    )
    assert refused.status_code == 200
    assert refused.context["form"].errors["password"] == [
        "This password contains “privacy”, “console”: the names of this product and organisation are the first words anyone "
        "guessing a password here tries."]
    assert "This password contains “privacy”, “console”" in refused.content.decode()
    assert not get_user_model().objects.filter(username="rob").exists()
    accepted = admin_client.post(
        reverse("console:staff"), {"username": "rob", "email": "rob@example.com", "role": ROLE_REVIEWER, "password": "harbour-lantern-tundra-41"}
    )
    assert accepted.status_code == 302
    assert get_user_model().objects.get(username="rob").check_password("harbour-lantern-tundra-41")


def test_deactivating_a_member_ends_their_sessions_and_reactivating_does_not_bring_them_back(admin_client):
    rob_client = _signed_in("rob", ROLE_REVIEWER, "/console/")
    rob = get_user_model().objects.get(username="rob")
    # A second browser of theirs, signed in with a second authenticator (a code is taken once): both end.
    tablet = TOTPDevice.objects.create(user=rob, name="tablet", confirmed=True)
    rob_elsewhere = Client()
    assert _sign_in(rob_elsewhere, "rob").status_code == 302
    assert rob_elsewhere.post(reverse("console:otp-verify"), {"code": _code(tablet), "next": "/console/"}).status_code == 302
    rita_client = _signed_in("rita", ROLE_REVIEWER, "/console/")
    assert rob_client.get(reverse("console:queue")).status_code == rob_elsewhere.get(reverse("console:queue")).status_code == 200

    admin_client.post(reverse("console:staff-active", args=[rob.pk]), {"active": "0"})
    admin_client.post(reverse("console:staff-active", args=[rob.pk]), {"active": "1"})
    assert get_user_model().objects.get(pk=rob.pk).is_active

    for client in (rob_client, rob_elsewhere):
        sent = client.get(reverse("console:queue"))
        assert (sent.status_code, sent.get("Location")) == (302, "/console/login/?next=/console/")
    # Nobody else is signed out, the admin acting included.
    assert rita_client.get(reverse("console:queue")).status_code == 200
    assert admin_client.get(reverse("console:staff")).status_code == 200


SETUP_CODE = re.compile(r"setup code for their authenticator, apart from their password: ([A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}) "
                        r"\(valid for 24 hours\)\.$")


def test_an_admin_resets_a_lost_second_factor_and_gets_the_one_time_code_to_set_up_a_new_one(admin_client):
    rita = _staff("rita", ROLE_REVIEWER)
    TOTPDevice.objects.create(user=rita, name="phone", confirmed=True)
    done = admin_client.post(reverse("console:staff-otp-reset", args=[rita.pk]), follow=True)
    assert not TOTPDevice.objects.filter(user=rita).exists()
    (message,) = _messages(done)
    assert message.startswith("rita's two-factor sign-in is reset. Give rita this one-time setup code")
    assert staff_setup_code_valid(user=rita, code=SETUP_CODE.search(message).group(1))
    assert _staff_audit()[-2:] == [("staff:ada", "staff_second_factor_reset", {"staff": "rita"}),
                                   ("staff:ada", "staff_setup_code_issued", {"staff": "rita"})]


def test_a_new_setup_code_replaces_the_last_and_a_new_member_gets_one(admin_client):
    rita = _staff("rita", ROLE_REVIEWER)
    first = SETUP_CODE.search(_messages(admin_client.post(reverse("console:staff-setup-code", args=[rita.pk]), follow=True))[0]).group(1)
    second = SETUP_CODE.search(_messages(admin_client.post(reverse("console:staff-setup-code", args=[rita.pk]), follow=True))[0]).group(1)
    assert not staff_setup_code_valid(user=rita, code=first) and staff_setup_code_valid(user=rita, code=second)
    page = admin_client.get(reverse("console:staff")).content.decode()
    assert f'action="{reverse("console:staff-setup-code", args=[rita.pk])}"' in page

    added = admin_client.post(reverse("console:staff"), {"username": "zoe", "role": ROLE_ADMIN, "password": PASSWORD}, follow=True)
    (message,) = _messages(added)
    assert message.startswith("zoe can now sign in as admin. Give them their password safely. Give zoe this one-time setup code")
    assert staff_setup_code_valid(user=get_user_model().objects.get(username="zoe"), code=SETUP_CODE.search(message).group(1))


def test_a_setup_code_is_shown_once_and_never_travels_in_a_cookie(admin_client):
    rita = _staff("rita", ROLE_REVIEWER)
    posted = admin_client.post(reverse("console:staff-setup-code", args=[rita.pk]))
    assert posted.status_code == 302
    assert all(morsel.key in ("sessionid", "csrftoken") for morsel in posted.cookies.values())
    shown = admin_client.get(posted["Location"])
    code = re.search(r"apart from their password: ([A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}) ", shown.content.decode()).group(1)
    assert all(code not in morsel.value for morsel in shown.cookies.values())
    assert code not in admin_client.get(posted["Location"]).content.decode()


def test_a_setup_code_expires_after_a_day(admin_client):
    rita = _staff("rita", ROLE_REVIEWER)
    code = staff_setup_code_issue(user_id=rita.pk)
    with time_machine.travel(timezone.now() + dt.timedelta(hours=23, minutes=59)):
        assert staff_setup_code_valid(user=rita, code=code)
    with time_machine.travel(timezone.now() + dt.timedelta(hours=24, seconds=1)):
        assert not staff_setup_code_valid(user=rita, code=code)


def test_the_operator_prints_a_setup_code_for_the_first_admin():
    from django.core.management import CommandError, call_command

    ada = _staff("ada2", ROLE_ADMIN)
    out = io.StringIO()
    call_command("staff_setup_code", "ada2", stdout=out, stderr=io.StringIO())
    assert staff_setup_code_valid(user=ada, code=out.getvalue().strip())
    with pytest.raises(CommandError, match="No staff member is named 'nobody'."):
        call_command("staff_setup_code", "nobody")


def _staff_audit() -> list[tuple[str, str, dict]]:
    return list(AuditEntry.objects.filter(request__isnull=True).order_by("id").values_list("actor", "action", "data"))


def test_every_staff_change_made_in_the_console_is_in_the_audit_trail(admin_client):
    before = len(_staff_audit())
    admin_client.post(reverse("console:staff"), {"username": "rob", "email": "", "role": ROLE_REVIEWER, "password": PASSWORD})
    rob = get_user_model().objects.get(username="rob")
    admin_client.post(reverse("console:staff-role", args=[rob.pk]), {"role": ROLE_ADMIN})
    admin_client.post(reverse("console:staff-active", args=[rob.pk]), {"active": "0"})
    admin_client.post(reverse("console:staff-active", args=[rob.pk]), {"active": "1"})
    assert _staff_audit()[before:] == [
        ("staff:ada", "staff_created", {"staff": "rob", "role": "reviewer"}),
        ("staff:ada", "staff_setup_code_issued", {"staff": "rob"}),
        ("staff:ada", "staff_role_changed", {"staff": "rob", "role": "admin"}),
        ("staff:ada", "staff_deactivated", {"staff": "rob"}),
        ("staff:ada", "staff_reactivated", {"staff": "rob"}),
    ]


def test_the_settings_page_names_connectors_but_never_their_options(admin_client, settings):
    settings.DSAR_SYSTEMS = {**settings.DSAR_SYSTEMS, "vault": System("vault", "example.Vault", {"token": "s3cr3t-token"})}
    content = admin_client.get(reverse("console:settings")).content.decode()
    assert "GDPR" in content and "1 month" in content and "2 months" in content
    assert "vault" in content and "example.Vault" in content and "connectors.sql.SqlConnector" in content
    assert "s3cr3t-token" not in content and "accounts.yaml" not in content


# --- Queries: a page costs the same whatever it lists ------------------------------------------------------


def test_the_queue_page_takes_a_fixed_number_of_queries_for_fifty_rows(reviewer_client, django_assert_num_queries):
    for number in range(50):
        request_make(status="pending_review", email=f"q{number}@example.com")
    with django_assert_num_queries(QUEUE_QUERIES):
        response = reviewer_client.get(reverse("console:queue"))
    assert len(response.context["page"]) == 50


def test_the_request_page_takes_a_fixed_number_of_queries_for_many_tasks_and_entries(reviewer_client, django_assert_num_queries):
    request = request_make(status="failed")
    for connector in ("accounts", "payments", "content", "support", "third_party", "probe"):
        ConnectorTask.objects.create(request=request, connector=connector, status="succeeded", counts={"name_contact": 1})
    from django.db import transaction

    from dsar.lifecycle import audit_record

    with transaction.atomic():
        for number in range(20):
            audit_record(request, actor="system", action="noted", note=str(number))
    with django_assert_num_queries(REQUEST_PAGE_QUERIES):
        response = reviewer_client.get(reverse("console:request", args=[request.pk]))
    assert len(response.context["tasks"]) == 6 and response.content.count(b">noted<") == 20


# --- What a deletion would do ---------------------------------------------------------------------------


def test_a_pending_deletion_links_to_a_preview_of_each_system_that_changes_nothing(reviewer_client, estate, unique_email):
    from connectors.base import Identity
    from connectors.registry import connector_get
    from estate.loader import estate_load, estate_parse

    email = unique_email("preview")
    estate_load(estate_parse({"subjects": [{"email": email, "accounts": {"name": "Pre View"},
                                            "payments": {"transactions": [{"amount": 9, "currency": "EUR", "at": "2025-05-05T10:00:00Z",
                                                                           "item": "tea"}]}}]}))
    request = _pending(type="deletion", email=email)
    page = reviewer_client.get(reverse("console:request", args=[request.pk])).content.decode()
    assert f'href="/console/requests/{request.pk}/preview"' in page
    preview = reviewer_client.get(reverse("console:request-preview", args=[request.pk])).content.decode()
    rows = [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in re.findall(r"<tr><td><code>.*?</tr>", preview, re.S)]
    assert "payments.transactions Purchases and account activity kept 1 Invoices are kept for 10 years because tax law requires it "\
           "(legal_obligation) 5 May 2035" in rows
    assert "accounts.users Name and contact details deleted 1" in rows
    assert [r.category for r in connector_get("payments").gather(Identity(email=email)) if r.system == "payments.transactions"] == [
        "interactions.account_history"]
    assert [r.fields["name"] for r in connector_get("accounts").gather(Identity(email=email)) if r.system == "accounts.users"] == ["Pre View"]
    access = _pending(type="access", email=email)
    assert reviewer_client.get(reverse("console:request-preview", args=[access.pk])).status_code == 404


# --- Systems --------------------------------------------------------------------------------------------

# The session, the user, their roles, their second factor; then the systems' last checks, their latest
# tasks and their recent failures.
SYSTEMS_PAGE_QUERIES = 7


def _system_rows(response) -> dict[str, dict]:
    return {row["status"].name: row for row in response.context["systems"]}


def _section(content: str, name: str) -> str:
    """The text of one system's section of the page, tags removed."""
    html = re.search(rf'<section aria-labelledby="system-{name}".*?</section>', content, re.S)[0]
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_systems_page_lists_the_configured_systems_with_what_their_files_declare(reviewer_client):
    response = reviewer_client.get(reverse("console:systems"))
    assert response.status_code == 200
    rows = _system_rows(response)
    assert [(name, row["status"].system.kind, row["file"]) for name, row in rows.items()] == [
        ("accounts", "sql", "estate/systems/accounts.yaml"),
        ("content", "object_store", "estate/systems/content.yaml"),
        ("payments", "sql", "estate/systems/payments.yaml"),
        ("support", "http", "estate/systems/support.yaml"),
        ("third_party", "sql", "estate/systems/third_party.yaml"),
        ("probe", "python", "tests/systems/probe.yaml"),
    ]
    content = response.content.decode()
    assert _section(content, "payments").startswith(
        "payments Kind sql Connector connectors.sql.SqlConnector File estate/systems/payments.yaml Needs Only what the request gives "
        "Provides Nothing for other systems Categories Payment details payment Subscriptions and licences subscription "
        "Purchases and account activity interactions.account_history Last check Never checked Workers Run it "
        "Failures None in the last 7 days No request has reached it yet.")
    assert _section(content, "support").startswith(
        "support Kind http Connector connectors.http.HttpConnector File estate/systems/support.yaml Needs Only what the "
        "request gives Provides Nothing for other systems Categories Help and support requests interactions.support Use of bots and add-ons "
        "interactions.bot_usage Feedback, surveys and reviews feedback_ratings Last check Never checked")
    assert "Time limit 5 seconds an attempt" in _section(content, "probe")
    assert f'href="{reverse("console:systems")}" aria-current="page">Systems<' in content
    assert "Run check" not in content
    assert reverse("console:systems") in reviewer_client.get(reverse("console:queue")).content.decode()
    signed_out = Client().get(reverse("console:systems"))
    assert signed_out.status_code == 302 and signed_out["Location"].startswith("/console/login/?next=")


def test_a_failing_last_check_shows_its_problems_and_that_workers_refuse_the_system(reviewer_client):
    from connectors.base import Finding
    from dsar.system_checks import system_check_record

    system_check_record("payments", [Finding("tables[1].columns.exp", "cards has no column exp"),
                                     Finding("tables[3].identity", "no index serves the lookup", problem=False)])
    system_check_record("support", [])
    response = reviewer_client.get(reverse("console:systems"))
    refused = {name: row["status"].refused for name, row in _system_rows(response).items()}
    assert refused == {"accounts": False, "content": False, "payments": True, "support": False, "third_party": False, "probe": False}
    content = response.content.decode()
    payments = _section(content, "payments")
    assert ": 1 problem, with advice Workers Refused until a check finds no problem" in payments
    assert "Problems the last check found tables[1].columns.exp: cards has no column exp" in payments
    assert "Advice from the last check tables[3].identity: no index serves the lookup" in payments
    assert ": fits its file Workers Run it" in _section(content, "support")
    assert "Last check Never checked Workers Run it" in _section(content, "accounts")
    overview = re.search(r"<tbody>.*?</tbody>", content, re.S)[0]
    assert overview.count("Refused") == 1 and overview.count("Never checked") == 4


def test_the_page_shows_each_systems_latest_tasks_and_failures_of_the_last_seven_days(reviewer_client):
    now = timezone.now()
    requests = [_pending(email=f"runs{number}@example.com") for number in range(8)]

    def task(request: Request, status: str, *, active_ago: float, error: str = "") -> ConnectorTask:
        made = ConnectorTask.objects.create(request=request, connector="support", status=status, last_error=error)
        at = now - dt.timedelta(days=active_ago)
        ConnectorTask.objects.filter(pk=made.pk).update(updated_at=at, finished_at=None if status == "running" else at)
        return made

    oldest = task(requests[0], "failed", active_ago=10, error="PermanentError: too old to count")
    failed = task(requests[1], "failed", active_ago=2, error="TransientError: helpdesk timed out\nTraceback line")
    last_failed = task(requests[2], "failed", active_ago=1, error="PermanentError: the helpdesk refused the key\nsecond line")
    done = [task(requests[3 + n], "succeeded", active_ago=3 + n) for n in range(4)]
    running = task(requests[7], "running", active_ago=0)

    support = _system_rows(reviewer_client.get(reverse("console:systems")))["support"]
    assert [t.pk for t in support["status"].runs] == [running.pk, last_failed.pk, failed.pk, done[0].pk, done[1].pk]
    assert support["status"].failures == 2 and support["status"].last_failure.pk == last_failed.pk
    assert support["last_error"] == "PermanentError: the helpdesk refused the key"
    assert oldest.pk not in [t.pk for t in support["status"].runs]

    content = reviewer_client.get(reverse("console:systems")).content.decode()
    section = _section(content, "support")
    failed_at = timezone.localtime(now - dt.timedelta(days=1))
    assert f"Failures 2 failed tasks in the last 7 days; the last, {failed_at:%-d %b %Y, %H:%M} ( request {str(requests[2].pk)[:8]} ): " \
           "PermanentError: the helpdesk refused the key Its last 5 tasks" in section
    assert "second line" not in section and "too old to count" not in section
    assert f'href="/console/requests/{requests[7].pk}"' in content and f'href="/console/requests/{requests[0].pk}"' not in content
    assert section.count("Succeeded") == 2 and section.count("Failed") == 2 and section.count("Not yet") == 1
    assert re.search(r'<a href="#system-support">support</a></th>.*?<td class="num">2</td>', content, re.S)


def test_a_reviewer_has_no_run_check_button_and_a_forged_post_is_refused(reviewer_client):
    url = reverse("console:system-check", args=["probe"])
    assert reviewer_client.post(url).status_code == 403
    assert reviewer_client.get(url).status_code == 403
    from dsar.models import SystemCheck

    assert not SystemCheck.objects.exists()
    assert not AuditEntry.objects.filter(action="system_checked").exists()


@pytest.fixture
def sqlite_systems(settings, tmp_path):
    """`configure(name=tables, ...)` makes those systems the deployment's only ones, each a file in
    tmp_path whose `tables:` are `tables` (YAML), on one SQLite database with a table
    `customer (id, email, name)`."""
    import sqlalchemy as sa

    from connectors.registry import connectors_reset
    from connectors.systems import system_load

    database = tmp_path / "shop.sqlite3"
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customer (id integer PRIMARY KEY, email text NOT NULL, name text)"))
    engine.dispose()

    def configure(**systems: str) -> None:
        for name, tables in systems.items():
            (tmp_path / f"{name}.yaml").write_text(f"name: {name}\nkind: sql\nconnection: {{url: 'sqlite:///{database}'}}\ntables:\n{tables}")
        settings.DSAR_SYSTEMS = {name: system_load(tmp_path / f"{name}.yaml", environ={}) for name in systems}
        connectors_reset()

    yield configure
    connectors_reset()


def _customer(columns: str) -> str:
    return f"  - name: customer\n    identity: {{email: email}}\n    columns: {{{columns}}}\n"


def test_an_admin_runs_a_check_which_is_recorded_audited_and_obeyed_by_the_page(admin_client, sqlite_systems, tmp_path):
    from dsar.models import SystemCheck

    sqlite_systems(shop=_customer("email: name_contact, name: name_contact, phone: name_contact"))
    page = admin_client.get(reverse("console:systems")).content.decode()
    assert f"File {tmp_path / 'shop.yaml'} " in _section(page, "shop")
    assert f'<form method="post" action="{reverse("console:system-check", args=["shop"])}"' in page
    assert page.count("Run check") == 1

    checked = admin_client.post(reverse("console:system-check", args=["shop"]), follow=True)
    assert checked.redirect_chain == [(reverse("console:systems"), 302)]
    assert _messages(checked) == ["shop: 1 problem. Workers refuse it until a check finds none."]
    assert SystemCheck.objects.values_list("problems", "advice").get(system="shop") == (
        ["tables[0].columns.phone: customer has no column phone"], [])
    assert "Workers Refused until a check finds no problem" in _section(checked.content.decode(), "shop")

    sqlite_systems(shop=_customer("email: name_contact, name: name_contact"))
    fixed = admin_client.post(reverse("console:system-check", args=["shop"]), follow=True)
    assert _messages(fixed) == ["shop fits its file."]
    assert SystemCheck.objects.values_list("problems", "advice").get(system="shop") == ([], [
        "tables[0].identity: no index serves the lookup, so each request reads the whole table: "
        "CREATE INDEX customer_email_dsar ON customer (lower(trim(email)));"])
    assert "Workers Run it" in _section(fixed.content.decode(), "shop")
    assert list(AuditEntry.objects.filter(action="system_checked").order_by("id").values_list("actor", "request", "data")) == [
        ("staff:ada", None, {"system": "shop", "problems": 1, "advice": 0}),
        ("staff:ada", None, {"system": "shop", "problems": 0, "advice": 1}),
    ]


def test_a_system_shows_the_identities_it_needs_from_the_systems_that_find_them_first(reviewer_client, sqlite_systems):
    sqlite_systems(
        crm="  - name: customer\n    identity: {email: email}\n    provides: {customer_number: id}\n    columns: {name: name_contact}\n",
        loyalty="  - name: customer\n    identity: {customer_number: id, match: exact}\n    columns: {name: interests}\n",
        shop=_customer("name: name_contact"),
    )
    content = reviewer_client.get(reverse("console:systems")).content.decode()
    assert "Needs Only what the request gives Provides customer_number, for other systems Categories Name and contact details" \
           in _section(content, "crm")
    assert "Needs customer_number, found first by crm Provides Nothing for other systems Categories Interests and favourites" \
           in _section(content, "loyalty")
    assert "Needs Only what the request gives Provides Nothing for other systems" in _section(content, "shop")


def test_a_check_needs_a_post_with_the_pages_csrf_token_and_a_configured_system(admin_client, sqlite_systems):
    from dsar.models import SystemCheck

    sqlite_systems(shop=_customer("email: name_contact"))
    assert admin_client.get(reverse("console:system-check", args=["shop"])).status_code == 405
    assert admin_client.post(reverse("console:system-check", args=["crm"])).status_code == 404
    admin_client.handler.enforce_csrf_checks = True
    assert admin_client.post(reverse("console:system-check", args=["shop"])).status_code == 403
    assert not SystemCheck.objects.exists() and not AuditEntry.objects.filter(action="system_checked").exists()
    page = admin_client.get(reverse("console:systems")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    assert admin_client.post(reverse("console:system-check", args=["shop"]), {"csrfmiddlewaretoken": token}).status_code == 302
    assert SystemCheck.objects.filter(system="shop").exists()


def test_the_systems_page_takes_a_fixed_number_of_queries_for_many_tasks(reviewer_client, django_assert_num_queries):
    from connectors.base import Finding
    from dsar.system_checks import system_check_record

    now = timezone.now()
    connectors = ("accounts", "payments", "content", "support", "third_party", "probe")
    for number in range(12):
        request = request_make(status="failed", email=f"s{number}@example.com")
        for connector in connectors:
            ConnectorTask.objects.create(request=request, connector=connector, status="failed" if number % 3 else "succeeded",
                                         finished_at=now, last_error="PermanentError: planned" if number % 3 else "")
    system_check_record("accounts", [Finding("tables[0]", "a problem")])
    system_check_record("probe", [])
    with django_assert_num_queries(SYSTEMS_PAGE_QUERIES):
        response = reviewer_client.get(reverse("console:systems"))
    rows = _system_rows(response).values()
    assert [(len(row["status"].runs), row["status"].failures, row["last_error"]) for row in rows] == [(5, 8, "PermanentError: planned")] * 6
    assert [row["status"].refused for row in rows] == [True, False, False, False, False, False]


# --- Manual tasks (systems with no API) -------------------------------------------------------------------


@pytest.fixture
def archive_system(settings, tmp_path):
    """The deployment's systems: the probe, and `archive`, a system with no API staff work by hand."""
    from connectors.registry import connectors_reset
    from connectors.systems import system_load

    (tmp_path / "archive.yaml").write_text(
        "name: archive\nkind: manual\ninstructions: Search the paper archive in room 4.\ncategories: [name_contact, payment]\n")
    settings.DSAR_SYSTEMS = {"probe": settings.DSAR_SYSTEMS["probe"], "archive": system_load(tmp_path / "archive.yaml", environ={})}
    connectors_reset()
    yield
    connectors_reset()


def _manual_task(type: str = "access", email: str = "paper@example.com") -> ConnectorTask:
    from dsar import services

    request = _pending(type=type, email=email)
    services.request_approve(request_id=request.pk, actor="staff:someone")
    return ConnectorTask.objects.get(request=request, connector="archive")


def test_the_manual_tasks_page_lists_what_waits_for_staff_and_a_task_says_what_to_do(reviewer_client, archive_system):
    from django.core.files.uploadedfile import SimpleUploadedFile

    task = _manual_task()
    listing = reviewer_client.get(reverse("console:manual-tasks")).content.decode()
    assert "1 task waiting for staff" in listing
    assert f'<a href="{reverse("console:manual-task", args=[task.pk])}">archive' in listing
    assert "Any reviewer" in listing
    page = reviewer_client.get(reverse("console:manual-task", args=[task.pk])).content.decode()
    assert "<dt>Email</dt><dd>paper@example.com</dd>" in page
    assert "Search the paper archive in room 4." in page
    assert "The system holds: Name and contact details, Payment details." in page
    assert 'enctype="multipart/form-data"' in page

    upload = SimpleUploadedFile("found.csv", b"category,name\nname_contact,Ada Lovelace\n", content_type="text/csv")
    done = reviewer_client.post(reverse("console:manual-task", args=[task.pk]), {"file": upload}, follow=True)
    assert done.redirect_chain == [(reverse("console:request", args=[task.request_id]), 302)]
    assert _messages(done) == ["archive: done. The request goes on once every system has finished."]
    stored = ConnectorTask.objects.get(pk=task.pk)
    assert (stored.status, stored.counts) == ("succeeded", {"name_contact": 1})
    assert AuditEntry.objects.get(action="manual_task_completed").actor == "staff:rita"
    assert "No manual task is waiting." in reviewer_client.get(reverse("console:manual-tasks")).content.decode()
    assert _section(reviewer_client.get(reverse("console:systems")).content.decode(), "archive").startswith(
        "archive Kind manual Connector connectors.manual.ManualConnector")


def test_a_bad_upload_in_the_console_shows_its_message_and_changes_nothing(reviewer_client, archive_system):
    from django.core.files.uploadedfile import SimpleUploadedFile

    task = _manual_task()
    upload = SimpleUploadedFile("found.csv", b"category,name\ninterests,Ada\n", content_type="text/csv")
    response = reviewer_client.post(reverse("console:manual-task", args=[task.pk]), {"file": upload})
    assert response.status_code == 200
    assert _messages(response) == ["Line 2: archive does not hold 'interests'; its categories are name_contact, payment."]
    assert ConnectorTask.objects.get(pk=task.pk).status == "with_staff"
    assert not AuditEntry.objects.filter(action="manual_task_completed").exists()


def test_files_found_are_uploaded_in_the_console_with_their_category(reviewer_client, archive_system):
    from django.core.files.uploadedfile import SimpleUploadedFile

    task = _manual_task()
    page = reviewer_client.get(reverse("console:manual-task", args=[task.pk])).content.decode()
    assert '<input type="file" name="files" multiple' in page
    assert '<option value="payment">Payment details</option>' in page
    scans = [SimpleUploadedFile("scan-1.pdf", b"%PDF one"), SimpleUploadedFile("scan-2.pdf", b"%PDF two")]
    done = reviewer_client.post(reverse("console:manual-task", args=[task.pk]), {"files": scans, "files_category": "payment"}, follow=True)
    assert done.redirect_chain == [(reverse("console:request", args=[task.request_id]), 302)]
    stored = ConnectorTask.objects.get(pk=task.pk)
    assert (stored.status, stored.counts) == ("succeeded", {"payment": 2})

    nothing = _manual_task(email="nothing@example.com")
    response = reviewer_client.post(reverse("console:manual-task", args=[nothing.pk]), {})
    assert _messages(response) == ["Upload the records found, or the files found, or both."]
    assert ConnectorTask.objects.get(pk=nothing.pk).status == "with_staff"


def test_scans_larger_than_an_api_body_are_uploaded_and_an_upload_over_its_own_limit_is_refused(reviewer_client, archive_system):
    from django.core.files.uploadedfile import SimpleUploadedFile

    task = _manual_task()
    url = reverse("console:manual-task", args=[task.pk])
    scan = SimpleUploadedFile("scan.pdf", b"%PDF" + b"x" * 300_000)  # over the API's 64 KiB, under a file's 5 MB
    done = reviewer_client.post(url, {"files": [scan], "files_category": "payment"})
    assert done.status_code == 302
    assert ConnectorTask.objects.get(pk=task.pk).counts == {"payment": 1}

    other = _manual_task(email="other@example.com")
    scans = [SimpleUploadedFile(f"scan-{n}.pdf", b"x" * (4 * 1024 * 1024)) for n in range(7)]  # 28 MiB in all
    refused = reviewer_client.post(reverse("console:manual-task", args=[other.pk]), {"files": scans, "files_category": "payment"})
    assert refused.status_code == 413
    assert ConnectorTask.objects.get(pk=other.pk).status == "with_staff"


def test_an_admin_confirms_a_manual_erasure_with_counts_and_a_note(admin_client, archive_system):
    task = _manual_task(type="deletion")
    page = admin_client.get(reverse("console:manual-task", args=[task.pk])).content.decode()
    assert 'name="count_name_contact"' in page and 'name="count_payment"' in page and "multipart" not in page
    url = reverse("console:manual-task", args=[task.pk])
    missing = admin_client.post(url, {"count_name_contact": "2", "count_payment": "0", "note": ""})
    assert "Enter a note." in missing.content.decode() and ConnectorTask.objects.get(pk=task.pk).status == "with_staff"
    done = admin_client.post(url, {"count_name_contact": "2", "count_payment": "0", "note": "Shredded two forms."})
    assert done.status_code == 302
    stored = ConnectorTask.objects.get(pk=task.pk)
    assert (stored.status, stored.receipt["erased"], stored.receipt["note"]) == ("succeeded", {"name_contact": 2}, "Shredded two forms.")
    assert AuditEntry.objects.get(action="manual_task_completed").actor == "staff:ada"


def test_records_kept_by_hand_are_confirmed_in_the_console_with_their_reason(admin_client, archive_system):
    task = _manual_task(type="deletion")
    url = reverse("console:manual-task", args=[task.pk])
    assert 'name="kept_payment"' in admin_client.get(url).content.decode()
    form = {"count_name_contact": "1", "count_payment": "0", "kept_payment": "3", "note": "Shredded one form."}
    unexplained = admin_client.post(url, form)
    assert _messages(unexplained) == ["Say why records were kept: the person's receipt gives the reason."]
    assert ConnectorTask.objects.get(pk=task.pk).status == "with_staff"
    assert admin_client.post(url, {**form, "kept_reason": "Invoices: tax law"}).status_code == 302
    assert ConnectorTask.objects.get(pk=task.pk).receipt["retained"] == [
        {"category": "payment", "count": 3, "reason": "Invoices: tax law", "until": None}]


def test_the_manual_pages_need_a_signed_in_reviewer_and_a_task_of_a_manual_system(reviewer_client, archive_system):
    task = _manual_task()
    probe = ConnectorTask.objects.get(request_id=task.request_id, connector="probe")
    client = Client()
    for url in (reverse("console:manual-tasks"), reverse("console:manual-task", args=[task.pk])):
        assert client.get(url)["Location"].startswith("/console/login/?next=")
    assert reviewer_client.get(reverse("console:manual-task", args=[probe.pk])).status_code == 404
    assert reviewer_client.get(reverse("console:manual-task", args=[999999])).status_code == 404


MANUAL_TASKS_QUERIES = 5


def test_every_console_page_refuses_trace_and_the_read_only_ones_every_method_but_get_and_head(admin_client, archive_system):
    request, deletion, task = _pending(), _pending(type="deletion", email="gone@example.com"), _manual_task()
    read_only = [
        reverse("console:queue"), reverse("console:dashboard"), reverse("console:request", args=[request.pk]),
        reverse("console:request-status", args=[request.pk]), reverse("console:request-preview", args=[deletion.pk]),
        reverse("console:systems"), reverse("console:manual-tasks"), reverse("console:settings"),
    ]
    with_a_form = [reverse("console:staff"), reverse("console:manual-task", args=[task.pk]), reverse("console:otp-setup"),
                   reverse("console:otp-verify")]
    for url in read_only:
        for method in ("trace", "post", "put", "patch", "delete", "options"):
            refused = getattr(admin_client, method)(url)
            assert (refused.status_code, refused.get("Allow")) == (405, "GET, HEAD"), (method, url)
        assert admin_client.head(url).status_code == 200, url
    for url in with_a_form:
        refused = admin_client.trace(url)
        assert (refused.status_code, refused.get("Allow")) == (405, "GET, HEAD, POST"), url
    assert admin_client.trace(reverse("console:login")).status_code == 405  # Django's class-based views already did
    assert Request.objects.get(pk=request.pk).status == Request.objects.get(pk=deletion.pk).status == "pending_review"


def test_the_manual_tasks_page_takes_a_fixed_number_of_queries_for_many_tasks(reviewer_client, archive_system, django_assert_num_queries):
    for number in range(12):
        _manual_task(email=f"paper{number}@example.com")
    with django_assert_num_queries(MANUAL_TASKS_QUERIES):
        response = reviewer_client.get(reverse("console:manual-tasks"))
    assert len(response.context["rows"]) == 12


def test_the_console_is_in_english_whatever_the_staff_members_browser_asks(reviewer_client, client, db):
    """Its words are not translated, so neither are its dates: no German among English words."""
    request_make(status="pending_review", email="sprache@example.com")
    queue = reviewer_client.get(reverse("console:queue"), HTTP_ACCEPT_LANGUAGE="de")
    assert queue.status_code == 200 and queue["Content-Language"] == "en"
    assert client.get(reverse("portal:start"), HTTP_ACCEPT_LANGUAGE="de")["Content-Language"] == "de"
