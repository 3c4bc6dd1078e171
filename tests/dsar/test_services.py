"""dsar/services.py and dsar/staff.py: each service's rules, its audit entry, and what it refuses.

These run inside one transaction that never commits, so nothing they queue is rung for or sent."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from connectors.base import Connector, Identity, TransientError
from connectors.registry import connectors_reset
from connectors.systems import system_load
from dsar import services, verification
from dsar.errors import Conflict, InvalidInput, Locked, NotFound, TooSoon, Unavailable
from dsar.models import AuditEntry, ConnectorTask, Export, FinalStep, OutgoingEmail, Request, StaffToken, SystemCheck
from dsar.staff import (
    ROLE_ADMIN,
    ROLE_REVIEWER,
    staff_active_set,
    staff_has_role,
    staff_member_create,
    staff_role_change,
    staff_second_factor_reset,
    staff_token_create,
    staff_token_user,
)

from ..factories import request_make
from ..support.flows import wait_until_final
from ..support.waiting import wait_for
from .test_manual_systems import CSV, NOTE, _approved, _task, manual_system  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def _actions(request: Request) -> list[str]:
    return list(AuditEntry.objects.filter(request=request).order_by("id").values_list("action", flat=True))


def _status(request: Request) -> str:
    return Request.objects.get(pk=request.pk).status


# --- Filing ----------------------------------------------------------------------------------------------


def test_filing_stores_the_request_its_entry_and_its_code_email():
    request = services.request_create(type="deletion", email="  Someone@Example.COM ", categories=["searches_commands", "name_contact"])
    stored = Request.objects.get(pk=request.pk)
    assert (stored.type, stored.status, stored.email, stored.jurisdiction) == ("deletion", "unverified", "someone@example.com", "gdpr")
    assert stored.categories == ["name_contact", "searches_commands"]  # in the taxonomy's order
    entry = AuditEntry.objects.get(request=request)
    assert (entry.action, entry.actor, entry.from_status, entry.to_status, entry.note) == (
        "filed", "subject", "unverified", "unverified", "deletion request filed")
    assert list(OutgoingEmail.objects.filter(request=request).values_list("template", flat=True)) == ["code"]


@pytest.mark.parametrize(("fields", "code", "message"), [
    ({"type": "export", "email": "a@example.com"}, "invalid_type", "type must be one of access, deletion."),
    ({"type": "access", "email": "not an address"}, "invalid_email", "Enter a valid email address."),
    ({"type": "access", "email": "a@example.com", "categories": ["name_contact", "zodiac", "dna_sequences"]}, "invalid_category",
     "Unknown categories: dna_sequences, zodiac."),
])
def test_filing_refuses_bad_input_and_stores_nothing(fields, code, message):
    with pytest.raises(InvalidInput) as refused:
        services.request_create(**fields)
    assert (refused.value.code, refused.value.detail) == (code, message)
    assert (Request.objects.count(), AuditEntry.objects.count(), OutgoingEmail.objects.count()) == (0, 0, 0)


@pytest.mark.parametrize("type", ["access", "deletion"])
def test_a_verified_request_for_an_account_an_organisation_manages_is_referred_to_it(estate, organisation_systems_only, settings,
                                                                                    type):
    settings.DSAR_AUTO_APPROVE = False
    request = services.request_create(type=type, email="carol@school.example.org", categories=["name_contact"])
    services.request_verify(request_id=request.pk, code=verification.code_for(request))
    stored = Request.objects.get(pk=request.pk)
    referred = [{"system": "accounts", "categories": ["name_contact"]}]
    assert (stored.status, stored.referred_to, stored.referred_contact, stored.referred_systems) == (
        "referred", "Northside School District", "privacy@northside-schools.example.org", referred)
    assert stored.result == {"referred_to": "Northside School District", "contact": "privacy@northside-schools.example.org",
                             "systems": referred}
    assert (stored.code_hash, stored.verified_at is not None) == ("", True)  # the code is spent
    entry = AuditEntry.objects.filter(request=request).last()
    assert (entry.action, entry.actor, entry.note) == ("referred", "subject", "managed by Northside School District")
    assert _actions(request) == ["filed", "referred"]
    assert not ConnectorTask.objects.filter(request=request).exists()
    assert list(OutgoingEmail.objects.filter(request=request).order_by("id").values_list("template", flat=True)) == ["code", "referred"]


@pytest.mark.parametrize(("auto_approve", "status", "actions", "told"), [(False, "pending_review", ["filed", "verified"], "received"),
                                                                         (True, "processing", ["filed", "auto_approved"], "started")])
def test_a_verified_request_waits_for_review_or_is_approved_by_the_deployment(estate, settings, caplog, auto_approve, status, actions, told):
    settings.DSAR_AUTO_APPROVE = auto_approve
    request = services.request_create(type="access", email="nobody-known@example.com")
    verified, token = services.request_verify(request_id=request.pk, code=verification.code_for(request))
    assert (verified.status, _status(request), _actions(request)) == (status, status, actions)
    stored = Request.objects.get(pk=request.pk)
    assert token and stored.token_hash == verification.token_hash(token)
    assert (stored.code_hash, stored.verified_at is not None) == ("", True)  # the code is spent
    assert ConnectorTask.objects.filter(request=request).exists() is auto_approve
    assert list(OutgoingEmail.objects.filter(request=request).order_by("id").values_list("template", flat=True)) == ["code", told]
    assert f"request {request.pk}: verified, now {status}" in caplog.messages


def test_each_wrong_code_is_counted_and_audited_and_the_last_one_allowed_locks_the_request(settings):
    settings.DSAR_CODE_MAX_ATTEMPTS = 3
    request = request_make(code="12345678")
    with pytest.raises(InvalidInput) as first:
        services.request_verify(request_id=request.pk, code="00000000")
    assert (first.value.code, first.value.detail) == ("invalid_code", "That code is not right. 2 attempts left.")
    with pytest.raises(InvalidInput) as second:
        services.request_verify(request_id=request.pk, code="00000000")
    assert (second.value.code, second.value.detail) == ("invalid_code", "That code is not right. 1 attempt left.")
    for code in ("00000000", "12345678"):  # the third wrong code locks it; then even the right one is refused
        with pytest.raises(Locked) as locked:
            services.request_verify(request_id=request.pk, code=code)
        assert (locked.value.code, locked.value.detail) == ("locked", "Too many wrong codes: this request is locked. File a new request.")
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.code_attempts, stored.token_hash, stored.verified_at) == ("unverified", 3, "", None)
    assert list(AuditEntry.objects.filter(request=request).order_by("id").values_list("action", "actor", "note")) == [
        ("filed", "subject", ""), ("code_rejected", "subject", "attempt 1"), ("code_rejected", "subject", "attempt 2"),
        ("code_rejected", "subject", "attempt 3")]


def test_a_code_has_expired_from_the_very_instant_it_expires():
    request = request_make(code="12345678")
    expires_at = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    Request.objects.filter(pk=request.pk).update(code_expires_at=expires_at)
    with time_machine.travel(expires_at, tick=False), pytest.raises(InvalidInput) as refused:
        services.request_verify(request_id=request.pk, code="12345678")
    assert (refused.value.code, refused.value.detail) == ("code_expired", "This code has expired. Ask for a new one.")
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.code_attempts, stored.token_hash) == ("unverified", 0, "")
    assert _actions(request) == ["filed"]


@pytest.mark.parametrize("status", ["pending_review", "processing", "canceled"])
def test_a_request_verified_already_takes_no_code_and_gets_no_new_one(settings, status):
    settings.DSAR_CODE_RESEND_SECONDS = 0
    request = request_make(status=status, code="12345678")
    for ask in (lambda: services.request_verify(request_id=request.pk, code="12345678"),
                lambda: services.request_code_resend(request_id=request.pk)):
        with pytest.raises(Conflict) as refused:
            ask()
        assert (refused.value.code, refused.value.detail) == ("already_verified", "This request is already verified.")
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.code_attempts, stored.code_hash, stored.token_hash) == (status, 0, request.code_hash, "")
    assert _actions(request) == ["filed"]
    assert not OutgoingEmail.objects.filter(request=request).exists()


def test_a_locked_request_gets_no_new_code(settings):
    settings.DSAR_CODE_MAX_ATTEMPTS, settings.DSAR_CODE_RESEND_SECONDS = 3, 0
    request = request_make(code_issued=True)
    Request.objects.filter(pk=request.pk).update(code_attempts=3)
    with pytest.raises(Locked) as refused:
        services.request_code_resend(request_id=request.pk)
    assert (refused.value.code, refused.value.detail) == ("locked", "Too many wrong codes: this request is locked. File a new request.")
    assert Request.objects.get(pk=request.pk).code_hash == request.code_hash
    assert _actions(request) == ["filed"]
    assert not OutgoingEmail.objects.filter(request=request).exists()


class UnreachableDirectory(Connector):
    """A system that cannot say who manages an account: its directory does not answer in time."""

    def managing_organization(self, identity: Identity) -> str | None:
        raise TransientError("directory: no answer in 10 s")


@pytest.fixture
def unreachable_directory(settings, tmp_path):
    """The deployment's systems: the probe, then `directory`, which cannot say who manages an account."""
    (tmp_path / "directory.yaml").write_text(f"name: directory\nkind: python\nclass: {__name__}.UnreachableDirectory\n")
    settings.DSAR_SYSTEMS = {"probe": settings.DSAR_SYSTEMS["probe"], "directory": system_load(tmp_path / "directory.yaml", environ={})}
    connectors_reset()
    yield
    connectors_reset()


