"""The state machine refuses every illegal transition, and the audit trail records every legal one."""

from __future__ import annotations

import itertools

import pytest
from django.db import DatabaseError, transaction

from dsar.lifecycle import TRANSITIONS, IllegalTransition, audit_record, audit_verify, request_lock, request_transition
from dsar.models import AuditEntry, Request, Status

from ..factories import request_make

pytestmark = pytest.mark.django_db(transaction=True)

ILLEGAL = [(status, action) for action, moves in TRANSITIONS.items() for status in Status.values if status not in moves]
LEGAL = [(status, action, to) for action, moves in TRANSITIONS.items() for status, to in moves.items()]


@pytest.mark.parametrize(("from_status", "action"), ILLEGAL)
def test_every_illegal_transition_is_refused_and_changes_nothing(from_status, action):
    request = request_make(status=from_status)
    entries = AuditEntry.objects.count()
    with pytest.raises(IllegalTransition), transaction.atomic():
        request_transition(request_lock(request.pk), action, actor="system")
    assert Request.objects.get(pk=request.pk).status == from_status
    assert AuditEntry.objects.count() == entries


@pytest.mark.parametrize(("from_status", "action", "to_status"), LEGAL)
def test_every_legal_transition_is_audited_in_the_same_transaction(from_status, action, to_status):
    request = request_make(status=from_status)
    with transaction.atomic():
        request_transition(request_lock(request.pk), action, actor="staff:rita", note="why")
    entry = AuditEntry.objects.filter(request=request).last()
    assert (entry.action, entry.from_status, entry.to_status, entry.actor, entry.note) == (action, from_status, to_status, "staff:rita", "why")
    assert Request.objects.get(pk=request.pk).status == to_status


def test_an_audit_write_outside_a_transaction_is_refused():
    request = request_make()
    with pytest.raises(RuntimeError):
        audit_record(request, actor="system", action="stray")


@pytest.mark.parametrize(
    ("status", "action", "body"),
    [
        ("unverified", "approve", {}),
        ("completed", "approve", {}),
        ("processing", "deny", {"reason": "no"}),
        ("denied", "deny", {"reason": "no"}),
        ("pending_review", "retry", {}),
        ("unverified", "deny", {"reason": "no"}),
        ("completed", "retry", {}),
        ("completed", "extend", {"reason": "busy", "days": 5}),
    ],
)
def test_staff_actions_on_the_wrong_status_answer_409_and_change_nothing(reviewer, status, action, body):
    request = request_make(status=status)
    response = reviewer.post(f"/api/v1/staff/requests/{request.pk}/{action}", body, format="json")
    assert response.status_code == 409
    assert response.json()["error"] in {"illegal_transition"}
    assert Request.objects.get(pk=request.pk).status == status
    assert AuditEntry.objects.filter(request=request).count() == 1


def test_the_audit_trail_cannot_be_edited_or_deleted_through_the_database():
    request = request_make()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(request=request).update(note="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(request=request).delete()
    assert AuditEntry.objects.filter(request=request, note="rewritten").count() == 0


def test_the_audit_chain_links_every_entry_to_the_one_before():
    for status in ("unverified", "pending_review", "processing"):
        request_make(status=status)
    assert audit_verify() == []
    entries = list(AuditEntry.objects.order_by("id"))
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(entries))
