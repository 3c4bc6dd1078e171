"""dsar/lifecycle.py: the state machine allows exactly the moves of its table and audits each one in
the same transaction; the audit trail is append-only and its chain shows any removal or reordering."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import threading
import uuid

import pytest
import time_machine
from django.db import DatabaseError, connection, transaction

from dsar.lifecycle import (
    TRANSITIONS,
    IllegalTransition,
    audit_entry_new,
    audit_record,
    audit_verify,
    request_transition,
    rows_insert,
    transition_target,
)
from dsar.locks import request_lock
from dsar.models import GENESIS_HASH, AuditEntry, AuditSeal, OutgoingEmail, Request, Status

from ..factories import request_make
from ..support.audit import triggers_aside

# Every status against every action: the status the action leads to, or "-" where it is refused.
MATRIX = """
status            verified        auto_approved  referred  canceled  approved    denied  completed  failed  retried     expired  asked             answered
unverified        pending_review  processing     referred  canceled  -           -       -          -       -           -        -                 -
pending_review    -               -              -         canceled  processing  denied  -          -       -           -        awaiting_subject  -
processing        -               -              -         -         -           -       completed  failed  -           -        -                 -
completed         -               -              -         -         -           -       -          -       -           expired  -                 -
failed            -               -              -         -         -           -       -          -       processing  -        -                 -
denied            -               -              -         -         -           -       -          -       -           -        -                 -
canceled          -               -              -         -         -           -       -          -       -           -        -                 -
expired           -               -              -         -         -           -       -          -       -           -        -                 -
referred          -               -              -         -         -           -       -          -       -           -        -                 -
awaiting_subject  -               -              -         canceled  -           denied  -          -       -           -        -                 pending_review
"""
_HEADER, *_ROWS = (line.split() for line in MATRIX.strip().splitlines())
ACTIONS = _HEADER[1:]
CELLS = [(row[0], action, None if target == "-" else target) for row in _ROWS for action, target in zip(ACTIONS, row[1:], strict=True)]
LEGAL = [cell for cell in CELLS if cell[2]]
REFUSED = [cell[:2] for cell in CELLS if not cell[2]]


def test_the_matrix_covers_every_status_and_every_action():
    assert sorted(row[0] for row in _ROWS) == sorted(Status.values)
    assert sorted(ACTIONS) == sorted(TRANSITIONS)
    assert (len(CELLS), len(LEGAL)) == (120, 15)


@pytest.mark.parametrize(("from_status", "action", "to_status"), LEGAL)
def test_transition_target_answers_the_matrix_for_allowed_moves(from_status, action, to_status):
    assert transition_target(from_status, action) == to_status


@pytest.mark.parametrize(("from_status", "action"), REFUSED)
def test_transition_target_answers_the_matrix_for_refused_moves(from_status, action):
    assert transition_target(from_status, action) is None


@pytest.mark.django_db
@pytest.mark.parametrize(("from_status", "action", "to_status"), LEGAL)
def test_an_allowed_transition_changes_the_status_and_writes_its_entry(from_status, action, to_status):
    request = request_make(status=from_status)
    with transaction.atomic():
        entry = request_transition(request_lock(request.pk), action, actor="staff:rita", note="why", data={"n": 1})
    stored = Request.objects.get(pk=request.pk)
    assert stored.status == to_status
    assert (entry.action, entry.from_status, entry.to_status, entry.actor, entry.note, entry.data) == (
        action, from_status, to_status, "staff:rita", "why", {"n": 1})
    assert AuditEntry.objects.filter(request=request).order_by("id").last().pk == entry.pk
    closes = to_status in {"completed", "denied", "canceled", "expired", "referred"}
    assert (stored.closed_at is not None) == closes


@pytest.mark.django_db
@pytest.mark.parametrize(("from_status", "action"), REFUSED)
def test_a_refused_transition_raises_and_changes_nothing(from_status, action):
    request = request_make(status=from_status)
    with pytest.raises(IllegalTransition) as refused, transaction.atomic():
        request_transition(request_lock(request.pk), action, actor="system")
    assert (refused.value.from_status, refused.value.action) == (from_status, action)
    assert Request.objects.get(pk=request.pk).status == from_status
    assert list(AuditEntry.objects.filter(request=request).values_list("action", flat=True)) == ["filed"]


@pytest.mark.django_db
def test_an_action_the_state_machine_does_not_know_is_refused():
    assert transition_target("pending_review", "archived") is None
    request = request_make(status="pending_review")
    with pytest.raises(IllegalTransition), transaction.atomic():
        request_transition(request_lock(request.pk), "archived", actor="staff:rita")
    assert Request.objects.get(pk=request.pk).status == "pending_review"


@pytest.mark.django_db
def test_a_refused_transition_says_what_was_refused():
    request = request_make(status="denied")
    with pytest.raises(IllegalTransition) as refused, transaction.atomic():
        request_transition(request_lock(request.pk), "approved", actor="staff:rita")
    assert str(refused.value) == "a denied request cannot be approved"


@pytest.mark.django_db
def test_a_transition_given_no_note_records_none():
    request = request_make(status="pending_review")
    with transaction.atomic():
        entry = request_transition(request_lock(request.pk), "canceled", actor="subject")
    assert AuditEntry.objects.get(pk=entry.pk).note == ""


@pytest.mark.django_db
def test_an_entry_that_moves_no_status_records_the_requests_status_as_both():
    request = request_make(status="pending_review")
    with transaction.atomic():
        entry = audit_record(request_lock(request.pk), actor="system", action="email_undelivered", note="denied email: 550")
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert (stored.from_status, stored.to_status) == ("pending_review", "pending_review")


@pytest.mark.django_db
def test_a_transition_saves_the_fields_it_is_given_and_no_others():
    request = request_make(status="processing")
    with transaction.atomic():
        locked = request_lock(request.pk)
        locked.failure_reason, locked.referred_to = "accounts: down", "not saved"
        request_transition(locked, "failed", actor="system", update_fields=["failure_reason"])
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.failure_reason, stored.referred_to) == ("failed", "accounts: down", "")


@pytest.mark.django_db
def test_an_entry_about_staff_has_no_request_and_no_statuses():
    with transaction.atomic():
        entry = audit_record(None, actor="staff:ada", action="staff_created", data={"staff": "rob"})
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert (stored.request_id, stored.from_status, stored.to_status, stored.data) == (None, "", "", {"staff": "rob"})


@pytest.mark.django_db(transaction=True)
def test_an_audit_write_outside_a_transaction_is_refused():
    request = request_make()
    with pytest.raises(RuntimeError, match="inside the transaction of the change they record"):
        audit_record(request, actor="system", action="stray")
    assert list(AuditEntry.objects.filter(request=request).values_list("action", flat=True)) == ["filed"]


# An entry's MAC is HMAC-SHA256, under DSAR_AUDIT_KEY, of this canonical JSON (keys sorted, no spaces),
# its nonce in it and its time not (the database sets that): entries already written are verified
# against it, so it never changes.
APPROVED = ('{{"action":"approved","actor":"staff:rita","data":{{"n":1}},"from":"pending_review","nonce":"{nonce}",'
            '"note":"identity checked","request":"00000000-0000-4000-8000-000000000001","to":"processing"}}')
STAFF_CREATED = '{{"action":"staff_created","actor":"staff:ada","data":{{"staff":"rob"}},"from":"","nonce":"{nonce}","note":"","request":null,"to":""}}'


@pytest.mark.parametrize(("about_a_request", "canonical"), [(True, APPROVED), (False, STAFF_CREATED)])
def test_an_entrys_mac_is_the_hmac_sha256_of_its_canonical_json_under_the_audit_key(settings, about_a_request, canonical):
    settings.DSAR_AUDIT_KEY = "k" * 32
    if about_a_request:
        request = Request(pk=uuid.UUID("00000000-0000-4000-8000-000000000001"), status="pending_review")
        entry = audit_entry_new(request, actor="staff:rita", action="approved", from_status="pending_review", to_status="processing",
                                note="identity checked", data={"n": 1})
    else:
        entry = audit_entry_new(None, actor="staff:ada", action="staff_created", data={"staff": "rob"})
    assert len(entry.nonce) == 32
    assert entry.mac == hmac.new(b"k" * 32, canonical.format(nonce=entry.nonce).encode(), hashlib.sha256).hexdigest()


def test_no_two_entries_saying_the_same_have_the_same_mac():
    first, second = (audit_entry_new(None, actor="staff:ada", action="staff_created", data={"staff": "rob"}) for _ in range(2))
    assert first.nonce != second.nonce and first.mac != second.mac


@pytest.mark.django_db(transaction=True)
def test_an_entry_takes_the_databases_time_whatever_the_applications_clock_says():
    request = request_make()
    with time_machine.travel(dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC), tick=False), transaction.atomic():
        entry = audit_record(request_lock(request.pk), actor="system", action="noted")
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        database_now = cursor.fetchone()[0]
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert entry.at == stored.at  # read back by the INSERT itself
    assert dt.timedelta(0) <= database_now - stored.at < dt.timedelta(minutes=5)
    assert stored.at <= stored.seal.sealed_at <= database_now
    assert audit_verify() == []


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, 3])
def test_rows_inserted_together_take_one_statement_and_each_gets_its_id(django_assert_num_queries, count):
    now = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
    emails = [OutgoingEmail(to=[f"dpo{n}@example.com"], template="staff_deadline", context={}, created_at=now, not_before=now)
              for n in range(count)]
    with django_assert_num_queries(1):
        rows_insert(emails)
    assert all(email.pk is not None for email in emails)
    assert sorted(OutgoingEmail.objects.values_list("to", flat=True)) == [[f"dpo{n}@example.com"] for n in range(count)]


# --- The trail in the database (each commit is real, so the seals are written) ----------------------------

UTC = "%Y-%m-%dT%H:%M:%S.%f"  # the seal's times as its hash covers them


@pytest.mark.django_db(transaction=True)
def test_the_audit_trail_cannot_be_edited_deleted_or_truncated_through_the_database():
    request = request_make()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(request=request).update(note="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(request=request).delete()
    for table in ("dsar_auditentry", "dsar_auditseal"):
        with pytest.raises(DatabaseError, match="the audit trail is append-only: TRUNCATE"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {table} CASCADE")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditSeal.objects.filter(entry__request=request).update(hash="0" * 64)
    assert list(AuditEntry.objects.filter(request=request).values_list("note", flat=True)) == [""]
    assert AuditSeal.objects.filter(entry__request=request).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_chain_links_every_entry_to_the_one_before_from_the_genesis_hash():
    for status in ("unverified", "pending_review", "processing"):
        request_make(status=status)
    with transaction.atomic():
        audit_record(None, actor="staff:ada", action="staff_created", data={"staff": "rob"})
    seals = list(AuditSeal.objects.order_by("seq"))
    assert [seal.seq for seal in seals] == [1, 2, 3, 4]
    assert seals[0].prev_hash == "0" * 64 == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(seals))
    assert all(later.sealed_at >= earlier.sealed_at for earlier, later in itertools.pairwise(seals))
    for seal in seals:
        entry = AuditEntry.objects.get(pk=seal.entry_id)
        text = f"{seal.prev_hash}:{entry.pk}:{entry.mac}:{entry.at.strftime(UTC)}:{seal.sealed_at.strftime(UTC)}"
        assert seal.hash == hashlib.sha256(text.encode()).hexdigest()
    assert audit_verify() == []


def _forge(seals: list[AuditSeal]) -> None:
    """Rewrite seals as a forger with database access would (the guards set aside)."""
    with triggers_aside():
        for seal in seals:
            AuditSeal.objects.filter(pk=seal.pk).update(seq=seal.seq, prev_hash=seal.prev_hash, hash=seal.hash)


def _trail_without_the_second_entry() -> list[AuditSeal]:
    for status in ("unverified", "pending_review", "processing", "completed"):
        request_make(status=status)
    seals = list(AuditSeal.objects.order_by("seq"))
    with triggers_aside():
        AuditSeal.objects.filter(pk=seals[1].pk).delete()
        AuditEntry.objects.filter(pk=seals[1].entry_id).delete()
    return [seals[0], *seals[2:]]


@pytest.mark.django_db(transaction=True)
def test_an_entry_removed_with_its_seal_and_the_rest_renumbered_breaks_the_link():
    seals = _trail_without_the_second_entry()
    for seq, seal in enumerate(seals, start=1):
        seal.seq = seq  # no gap left in the numbers: only the hashes show the removal
    _forge(seals)
    assert audit_verify() == [f"entry {seals[1].entry_id}: does not follow the entry before it (one was removed or reordered)"]


@pytest.mark.django_db(transaction=True)
def test_an_entry_removed_with_its_seal_and_the_hashes_rebuilt_leaves_a_gap_in_the_numbers():
    seals = _trail_without_the_second_entry()
    previous = seals[0].hash
    for seal in seals[1:]:  # every later hash recomputed over the shortened chain
        entry = AuditEntry.objects.get(pk=seal.entry_id)
        text = f"{previous}:{entry.pk}:{entry.mac}:{entry.at.strftime(UTC)}:{seal.sealed_at.strftime(UTC)}"
        seal.prev_hash, seal.hash = previous, hashlib.sha256(text.encode()).hexdigest()
        previous = seal.hash
    _forge(seals)
    assert audit_verify() == [f"entry {seals[1].entry_id}: does not follow the entry before it (one was removed or reordered)"]


@pytest.mark.django_db(transaction=True)
def test_a_seal_whose_hash_was_replaced_shows_its_entry_moved_or_replaced():
    for status in ("unverified", "pending_review"):
        request_make(status=status)
    last = AuditSeal.objects.order_by("seq").last()
    last.hash = "f" * 64  # the links before it hold: only its own hash is wrong
    _forge([last])
    assert audit_verify() == [f"entry {last.entry_id}: does not follow the entry before it (it was moved or replaced, or its time changed)"]


@pytest.mark.django_db(transaction=True)
def test_an_entry_is_sealed_only_when_its_transaction_commits():
    request = request_make()
    with transaction.atomic():
        entry = audit_record(request_lock(request.pk), actor="system", action="noted")
        assert not AuditSeal.objects.filter(entry=entry).exists()
    assert AuditSeal.objects.filter(entry=entry).exists()
    with pytest.raises(RuntimeError, match="abandoned"), transaction.atomic():
        rolled_back = audit_record(request_lock(request.pk), actor="system", action="noted")
        raise RuntimeError("the change is abandoned")
    assert not AuditEntry.objects.filter(pk=rolled_back.pk).exists()
    assert not AuditSeal.objects.filter(entry_id=rolled_back.pk).exists()
    assert audit_verify() == []


@pytest.mark.django_db(transaction=True)
def test_writers_committing_at_once_get_one_unbroken_chain():
    requests = [request_make() for _ in range(8)]
    start = threading.Barrier(len(requests))

    def write(request) -> None:
        start.wait()
        try:
            for _ in range(15):
                with transaction.atomic():
                    audit_record(request_lock(request.pk), actor="system", action="noted")
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(request,)) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert AuditSeal.objects.count() == AuditEntry.objects.count() == 8 + 8 * 15
    assert audit_verify() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("status", "action", "body"),
    [
        ("unverified", "approve", {}),
        ("completed", "approve", {}),
        ("processing", "deny", {"reason": "no"}),
        ("denied", "deny", {"reason": "no"}),
        ("denied", "approve", {}),
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
    assert response.json()["error"] == "illegal_transition"
    assert Request.objects.get(pk=request.pk).status == status
    assert AuditEntry.objects.filter(request=request).count() == 1