def test_a_code_is_not_taken_while_a_system_cannot_say_who_manages_the_account_and_the_log_names_it(
        unreachable_directory, settings, caplog):
    settings.DSAR_AUTO_APPROVE = False
    request = request_make(code="12345678")
    with pytest.raises(Unavailable) as refused:
        services.request_verify(request_id=request.pk, code="12345678")
    assert (refused.value.code, refused.value.detail) == ("unavailable", "A system we must check is unavailable. Try again in a few minutes.")
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.code_attempts, stored.token_hash, stored.verified_at) == ("unverified", 0, "", None)
    assert verification.code_matches("12345678", stored.code_hash)  # the code still works once the system answers
    assert _actions(request) == ["filed"]
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "dsar.services" and r.levelname == "WARNING"] == [
        ("WARNING", f"request {request.pk}: directory could not say who manages the account: directory: no answer in 10 s")]


# --- A fresh code --------------------------------------------------------------------------------------------


def _code_sent(seconds_ago: float) -> Request:
    request = request_make(code_issued=True)
    Request.objects.filter(pk=request.pk).update(code_sent_at=timezone.now() - dt.timedelta(seconds=seconds_ago))
    return Request.objects.get(pk=request.pk)


def test_a_code_asked_for_again_in_the_last_second_of_the_wait_is_refused(settings):
    settings.DSAR_CODE_RESEND_SECONDS = 60
    request = _code_sent(59.1)  # less than a second of the wait is left
    assert services.request_code_resend_wait(request=request) == 1
    with pytest.raises(TooSoon) as refused:
        services.request_code_resend(request_id=request.pk)
    assert (refused.value.code, refused.value.detail) == (
        "resend_cooldown", "A code was sent moments ago. You can ask for another in 1 second.")
    assert Request.objects.get(pk=request.pk).code_sent_at == request.code_sent_at
    assert _actions(request) == ["filed"]
    assert not OutgoingEmail.objects.filter(request=request).exists()


