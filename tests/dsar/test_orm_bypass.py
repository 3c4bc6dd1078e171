"""dsar/orm_bypass.py: a request filed in one statement is stored exactly as the plain ORM stores it,
and all of it or none of it is; a task's result bound by the server is stored as `update` stores it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from dsar import orm_bypass
from dsar.lifecycle import audit_entry_new, audit_record, audit_verify
from dsar.models import AuditEntry, AuditSeal, ConnectorTask, FinalStep, OutgoingEmail, Request

from ..factories import request_make

pytestmark = pytest.mark.django_db(transaction=True)


def _request(email: str, now: dt.datetime) -> Request:
    return Request(type="deletion", email=email, categories=["name_contact", "searches_commands"], jurisdiction="gdpr",
                   created_at=now, due_at=now + dt.timedelta(days=31), code_hash="a" * 64, code_expires_at=now,
                   code_sent_at=now, code_attempts=0)


def _email(request: Request, now: dt.datetime, template: str = "code") -> OutgoingEmail:
    return OutgoingEmail(request=request, template=template, context={"issued": {"$datetime": now.isoformat()}, "é": [1, None]},
                         created_at=now, not_before=now)


def _stored(model, request: Request, leave_out: set[str]) -> list[dict]:
    return [{key: value for key, value in row.items() if key not in leave_out}
            for row in model.objects.filter(**{"pk" if model is Request else "request": request.pk}).values()]


def test_a_request_filed_in_one_statement_is_stored_as_the_plain_orm_stores_it():
    now = timezone.now()
    fast, plain = _request("fast@example.com", now), _request("plain@example.com", now)
    orm_bypass.request_file(fast, audit_entry_new(fast, actor="subject", action="filed", note="deletion request filed"), _email(fast, now))
    with transaction.atomic():
        plain.save(force_insert=True)
        audit_record(plain, actor="subject", action="filed", note="deletion request filed")
        _email(plain, now).save(force_insert=True)

    leave_out = {"id", "email", "updated_at"}  # what differs by design: the id and address given, and the time of saving
    assert _stored(Request, fast, leave_out) == _stored(Request, plain, leave_out)
    [stored] = _stored(Request, fast, set())
    assert (stored["result"], stored["erasure_check"], stored["verified_at"]) == (None, None, None)  # NULL, not JSON null
    assert stored["categories"] == ["name_contact", "searches_commands"] and stored["updated_at"] >= now
    leave_out = {"id", "request_id", "at", "nonce", "mac"}  # the MAC covers the request and a random nonce
    assert _stored(AuditEntry, fast, leave_out) == _stored(AuditEntry, plain, leave_out) != []
    leave_out = {"id", "request_id"}
    assert _stored(OutgoingEmail, fast, leave_out) == _stored(OutgoingEmail, plain, leave_out) != []
    assert AuditSeal.objects.filter(entry__request=fast.pk).count() == 1  # sealed when its statement committed
    assert audit_verify() == []


def test_a_request_is_never_stored_without_its_entry_and_email():
    now = timezone.now()
    request = _request("alone@example.com", now)
    with pytest.raises(DatabaseError):  # the email's template name is too long for its column: its INSERT fails
        orm_bypass.request_file(request, audit_entry_new(request, actor="subject", action="filed"), _email(request, now, "x" * 33))
    assert not Request.objects.filter(pk=request.pk).exists()
    assert not AuditEntry.objects.filter(request=request.pk).exists()
    assert not OutgoingEmail.objects.filter(request=request.pk).exists()


def test_a_task_result_is_stored_as_the_orms_update_stores_it_and_only_on_a_running_task():
    request = request_make(status="processing")
    bound, plain = (ConnectorTask.objects.create(request=request, connector=name, status="running", attempts=1) for name in ("bound", "plain"))
    now = timezone.now()
    result = {"counts": {"name_contact": 2}, "output": {"inline": {"name_contact.json": ['{"a": "\u00e9\\"}\n', "it's\n"]}, "files": 0},
              "receipt": None}
    with transaction.atomic():
        assert orm_bypass.task_result_record(bound.pk, attempt=1, request_id=request.pk, **result, now=now) == (True, False)
    ConnectorTask.objects.filter(pk=plain.pk, status="running").update(status="succeeded", **result, lease_until=None, finished_at=now,
                                                                      updated_at=now)
    leave_out = {"id", "connector", "created_at"}  # the two rows' own: made a moment apart
    rows = {row["connector"]: {k: v for k, v in row.items() if k not in leave_out} for row in ConnectorTask.objects.values()}
    assert rows["bound"] == rows["plain"]
    assert (rows["bound"]["status"], rows["bound"]["receipt"], rows["bound"]["output"]) == ("succeeded", None, result["output"])
    with transaction.atomic():  # no longer running: nothing changes, and no final step
        assert orm_bypass.task_result_record(bound.pk, attempt=1, request_id=request.pk, **result, now=now) == (False, False)
    assert not FinalStep.objects.filter(request=request).exists()


def test_the_last_result_creates_the_final_step_once():
    request = request_make(status="processing")
    first, second = (ConnectorTask.objects.create(request=request, connector=name, status="running", attempts=1) for name in ("a", "b"))
    now = timezone.now()
    with transaction.atomic():
        assert orm_bypass.task_result_record(first.pk, attempt=1, request_id=request.pk, counts={}, output=None, receipt=None,
                                             now=now) == (True, False)
        assert orm_bypass.task_result_record(second.pk, attempt=1, request_id=request.pk, counts={}, output=None, receipt=None,
                                             now=now) == (True, True)
    step = FinalStep.objects.get(request=request)
    assert (step.status, step.attempts, step.sweeps, step.lease_until, step.created_at) == ("queued", 0, 0, None, now)


def test_the_last_result_of_a_request_no_longer_processing_is_recorded_but_makes_no_final_step():
    request = request_make(status="failed")  # another task failed it meanwhile; staff may retry
    task = ConnectorTask.objects.create(request=request, connector="a", status="running", attempts=1)
    with transaction.atomic():
        assert orm_bypass.task_result_record(task.pk, attempt=1, request_id=request.pk, counts={"x": 1}, output=None, receipt=None,
                                             now=timezone.now()) == (True, False)
    assert ConnectorTask.objects.get(pk=task.pk).status == "succeeded"
    assert not FinalStep.objects.filter(request=request).exists()


def test_a_result_for_a_request_that_is_gone_raises_and_records_nothing():
    request = request_make(status="processing")
    task = ConnectorTask.objects.create(request=request, connector="a", status="running", attempts=1)
    with pytest.raises(Request.DoesNotExist), transaction.atomic():
        orm_bypass.task_result_record(task.pk, attempt=1, request_id="00000000-0000-0000-0000-000000000000", counts={}, output=None, receipt=None,
                                      now=timezone.now())
    assert ConnectorTask.objects.get(pk=task.pk).status == "running"


def test_a_claim_reads_what_the_run_needs_and_takes_only_a_due_task_of_a_processing_request():
    request = request_make(status="processing", type="deletion", email="claim@example.com")
    task = ConnectorTask.objects.create(request=request, connector="accounts", last_error="TransientError: busy", attempts=1)
    now = timezone.now()
    lease = now + dt.timedelta(seconds=60)
    claimed = orm_bypass.task_claim(task.pk, now=now, lease_until=lease, worker="host:1")
    assert (claimed.pk, claimed.connector, claimed.attempts, claimed.last_error, claimed.status) == (
        task.pk, "accounts", 2, "TransientError: busy", "running")
    assert (claimed.request.pk, claimed.request.type, claimed.request.email, claimed.request.categories) == (
        request.pk, "deletion", "claim@example.com", request.categories)
    stored = ConnectorTask.objects.get(pk=task.pk)
    assert (stored.status, stored.attempts, stored.lease_until, stored.started_at, stored.claimed_by) == ("running", 2, lease, now, "host:1")
    assert orm_bypass.task_claim(task.pk, now=now, lease_until=lease, worker="host:2") is None  # its lease lives
    assert orm_bypass.task_claim(task.pk, now=lease + dt.timedelta(seconds=1), lease_until=lease, worker="host:2").attempts == 3


def test_a_final_step_claim_reads_what_the_step_needs_and_takes_only_a_queued_or_lapsed_step_of_a_processing_request():
    request = request_make(status="processing", type="access", email="step@example.com")
    Request.objects.filter(pk=request.pk).update(categories=["name_contact"], jurisdiction="ccpa")
    FinalStep.objects.create(request=request, attempts=1)
    now = timezone.now()
    lease = now + dt.timedelta(seconds=60)
    claimed = orm_bypass.final_step_claim(request.pk, now=now, lease_until=lease, worker="host:1")
    assert (claimed.status, claimed.attempts, claimed.request_id) == ("running", 2, request.pk)
    assert (claimed.request.pk, claimed.request.type, claimed.request.email, claimed.request.categories, claimed.request.created_at,
            claimed.request.jurisdiction) == (request.pk, "access", "step@example.com", ["name_contact"], request.created_at, "ccpa")
    stored = FinalStep.objects.get(request=request)
    assert (stored.pk, stored.status, stored.attempts, stored.lease_until, stored.started_at, stored.claimed_by, stored.updated_at) == (
        claimed.pk, "running", 2, lease, now, "host:1", now)
    assert orm_bypass.final_step_claim(request.pk, now=now, lease_until=lease, worker="host:2") is None  # its lease lives
    assert orm_bypass.final_step_claim(request.pk, now=lease + dt.timedelta(seconds=1), lease_until=lease, worker="host:2").attempts == 3
    Request.objects.filter(pk=request.pk).update(status="failed")
    assert orm_bypass.final_step_claim(request.pk, now=lease + dt.timedelta(days=1), lease_until=lease, worker="host:3") is None
    FinalStep.objects.filter(request=request).update(status="succeeded", lease_until=None)
    Request.objects.filter(pk=request.pk).update(status="processing")
    assert orm_bypass.final_step_claim(request.pk, now=lease + dt.timedelta(days=1), lease_until=lease, worker="host:3") is None


@pytest.mark.django_db
def test_recording_a_result_for_a_request_gone_meanwhile_says_which_request():
    request = request_make(status="processing", email="gone.meanwhile@example.com")
    task = ConnectorTask.objects.create(request=request, connector="probe", status="running", attempts=1)
    Request.objects.filter(pk=request.pk).delete()
    with pytest.raises(Request.DoesNotExist) as gone:
        orm_bypass.task_result_record(task.pk, attempt=1, request_id=request.pk, counts={}, output=None, receipt=None,
                                      identities=None, now=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    assert str(gone.value) == f"request {request.pk} does not exist"
