"""Audit verification (`manage.py verify_audit`): each link of the chain is checked on its own.

A seal's place in the chain is two facts, its sequence number and the previous seal's hash; someone
covering their tracks may keep one right and not the other, and each alone must give them away.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor

from dsar.lifecycle import audit_record
from dsar.models import AuditEntry, AuditSeal

from ..factories import request_make
from ..support.audit import triggers_aside

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def trail() -> list[AuditEntry]:
    for email in ("ann@example.com", "bob@example.com", "cai@example.com", "dee@example.com"):
        request_make(email=email)
    call_command("verify_audit")
    return list(AuditEntry.objects.order_by("seal__seq"))


def problems(capsys) -> tuple[str, list[str]]:
    with pytest.raises(CommandError) as broken:
        call_command("verify_audit")
    return str(broken.value), capsys.readouterr().err.splitlines()


def test_a_removal_hidden_by_renumbering_the_seals_after_it_is_detected(trail, capsys):
    removed, following = trail[1], trail[2]
    with triggers_aside() as cursor:
        cursor.execute("DELETE FROM dsar_auditseal WHERE entry_id = %s", [removed.pk])
        cursor.execute("DELETE FROM dsar_auditentry WHERE id = %s", [removed.pk])
        # seq 3 and 4 become 2 and 3, through negative numbers: seq is unique at every row
        cursor.execute("UPDATE dsar_auditseal SET seq = -seq WHERE seq > 2")
        cursor.execute("UPDATE dsar_auditseal SET seq = -seq - 1 WHERE seq < 0")
    assert list(AuditSeal.objects.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3]  # no gap left
    assert problems(capsys) == (
        "the audit trail is broken in 1 places",
        [f"entry {following.pk}: does not follow the entry before it (one was removed or reordered)"],
    )


def test_a_gap_in_the_sequence_is_detected_even_where_the_hashes_still_link(trail, capsys):
    last = trail[-1]
    with triggers_aside():
        AuditSeal.objects.filter(entry=last).update(seq=9)
    assert problems(capsys) == (
        "the audit trail is broken in 1 places",
        [f"entry {last.pk}: does not follow the entry before it (one was removed or reordered)"],
    )


# --- Entries written before the trail was keyed ----------------------------------------------------------------

FILED = '{{"action":"filed","actor":"subject","at":"2026-03-01T09:30:00+00:00","data":{{}},"from":"","note":"{note}","request":null,"to":""}}'


def test_entries_written_before_the_key_are_migrated_and_still_verify_as_unkeyed(capsys):
    """A database with a trail migrates; its entries keep their SHA-256 hashes and old seals, are
    reported as unkeyed, and an edit to one still shows."""
    executor = MigrationExecutor(connection)
    before = [("dsar", "0011_staff_token_expiry")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("dsar", "AuditEntry")
    for note in ("one", "two"):  # each commits on its own, and the old trigger seals it
        old.objects.create(at=dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC), actor="subject", action="filed", note=note, data={},
                           content_hash=hashlib.sha256(FILED.format(note=note).encode()).hexdigest())
    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    with transaction.atomic():
        audit_record(None, actor="staff:ada", action="staff_created", data={"staff": "rob"})
    call_command("verify_audit")
    head = AuditSeal.objects.get(seq=3).hash
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"audit trail intact: 3 entries; head {head}"
    assert out[2] == "2 entries from before the trail was keyed have no MAC: their hashes show an edit, not a forgery"
    first = AuditSeal.objects.get(seq=1).entry_id
    with triggers_aside():
        AuditEntry.objects.filter(pk=first).update(note="rewritten")
    assert problems(capsys) == ("the audit trail is broken in 1 places", [f"entry {first}: its content does not match its hash (it was edited)"])


def test_an_unkeyed_entry_sealed_after_keyed_ones_is_detected(trail, capsys):
    """An entry of the old kind, with a hash anyone can compute and a seal of the old kind, written
    around the triggers after the trail was keyed."""
    newest = AuditSeal.objects.order_by("-seq").first()
    content_hash = hashlib.sha256(FILED.format(note="forged").encode()).hexdigest()
    with triggers_aside() as cursor:
        cursor.execute("INSERT INTO dsar_auditentry (at, actor, action, from_status, to_status, note, data, content_hash, nonce, mac) "
                       "VALUES ('2026-03-01T09:30:00+00:00', 'subject', 'filed', '', '', 'forged', '{}', %s, '', '') RETURNING id",
                       [content_hash])
        forged = cursor.fetchone()[0]
        cursor.execute("INSERT INTO dsar_auditseal (entry_id, seq, prev_hash, hash) VALUES (%s, %s, %s, %s)",
                       [forged, newest.seq + 1, newest.hash, hashlib.sha256(f"{newest.hash}:{forged}:{content_hash}".encode()).hexdigest()])
    assert problems(capsys) == ("the audit trail is broken in 1 places",
                                [f"entry {forged}: was sealed the old way after the trail was keyed (written around the seal trigger)"])