def test_a_code_asked_for_again_once_the_wait_is_over_is_sent_and_audited(settings):
    settings.DSAR_CODE_RESEND_SECONDS, settings.DSAR_CODE_TTL_MINUTES = 60, 30
    request = _code_sent(61)
    assert services.request_code_resend_wait(request=request) == 0
    before = timezone.now()
    services.request_code_resend(request_id=request.pk)
    stored = Request.objects.get(pk=request.pk)
    assert stored.code_sent_at >= before and stored.code_expires_at == stored.code_sent_at + dt.timedelta(minutes=30)
    assert stored.code_hash not in ("", request.code_hash)
    entry = AuditEntry.objects.filter(request=request).last()
    assert (entry.action, entry.actor, entry.from_status, entry.to_status) == ("code_resent", "subject", "unverified", "unverified")
    assert _actions(request) == ["filed", "code_resent"]
    assert list(OutgoingEmail.objects.filter(request=request).values_list("template", flat=True)) == ["code"]


# --- Review ----------------------------------------------------------------------------------------------


def test_approving_fans_out_one_task_per_connector(caplog):
    request = request_make(status="pending_review")
    with caplog.at_level("INFO", logger="dsar.services"):
        services.request_approve(request_id=request.pk, actor="staff:rita", note="identity checked")
    assert [r.getMessage() for r in caplog.records if r.name == "dsar.services"] == [f"request {request.pk}: approved"]
    assert _status(request) == "processing"
    assert sorted(ConnectorTask.objects.filter(request=request).values_list("connector", "status")) == [
        ("accounts", "queued"), ("content", "queued"), ("payments", "queued"), ("probe", "queued"), ("support", "queued"),
        ("third_party", "queued")]
    entry = AuditEntry.objects.filter(request=request).last()
    assert (entry.action, entry.actor, entry.note) == ("approved", "staff:rita", "identity checked")


@pytest.mark.parametrize("reason", ["", "   "])
def test_deny_needs_a_reason(reason):
    request = request_make(status="pending_review")
    with pytest.raises(InvalidInput) as refused:
        services.request_deny(request_id=request.pk, actor="staff:rita", reason=reason)
    assert (refused.value.code, refused.value.detail) == ("reason_required", "A reason is required.")
    assert (_status(request), _actions(request)) == ("pending_review", ["filed"])


def test_a_denied_request_tells_the_subject_why_and_cannot_then_be_approved():
    request = request_make(status="pending_review")
    services.request_deny(request_id=request.pk, actor="staff:rita", reason="We could not match the account.")
    assert OutgoingEmail.objects.filter(request=request).values_list("template", "context").get() == (
        "denied", {"reason": "We could not match the account."})
    entry = AuditEntry.objects.filter(request=request).last()
    assert (entry.action, entry.actor, entry.note) == ("denied", "staff:rita", "We could not match the account.")
    with pytest.raises(Conflict) as refused:
        services.request_approve(request_id=request.pk, actor="staff:rita")
    assert (refused.value.code, refused.value.detail) == ("illegal_transition", "This request is denied; it cannot be approved.")
    assert (_status(request), _actions(request)) == ("denied", ["filed", "denied"])
    assert not ConnectorTask.objects.filter(request=request).exists()


def test_an_unknown_request_is_not_found():
    with pytest.raises(NotFound):
        services.request_approve(request_id="00000000-0000-0000-0000-000000000000", actor="staff:rita")


# --- Extensions: GDPR allows two months past the due date, once ------------------------------------------------


def _due(request: Request, due_at: dt.datetime) -> Request:
    Request.objects.filter(pk=request.pk).update(due_at=due_at)
    return Request.objects.get(pk=request.pk)


@pytest.mark.parametrize(("due_at", "most_days", "limit"), [
    (dt.datetime(2026, 2, 28, 12, tzinfo=UTC), 59, "2026-04-28"),
    (dt.datetime(2026, 12, 31, 9, tzinfo=UTC), 59, "2027-02-28"),  # a calendar month ends early
    (dt.datetime(2027, 12, 31, 9, tzinfo=UTC), 60, "2028-02-29"),  # a leap year
    (dt.datetime(2026, 7, 15, 0, tzinfo=UTC), 62, "2026-09-15"),   # over two months of 31 days
])
def test_an_extension_may_reach_two_calendar_months_past_the_due_date_and_no_further(settings, due_at, most_days, limit):
    settings.DSAR_JURISDICTION = "ccpa"  # the law the request was filed under governs it (GDPR), not the deployment's now
    request = _due(request_make(status="pending_review"), due_at)
    with time_machine.travel(due_at - dt.timedelta(days=1), tick=False):  # staff extend while the deadline runs
        with pytest.raises(InvalidInput) as refused:
            services.request_extend(request_id=request.pk, actor="staff:rita", reason="many systems", days=most_days + 1)
        assert (refused.value.code, refused.value.detail) == (
            "extension_too_long", f"The law allows extending to {limit} at the latest.")
        assert _actions(request) == ["filed"] and not OutgoingEmail.objects.filter(request=request).exists()
        assert Request.objects.get(pk=request.pk).due_at == due_at
        services.request_extend(request_id=request.pk, actor="staff:rita", reason="many systems", days=most_days)
        extended = Request.objects.get(pk=request.pk)
        new_due = due_at + dt.timedelta(days=most_days)
        assert extended.due_at == new_due and extended.extended_at is not None
        entry = AuditEntry.objects.filter(request=request).last()
        assert (entry.action, entry.actor, entry.note, entry.data) == (
            "extended", "staff:rita", "many systems", {"from": due_at.isoformat(), "to": new_due.isoformat()})
        assert OutgoingEmail.objects.filter(request=request).values_list("template", "context").get() == (
            "extended", {"reason": "many systems", "new_due_at": {"$datetime": new_due.isoformat()}})


