"""Threat: someone with database access rewrites history. The trail is append-only for the
application, and verify_audit detects an edited, deleted or reordered entry."""

from __future__ import annotations

import pgtrigger
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from dsar.models import AuditEntry, AuditSeal

from ..factories import request_make

pytestmark = pytest.mark.django_db(transaction=True)
TRIGGER = "dsar.AuditEntry:audit_append_only"
SEAL_TRIGGER = "dsar.AuditSeal:seal_append_only"


@pytest.fixture
def trail():
    for status in ("unverified", "pending_review", "processing", "completed"):
        request_make(status=status)
    call_command("verify_audit")
    return list(AuditEntry.objects.order_by("id"))


def _broken(capsys) -> str:
    with pytest.raises(CommandError):
        call_command("verify_audit")
    return capsys.readouterr().err


def test_an_edited_entry_is_detected(trail, capsys):
    with pgtrigger.ignore(TRIGGER):
        AuditEntry.objects.filter(pk=trail[1].pk).update(note="nothing to see")
    assert f"entry {trail[1].pk}: its content does not match its hash" in _broken(capsys)


def test_a_deleted_entry_is_detected(trail, capsys):
    with pgtrigger.ignore(TRIGGER):
        AuditEntry.objects.filter(pk=trail[1].pk).delete()
    assert f"entry {trail[1].pk}: is missing from the trail" in _broken(capsys)


def test_an_entry_deleted_with_its_seal_is_detected(trail, capsys):
    with pgtrigger.ignore(TRIGGER, SEAL_TRIGGER):
        AuditSeal.objects.filter(entry_id=trail[1].pk).delete()
        AuditEntry.objects.filter(pk=trail[1].pk).delete()
    assert f"entry {trail[2].pk}: does not follow the entry before it" in _broken(capsys)


def test_reordered_entries_are_detected(trail, capsys):
    first, second = trail[1], trail[2]
    with pgtrigger.ignore(TRIGGER), connection.cursor() as cursor:
        cursor.execute("UPDATE dsar_auditentry SET id = -1 WHERE id = %s", [first.pk])
        cursor.execute("UPDATE dsar_auditentry SET id = %s WHERE id = %s", [first.pk, second.pk])
        cursor.execute("UPDATE dsar_auditentry SET id = %s WHERE id = -1", [second.pk])
    assert "does not follow the entry before it" in _broken(capsys)


def test_an_entry_written_around_the_seal_is_detected(trail, capsys):
    forged = trail[0]
    with pgtrigger.ignore("dsar.AuditEntry:audit_seal"), transaction.atomic():
        forged.pk, forged.note = None, "approved by nobody"
        forged.save(force_insert=True)
    assert f"entry {forged.pk}: was never sealed into the chain" in _broken(capsys)


def test_an_intact_trail_passes(trail, capsys):
    call_command("verify_audit")
    head = AuditSeal.objects.order_by("-seq").first().hash
    assert f"audit trail intact: {len(trail)} entries; head {head}" in capsys.readouterr().out