# Received 1 March 2026 under the GDPR: due 1 April 2026.
DUE = dt.datetime(2026, 4, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("now", [
    dt.datetime(2026, 4, 1, 12, tzinfo=UTC),  # the moment it passes
    dt.datetime(2026, 4, 10, 12, tzinfo=UTC),  # nine days late
])
def test_a_deadline_that_has_passed_cannot_be_extended_and_the_refusal_changes_nothing(now):
    request = _due(request_make(status="processing"), DUE)
    with time_machine.travel(now, tick=False):
        assert "extend" not in services.request_actions_allowed(request=request)
        with pytest.raises(Conflict) as refused:
            services.request_extend(request_id=request.pk, actor="staff:rita", reason="many systems", days=30)
    assert (refused.value.code, refused.value.detail) == (
        "deadline_passed", "This request's deadline passed on 2026-04-01; it can no longer be extended.")
    stored = Request.objects.get(pk=request.pk)
    assert (stored.due_at, stored.extended_at) == (dt.datetime(2026, 4, 1, 12, tzinfo=UTC), None)
    assert _actions(request) == ["filed"] and not OutgoingEmail.objects.filter(request=request).exists()


def test_a_deadline_can_be_extended_up_to_the_last_moment_before_it_passes():
    request = _due(request_make(status="processing"), DUE)
    with time_machine.travel(dt.datetime(2026, 4, 1, 11, 59, tzinfo=UTC), tick=False):
        assert "extend" in services.request_actions_allowed(request=request)
        services.request_extend(request_id=request.pk, actor="staff:rita", reason="many systems", days=30)
    assert Request.objects.get(pk=request.pk).due_at == dt.datetime(2026, 5, 1, 12, tzinfo=UTC)


def test_a_deadline_is_extended_once_only_while_open_and_with_a_reason():
    request = request_make(status="processing")
    for reason, days, code, message in ((" ", 5, "reason_required", "A reason is required."),
                                        ("busy", 0, "invalid_days", "days must be at least 1."),
                                        ("busy", -3, "invalid_days", "days must be at least 1.")):
        with pytest.raises(InvalidInput) as refused:
            services.request_extend(request_id=request.pk, actor="staff:rita", reason=reason, days=days)
        assert (refused.value.code, refused.value.detail) == (code, message)
    assert (Request.objects.get(pk=request.pk).due_at, _actions(request)) == (request.due_at, ["filed"])
    services.request_extend(request_id=request.pk, actor="staff:rita", reason="busy", days=5)
    with pytest.raises(Conflict) as again:
        services.request_extend(request_id=request.pk, actor="staff:rita", reason="busier", days=5)
    assert (again.value.code, again.value.detail) == ("already_extended", "This request's deadline was already extended once.")
    closed = request_make(status="completed")
    with pytest.raises(Conflict) as refused:
        services.request_extend(request_id=closed.pk, actor="staff:rita", reason="busy", days=5)
    assert (refused.value.code, refused.value.detail) == ("illegal_transition", "A completed request has no deadline to extend.")
    assert (Request.objects.get(pk=closed.pk).due_at, Request.objects.get(pk=closed.pk).extended_at) == (closed.due_at, None)


# --- Release -------------------------------------------------------------------------------------------


def _export(request: Request, **fields) -> Export:
    now = timezone.now()
    return Export.objects.create(request=request, path=f"exports/{request.pk}/export.zip", bytes=10, sha256="0" * 64,
                                 created_at=now, expires_at=now + dt.timedelta(days=7), **fields)


def test_release_only_of_a_completed_requests_unreleased_export(settings):
    settings.DSAR_REVIEW_BEFORE_RELEASE = True
    processing, no_export, deleted = request_make(status="processing"), request_make(status="completed"), request_make(status="completed")
    _export(processing)
    _export(deleted, deleted_at=timezone.now())
    for request in (processing, no_export, deleted):
        with pytest.raises(Conflict) as refused:
            services.request_release(request_id=request.pk, actor="staff:rita")
        assert (refused.value.code, refused.value.detail) == ("illegal_transition", "Only a completed access request with an export can be released.")
    assert Export.objects.filter(released_at__isnull=False).count() == 0

    ready = request_make(status="completed")
    _export(ready)
    services.request_release(request_id=ready.pk, actor="staff:rita", note="looked fine")
    assert Export.objects.get(request=ready).released_at is not None
    assert OutgoingEmail.objects.get(request=ready).template == "completed"
    with pytest.raises(Conflict) as again:
        services.request_release(request_id=ready.pk, actor="staff:rita")
    assert (again.value.code, again.value.detail) == ("already_released", "This export was already released.")
    assert _actions(ready) == ["filed", "released"]


@pytest.mark.parametrize(("given", "note"), [({"note": "looked fine"}, "looked fine"), ({}, "")])
def test_a_release_is_audited_with_who_released_it_and_their_note_if_any(settings, given, note):
    settings.DSAR_REVIEW_BEFORE_RELEASE = True
    request = request_make(status="completed")
    _export(request)
    services.request_release(request_id=request.pk, actor="staff:rita", **given)
    entry = AuditEntry.objects.filter(request=request).last()
    assert (entry.action, entry.actor, entry.note, entry.from_status, entry.to_status) == (
        "released", "staff:rita", note, "completed", "completed")


def test_a_released_export_is_emailed_with_a_link_that_downloads_it_and_ends_its_period_after_release(
        settings, client, mailoutbox, django_capture_on_commit_callbacks):
    settings.DSAR_REVIEW_BEFORE_RELEASE, settings.DSAR_PUBLIC_URL, settings.DSAR_EXPORT_TTL_DAYS = True, "https://privacy.example.com", 7
    request = request_make(status="completed", email="reader@example.com")
    path = default_storage.save(f"exports/{request.pk}/export.zip", ContentFile(b"PK the export"))
    # made three weeks before staff released it: its 7 days start at release, not when it was made
    Export.objects.create(request=request, path=path, bytes=13, sha256="0" * 64, created_at=dt.datetime(2030, 12, 17, 9, 30, tzinfo=UTC),
                          expires_at=dt.datetime(2030, 12, 24, 9, 30, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2031, 1, 7, 9, 30, tzinfo=UTC), tick=False), django_capture_on_commit_callbacks(execute=True):
        services.request_release(request_id=request.pk, actor="staff:rita")
    assert Export.objects.get(request=request).expires_at == dt.datetime(2031, 1, 14, 9, 30, tzinfo=UTC)
    [message] = [message for message in mailoutbox if message.to == ["reader@example.com"]]
    assert "The link works until 14 January 2031, 09:30 (UTC time)." in message.body
    link = re.search(rf"https://privacy\.example\.com(/api/v1/requests/{request.pk}/download/\S+)", message.body)
    assert link, message.body
    answer = client.get(link.group(1))
    assert answer.status_code == 200 and b"".join(answer.streaming_content) == b"PK the export"


def test_an_export_that_may_hold_other_peoples_data_is_not_released_unreviewed_and_reviewed_only_when_it_can_be(settings):
    settings.DSAR_REVIEW_BEFORE_RELEASE = False  # an export that may hold others' data is held all the same
    held = request_make(status="completed")
    _export(held, others=2)
    with pytest.raises(Conflict) as refused:
        services.request_release(request_id=held.pk, actor="staff:rita")
    assert (refused.value.code, refused.value.detail) == (
        "review_required", "This export may hold other people's data: review it, then release it as decided.")
    assert Export.objects.get(request=held).released_at is None

    processing, plain = request_make(status="processing"), request_make(status="completed")
    _export(processing, others=2)
    _export(plain)
    with pytest.raises(Conflict) as not_done:
        services.request_review_items(request_id=processing.pk)
    assert (not_done.value.code, not_done.value.detail) == (
        "illegal_transition", "Only a completed access request with an export can be reviewed.")
    with pytest.raises(Conflict) as nothing:
        services.request_review_items(request_id=plain.pk)
    assert (nothing.value.code, nothing.value.detail) == ("nothing_to_review", "This export holds nothing that may be other people's data.")
    assert _actions(held) == _actions(processing) == ["filed"]


def test_nothing_is_released_by_staff_where_exports_are_released_when_made(settings):
    settings.DSAR_REVIEW_BEFORE_RELEASE = False
    request = request_make(status="completed")
    _export(request)
    with pytest.raises(Conflict) as refused:
        services.request_release(request_id=request.pk, actor="staff:rita")
    assert (refused.value.code, refused.value.detail) == ("illegal_transition", "This deployment releases each export as soon as it is made.")
    assert Export.objects.get(request=request).released_at is None
    assert _actions(request) == ["filed"]


# --- Retry -----------------------------------------------------------------------------------------------


def test_retry_requeues_the_failed_tasks_of_a_failed_request():
    request = request_make(status="failed")
    Request.objects.filter(pk=request.pk).update(failure_reason="accounts: PermanentError: no")
    ConnectorTask.objects.create(request=request, connector="accounts", status="failed", attempts=5, last_error="no")
    ConnectorTask.objects.create(request=request, connector="payments", status="succeeded", attempts=1)
    services.request_retry(request_id=request.pk, actor="staff:rita")
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.failure_reason) == ("processing", "")
    assert sorted(ConnectorTask.objects.filter(request=request).values_list("connector", "status", "attempts")) == [
        ("accounts", "queued", 0), ("payments", "succeeded", 1)]
    entry = AuditEntry.objects.filter(request=request).last()
    assert (entry.action, entry.note) == ("retried", "accounts: PermanentError: no")
    assert not FinalStep.objects.filter(request=request).exists()


def test_retry_of_a_failed_final_step_queues_it_again():
    request = request_make(status="failed")
    Request.objects.filter(pk=request.pk).update(failure_reason="export: OSError: No space left on device")
    ConnectorTask.objects.create(request=request, connector="accounts", status="succeeded", attempts=1)
    FinalStep.objects.create(request=request, status="failed", attempts=1, sweeps=2, last_error="export: OSError")
    services.request_retry(request_id=request.pk, actor="staff:rita")
    assert _status(request) == "processing"
    assert FinalStep.objects.filter(request=request).values_list("status", "sweeps", "attempts").get() == ("queued", 0, 1)
    assert ConnectorTask.objects.get(request=request).status == "succeeded"


@pytest.mark.parametrize("status", ["pending_review", "processing", "completed", "denied"])
def test_only_a_failed_request_is_retried(status):
    request = request_make(status=status)
    with pytest.raises(Conflict):
        services.request_retry(request_id=request.pk, actor="staff:rita")
    assert (_status(request), _actions(request)) == (status, ["filed"])


# --- What the console offers ----------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "export", "offered"), [
    ("unverified", None, {"extend"}),
    ("pending_review", None, {"approve", "deny", "extend", "ask"}),
    ("processing", None, {"extend"}),
    ("failed", None, {"retry", "extend"}),
    ("completed", None, set()),
    ("completed", "unreleased", {"release"}),
    ("completed", "released", set()),
    ("completed", "deleted", set()),
    ("denied", None, set()),
    ("canceled", None, set()),
    ("expired", None, set()),
    ("referred", None, set()),
    ("awaiting_subject", None, {"deny", "extend"}),
])
def test_the_actions_offered_are_those_the_services_accept(settings, status, export, offered):
    settings.DSAR_REVIEW_BEFORE_RELEASE = True
    request = request_make(status=status)
    if export:
        _export(request, released_at=timezone.now() if export == "released" else None,
                deleted_at=timezone.now() if export == "deleted" else None)
    assert services.request_actions_allowed(request=Request.objects.select_related("export").get(pk=request.pk)) == offered


def test_an_extended_request_is_not_offered_another_extension():
    request = request_make(status="pending_review")
    services.request_extend(request_id=request.pk, actor="staff:rita", reason="busy", days=3)
    assert services.request_actions_allowed(request=Request.objects.get(pk=request.pk)) == {"approve", "deny", "ask"}


# --- Tasks of systems with no API ----------------------------------------------------------------------
# (the uploads' rules are in test_services_uploads.py; the flows in test_manual_systems.py)


def _with_staff(task: ConnectorTask) -> bool:
    """Whether the task still waits for staff, untouched."""
    stored = ConnectorTask.objects.get(pk=task.pk)
    return (stored.status, stored.attempts, stored.started_at, stored.counts, stored.output, stored.receipt) == (
        "with_staff", 0, None, {}, None, None)


def _gather(task: ConnectorTask, content: bytes = CSV) -> ConnectorTask:
    return services.manual_task_gather(task_id=task.pk, actor="staff:rita", filename="found.csv", content=content)


def _erase(task: ConnectorTask, counts: dict[str, int] | None = None, note: str = NOTE) -> ConnectorTask:
    return services.manual_task_erase(task_id=task.pk, actor="staff:ada", counts={"name_contact": 1} if counts is None else counts, note=note)


@pytest.mark.usefixtures("manual_system")
def test_only_a_task_of_a_configured_system_with_no_api_is_a_manual_task(unique_email):
    access, deletion = _approved(unique_email), _approved(unique_email, type="deletion")
    gone = ConnectorTask.objects.create(request=deletion, connector="ledger", status="with_staff")  # a system no longer configured
    for request, complete in ((access, _gather), (deletion, _erase)):
        for task in (ConnectorTask(pk=987654321), _task(request, "probe"), gone):
            with pytest.raises(NotFound) as refused:
                complete(task)
            assert (refused.value.code, refused.value.detail) == ("not_found", "No such manual task.")
    assert [_task(request, "probe").status for request in (access, deletion)] == ["queued", "queued"]
    assert _with_staff(gone) and _with_staff(_task(access, "archive")) and _with_staff(_task(deletion, "archive"))


@pytest.mark.usefixtures("manual_system")
def test_each_manual_task_is_completed_with_its_requests_form_and_the_other_is_refused_saying_which(unique_email):
    access, deletion = _approved(unique_email), _approved(unique_email, type="deletion")
    with pytest.raises(Conflict) as gathered:
        _gather(_task(deletion, "archive"))
    assert (gathered.value.code, gathered.value.detail) == ("wrong_type", "This is a deletion request: confirm what you erased instead.")
    with pytest.raises(Conflict) as erased:
        _erase(_task(access, "archive"))
    assert (erased.value.code, erased.value.detail) == ("wrong_type", "This is an access request: upload what you found instead.")
    assert _with_staff(_task(access, "archive")) and _with_staff(_task(deletion, "archive"))
    assert not AuditEntry.objects.filter(action="manual_task_completed").exists()


@pytest.mark.parametrize(("status", "said"), [("completed", "completed"), ("pending_review", "pending review")])
@pytest.mark.usefixtures("manual_system")
def test_a_manual_task_of_a_request_neither_processing_nor_failed_cannot_be_completed(unique_email, status, said):
    request = request_make(status=status, email=unique_email())
    task = ConnectorTask.objects.create(request=request, connector="archive", status="with_staff")
    with pytest.raises(Conflict) as refused:
        _gather(task)
    assert (refused.value.code, refused.value.detail) == ("illegal_transition", f"This request is {said}; its manual task cannot be completed.")
    assert _with_staff(task) and _status(request) == status and _actions(request) == ["filed"]


@pytest.mark.usefixtures("manual_system")
def test_completing_a_manual_task_takes_that_task_alone_as_a_worker_claims_one(unique_email):
    request, other = _approved(unique_email), _approved(unique_email)
    before = timezone.now()
    _gather(_task(request, "archive"))
    task = _task(request, "archive")
    assert (task.status, task.attempts, task.counts) == ("succeeded", 1, {"name_contact": 1, "payment": 1})
    assert before <= task.started_at <= task.finished_at
    assert task.output["prefix"] == f"work/{request.pk}/archive/1"  # staged as the task's first attempt
    entry = AuditEntry.objects.get(request=request, action="manual_task_completed")
    assert (entry.actor, entry.note, entry.data) == ("staff:rita", "", {"system": "archive", "counts": {"name_contact": 1, "payment": 1}})
    assert _with_staff(_task(other, "archive"))


@pytest.mark.usefixtures("manual_system")
def test_a_manual_task_completed_once_is_not_open_again(unique_email):
    request = _approved(unique_email, type="deletion")
    _erase(_task(request, "archive"), {"name_contact": 1})
    with pytest.raises(Conflict) as again:
        _erase(_task(request, "archive"), {"name_contact": 5})
    assert (again.value.code, again.value.detail) == (
        "task_not_open", "This task is not waiting for staff: it is done, or still waits for other systems.")
    task = _task(request, "archive")
    assert (task.attempts, task.counts, task.receipt["erased"]) == (1, {"name_contact": 1}, {"name_contact": 1})
    assert AuditEntry.objects.filter(request=request, action="manual_task_completed").count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("manual_system", "worker")
def test_the_last_manual_task_completed_rings_for_its_requests_final_step_which_a_worker_runs(unique_email):
    request = _approved(unique_email, type="deletion")
    wait_for(lambda: _task(request, "probe").status == "succeeded", timeout=60, what="the worker to run the probe's task")
    _erase(_task(request, "archive"), {"name_contact": 2})
    completed = wait_until_final(request.pk, timeout=60)
    assert (completed.status, completed.result) == ("completed", {"erased": {"name_contact": 2}, "retained": []})


@pytest.mark.parametrize(("counts", "note", "code", "message"), [
    ({"name_contact": 1}, " \n ", "note_required", "A note is required: say what was erased and how."),
    ({"searches_commands": 1, "name_contact": 1, "interests": 2}, NOTE, "invalid_category", "archive does not hold interests, searches_commands."),
    ({"interests": -1, "payment": -1}, NOTE, "invalid_category", "archive does not hold interests."),  # categories are checked first
    ({"payment": -1, "name_contact": 3}, NOTE, "invalid_count", "A count cannot be negative: payment."),
    ({"payment": -1, "name_contact": -2}, NOTE, "invalid_count", "A count cannot be negative: name_contact, payment."),
])
@pytest.mark.usefixtures("manual_system")
def test_an_erasure_confirmed_without_a_note_or_with_a_wrong_count_is_refused_with_its_code(unique_email, counts, note, code, message):
    request = _approved(unique_email, type="deletion")
    with pytest.raises(InvalidInput) as refused:
        _erase(_task(request, "archive"), counts, note)
    assert (refused.value.code, refused.value.detail) == (code, message)
    assert _with_staff(_task(request, "archive"))
    assert not AuditEntry.objects.filter(request=request, action="manual_task_completed").exists()


# --- Systems -------------------------------------------------------------------------------------------


def test_checking_a_system_that_is_not_configured_is_not_found_and_records_nothing():
    with pytest.raises(NotFound) as refused:
        services.system_check(name="ledger", actor="staff:ada")
    assert (refused.value.code, refused.value.detail) == ("not_found", "No such system.")
    assert not SystemCheck.objects.filter(system="ledger").exists()
    assert not AuditEntry.objects.filter(action="system_checked").exists()


# --- The subject -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "allowed"), [("unverified", True), ("pending_review", True), ("processing", False), ("completed", False)])
def test_the_subject_cancels_only_before_processing(status, allowed):
    request = request_make(status=status)
    if allowed:
        services.request_cancel(request_id=request.pk)
        assert (_status(request), _actions(request)) == ("canceled", ["filed", "canceled"])
    else:
        with pytest.raises(Conflict):
            services.request_cancel(request_id=request.pk)
        assert _status(request) == status


# --- Staff management ------------------------------------------------------------------------------------


def _staff_entries() -> list[tuple[str, str, dict]]:
    return list(AuditEntry.objects.filter(request__isnull=True).order_by("id").values_list("actor", "action", "data"))


def test_every_change_to_staff_is_audited_with_who_did_it():
    ada = staff_member_create(username="ada", email="ada@example.com", role=ROLE_ADMIN, password="a-long-passphrase")
    rob = staff_member_create(username="rob", email="", role=ROLE_REVIEWER, password="a-long-passphrase", by=ada)
    assert rob.check_password("a-long-passphrase") and staff_has_role(rob, ROLE_REVIEWER) and not staff_has_role(rob, ROLE_ADMIN)
    staff_role_change(user_id=rob.pk, role=ROLE_ADMIN, by=ada)
    TOTPDevice.objects.create(user=rob, name="phone", confirmed=True)
    staff_second_factor_reset(user_id=rob.pk, by=ada)
    token = staff_token_create(user=rob, by=ada)
    staff_active_set(user_id=rob.pk, active=False, by=ada)
    rob = get_user_model().objects.get(pk=rob.pk)
    assert staff_has_role(rob, ROLE_ADMIN) is False and rob.is_active is False and not TOTPDevice.objects.filter(user=rob).exists()
    assert staff_token_user(token) is None  # a deactivated member's token no longer works
    assert StaffToken.objects.filter(user=rob).count() == 1
    assert _staff_entries() == [
        ("system", "staff_created", {"staff": "ada", "role": "admin"}),
        ("staff:ada", "staff_created", {"staff": "rob", "role": "reviewer"}),
        ("staff:ada", "staff_role_changed", {"staff": "rob", "role": "admin"}),
        ("staff:ada", "staff_second_factor_reset", {"staff": "rob"}),
        ("staff:ada", "staff_token_created", {"staff": "rob"}),
        ("staff:ada", "staff_deactivated", {"staff": "rob"}),
    ]


def test_nobody_changes_their_own_role_or_access_and_a_name_is_taken_once():
    ada = staff_member_create(username="ada", email="", role=ROLE_ADMIN, password="a-long-passphrase")
    for change in (lambda: staff_role_change(user_id=ada.pk, role=ROLE_REVIEWER, by=ada),
                   lambda: staff_active_set(user_id=ada.pk, active=False, by=ada),
                   lambda: staff_second_factor_reset(user_id=ada.pk, by=ada)):
        with pytest.raises(Conflict) as refused:
            change()
        assert refused.value.code == "own_account"
    with pytest.raises(Conflict) as taken:
        staff_member_create(username="ADA", email="", role=ROLE_REVIEWER, password="a-long-passphrase", by=ada)
    assert taken.value.code == "username_taken"
    with pytest.raises(InvalidInput):
        staff_role_change(user_id=staff_member_create(username="rob", email="", role=ROLE_REVIEWER, password="p-a-s-s-w-o-r-d", by=ada).pk,
                          role="owner", by=ada)
    with pytest.raises(NotFound):
        staff_role_change(user_id=987654, role=ROLE_REVIEWER, by=ada)
    ada = get_user_model().objects.get(pk=ada.pk)
    assert staff_has_role(ada, ROLE_ADMIN) and ada.is_active
    assert [action for _, action, _ in _staff_entries()] == ["staff_created", "staff_created"]


def test_the_staff_token_command_creates_the_member_and_a_token_and_audits_both(capsys):
    call_command("staff_token", "tok", "--role", ROLE_ADMIN)
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert staff_token_user(token).username == "tok"
    assert _staff_entries() == [("system", "staff_created", {"staff": "tok", "role": "admin"}),
                                ("system", "staff_token_created", {"staff": "tok"})]


@pytest.mark.django_db
@pytest.mark.parametrize(("note", "code", "message"), [
    (" \n ", "note_required", "Write the note."),
    ("x" * 2001, "note_too_long", "A note is at most 2000 characters."),
])
def test_an_internal_note_that_is_blank_or_too_long_is_refused_with_its_code_and_nothing_is_noted(note, code, message):
    request = request_make(status="pending_review", email="noted@example.com")
    with pytest.raises(InvalidInput) as refused:
        services.request_note_add(request_id=request.pk, actor="staff:rita", note=note)
    assert (refused.value.code, refused.value.detail) == (code, message)
    assert not AuditEntry.objects.filter(request=request, action="noted").exists()


# --- Bulk review and assignment: the refusals, each with its code and words --------------------------------------

UNKNOWN_IDS = [f"00000000-0000-4000-8000-{number:012d}" for number in range(100)]
PENDING = "the pending request"


@pytest.mark.django_db
@pytest.mark.parametrize(("ids", "action", "reason", "code", "message"), [
    ([PENDING], "shred", "", "invalid_action", "action must be one of approve, deny."),
    (["not-an-id", PENDING], "approve", "", "invalid_id", "Name requests by their ids."),
    ([], "approve", "", "nothing_selected", "Select at least one request."),
    ([*UNKNOWN_IDS, PENDING], "approve", "", "too_many", "Select at most 100 requests at a time."),
    ([PENDING], "deny", " \n ", "reason_required", "A reason is required: each person is emailed it."),
], ids=["action", "id", "none", "101", "reason"])
def test_a_bulk_review_that_cannot_be_is_refused_with_its_code_and_words_and_nothing_changes(ids, action, reason, code, message):
    pending = request_make(status="pending_review", email="bulk.refused@example.com")
    with pytest.raises(InvalidInput) as refused:
        services.request_review_bulk(request_ids=[str(pending.pk) if i == PENDING else i for i in ids], action=action,
                                     actor="staff:rita", reason=reason)
    assert (refused.value.code, refused.value.detail) == (code, message)
    assert Request.objects.get(pk=pending.pk).status == "pending_review"


@pytest.mark.django_db
def test_a_bulk_review_takes_a_hundred_requests_and_approves_without_a_note():
    pending = request_make(status="pending_review", email="bulk.hundred@example.com")
    outcomes = services.request_review_bulk(request_ids=[*UNKNOWN_IDS[:99], str(pending.pk)], action="approve", actor="staff:rita")
    assert [outcome.done for outcome in outcomes] == [False] * 99 + [True]
    assert {outcome.reason for outcome in outcomes[:99]} == {"No such request."}
    assert Request.objects.get(pk=pending.pk).status == "processing"
    assert AuditEntry.objects.get(request=pending, action="approved").note == ""


@pytest.mark.django_db
def test_a_request_is_assigned_only_to_an_active_reviewer_or_admin():
    request = request_make(status="pending_review", email="assign.refused@example.com")
    get_user_model().objects.create(username="visitor")  # a user who holds no staff role
    for assignee in ("visitor", "nobody-by-that-name"):
        with pytest.raises(InvalidInput) as refused:
            services.request_assign(request_id=request.pk, actor="staff:rita", assignee=assignee)
        assert (refused.value.code, refused.value.detail) == ("invalid_assignee", "Assign it to an active reviewer or admin."), assignee
    assert Request.objects.get(pk=request.pk).assigned_to_id is None
    assert not AuditEntry.objects.filter(request=request, action="assigned").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("type", "part_size", "code", "message"), [
    ("deletion", 1_000_000_000, "part_size_not_allowed", "A deletion request has no export to split into parts."),
    ("access", 0, "invalid_part_size", "part_size must be a positive number of bytes."),
    ("access", -1, "invalid_part_size", "part_size must be a positive number of bytes."),
])
def test_a_part_size_that_cannot_be_is_refused_with_its_code_and_words_and_nothing_is_filed(type, part_size, code, message):
    with pytest.raises(InvalidInput) as refused:
        services.request_create(type=type, email="parts.refused@example.com", part_size=part_size)
    assert (refused.value.code, refused.value.detail) == (code, message)
    assert not Request.objects.filter(email="parts.refused@example.com").exists()


@pytest.mark.django_db
def test_a_part_size_of_one_byte_is_taken_as_given():
    assert services.request_create(type="access", email="one.byte@example.com", part_size=1).part_size == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("date_from", "date_to", "code", "message"), [
    (dt.date(2026, 3, 2), dt.date(2026, 3, 1), "invalid_period", "The first day of the period comes after its last day."),
    (dt.date(2026, 3, 1), dt.date(2026, 3, 3), "period_in_future", "A day of the period is in the future."),
])
def test_a_period_that_cannot_be_is_refused_with_its_code_and_words(date_from, date_to, code, message):
    with time_machine.travel(dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC), tick=False):
        with pytest.raises(InvalidInput) as refused:
            services.request_create(type="access", email="period.refused@example.com", date_from=date_from, date_to=date_to)
    assert (refused.value.code, refused.value.detail) == (code, message)


@pytest.mark.django_db
def test_a_period_of_one_day_is_taken():
    one_day = services.request_create(type="access", email="one.day@example.com", date_from=dt.date(2026, 1, 5), date_to=dt.date(2026, 1, 5))
    assert (one_day.date_from, one_day.date_to) == (dt.date(2026, 1, 5), dt.date(2026, 1, 5))


@pytest.mark.django_db
def test_an_internal_note_of_two_thousand_characters_is_kept_whole():
    request = request_make(status="pending_review", email="long.note@example.com")
    services.request_note_add(request_id=request.pk, actor="staff:rita", note="n" * 2000)
    assert AuditEntry.objects.get(request=request, action="noted").note == "n" * 2000
