"""Threat: someone with database access rewrites history. The trail is append-only for every role
but a superuser's or the owner's; each entry carries a MAC under a key the database never holds;
the database sets the times; and verify_audit detects an edited, forged, deleted, reordered or
re-timed entry, and a chain that lost what was shipped off the database."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, IntegrityError, connection
from django.utils import timezone

from dsar import jobs
from dsar.models import AuditEntry, AuditSeal

from ..factories import request_make
from ..support.audit import acting_as, role_with, triggers_aside

pytestmark = pytest.mark.django_db(transaction=True)


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


def _columns(entry: AuditEntry) -> dict:
    return {"request_id": entry.request_id, "actor": entry.actor, "action": entry.action, "from_status": entry.from_status,
            "to_status": entry.to_status, "note": entry.note, "data": json.dumps(entry.data)}


def _insert(cursor, **columns) -> int:
    names = ", ".join(columns)
    cursor.execute(f"INSERT INTO dsar_auditentry ({names}) VALUES ({', '.join(['%s'] * len(columns))}) RETURNING id",
                   list(columns.values()))
    return cursor.fetchone()[0]


# --- Edits, removals and reorders by someone who can set the triggers aside --------------------------------


def test_an_edited_entry_is_detected(trail, capsys):
    with triggers_aside():
        AuditEntry.objects.filter(pk=trail[1].pk).update(note="nothing to see")
    assert f"entry {trail[1].pk}: its content does not match its MAC" in _broken(capsys)


def test_a_deleted_entry_is_detected(trail, capsys):
    with triggers_aside():
        AuditEntry.objects.filter(pk=trail[1].pk).delete()
    assert f"entry {trail[1].pk}: is missing from the trail" in _broken(capsys)


def test_an_entry_deleted_with_its_seal_is_detected(trail, capsys):
    with triggers_aside():
        AuditSeal.objects.filter(entry_id=trail[1].pk).delete()
        AuditEntry.objects.filter(pk=trail[1].pk).delete()
    assert f"entry {trail[2].pk}: does not follow the entry before it" in _broken(capsys)


def test_reordered_entries_are_detected(trail, capsys):
    first, second = trail[1], trail[2]
    with triggers_aside() as cursor:
        cursor.execute("UPDATE dsar_auditentry SET id = -1 WHERE id = %s", [first.pk])
        cursor.execute("UPDATE dsar_auditentry SET id = %s WHERE id = %s", [first.pk, second.pk])
        cursor.execute("UPDATE dsar_auditentry SET id = %s WHERE id = -1", [second.pk])
    assert "does not follow the entry before it" in _broken(capsys)


def test_an_entry_written_around_the_seal_is_detected(trail, capsys):
    forged = trail[0]
    with triggers_aside():
        forged.pk, forged.note, forged.mac = None, "approved by nobody", "a" * 64
        forged.save(force_insert=True)
    assert f"entry {forged.pk}: was never sealed into the chain" in _broken(capsys)


def test_an_intact_trail_passes_and_says_what_it_compared(trail, capsys, audit_heads):
    call_command("verify_audit")
    head = AuditSeal.objects.order_by("-seq").first().hash
    out = capsys.readouterr().out
    assert f"audit trail intact: {len(trail)} entries; head {head}" in out
    assert f"compared with no head shipped yet to compare with ({audit_heads / 'heads.jsonl'})" in out
    assert "have no MAC" not in out


# --- A role with the application's grants, and no key --------------------------------------------------------


def test_a_role_granted_update_cannot_rewrite_the_trail_by_setting_pgtrigger_ignore(trail):
    """pgtrigger's functions stepped aside for a session naming them in `pgtrigger.ignore`; the
    audit triggers read no setting, whoever sets what."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT string_agg(tgname, ',') FROM pg_trigger WHERE tgrelid IN ('dsar_auditentry'::regclass, "
                       "'dsar_auditseal'::regclass) AND NOT tgisinternal")
        every_trigger = "{" + cursor.fetchone()[0] + "}"
    statements = [f"UPDATE dsar_auditentry SET note = 'rewritten' WHERE id = {trail[1].pk}",
                  f"DELETE FROM dsar_auditentry WHERE id = {trail[1].pk}",
                  f"UPDATE dsar_auditseal SET hash = repeat('0', 64) WHERE entry_id = {trail[1].pk}",
                  f"DELETE FROM dsar_auditseal WHERE entry_id = {trail[1].pk}",
                  "TRUNCATE dsar_auditentry", "TRUNCATE dsar_auditseal"]
    with role_with("SELECT, INSERT, UPDATE, DELETE, TRUNCATE") as role:
        for statement in statements:
            with pytest.raises(DatabaseError, match="the audit trail is append-only"), acting_as(role) as cursor:
                cursor.execute("SELECT set_config('pgtrigger.ignore', %s, true)", [every_trigger])
                cursor.execute(statement)
    assert AuditEntry.objects.get(pk=trail[1].pk).note == trail[1].note
    assert AuditSeal.objects.count() == AuditEntry.objects.count() == 4


def test_an_entry_without_a_mac_is_refused_even_with_a_valid_content_hash(trail):
    """Before the key, the content hash was plain SHA-256 of a public format: anyone allowed to
    insert could compute it, and the trigger sealed their entry."""
    request = trail[0].request_id
    at = "2020-01-02T03:04:05+00:00"
    canonical = ('{"action":"approved","actor":"staff:rita","at":"2020-01-02T03:04:05+00:00","data":{},"from":"pending_review",'
                 f'"note":"identity checked","request":"{request}","to":"processing"}}')
    with role_with("SELECT, INSERT") as role:
        with pytest.raises(DatabaseError, match="an audit entry needs its MAC"), acting_as(role) as cursor:
            _insert(cursor, request_id=request, at=at, actor="staff:rita", action="approved", from_status="pending_review",
                    to_status="processing", note="identity checked", data="{}",
                    content_hash=hashlib.sha256(canonical.encode()).hexdigest())
    assert AuditEntry.objects.count() == 4


def test_a_backdated_entry_from_a_role_without_the_key_gets_the_databases_time_and_fails_verification(trail, capsys):
    before = timezone.now()
    with role_with("SELECT, INSERT") as role, acting_as(role) as cursor:
        forged = _insert(cursor, request_id=trail[0].request_id, at="2020-01-02T03:04:05+00:00", actor="staff:rita",
                         action="approved", from_status="pending_review", to_status="processing", note="identity checked",
                         data="{}", content_hash="", nonce="0" * 32, mac="f" * 64)
    stored = AuditEntry.objects.get(pk=forged)
    assert stored.at >= before and stored.seal.sealed_at >= stored.at  # sealed, with the database's time
    assert f"entry {forged}: its content does not match its MAC (it was edited, or written without the audit key)" in _broken(capsys)


def test_a_copy_of_a_genuine_entry_is_refused(trail):
    original = trail[1]
    with role_with("SELECT, INSERT") as role:
        with pytest.raises(IntegrityError, match="audit_mac_unique"), acting_as(role) as cursor:
            _insert(cursor, **_columns(original), content_hash="", nonce=original.nonce, mac=original.mac)
    assert AuditEntry.objects.count() == 4


# --- Times ------------------------------------------------------------------------------------------------------


def _rehash(seals: list[AuditSeal]) -> None:
    """Recompute the seals' hashes in order, as a forger who knows the formula would (the
    triggers set aside): hash = SHA-256 of "prev:entry id:MAC:entry time:seal time", times in UTC."""
    utc = "%Y-%m-%dT%H:%M:%S.%f"
    previous = AuditSeal.objects.get(seq=seals[0].seq - 1).hash
    with triggers_aside():
        for seal in seals:
            entry = AuditEntry.objects.get(pk=seal.entry_id)
            text = f"{previous}:{entry.pk}:{entry.mac}:{entry.at.strftime(utc)}:{seal.sealed_at.strftime(utc)}"
            rehashed = hashlib.sha256(text.encode()).hexdigest()
            AuditSeal.objects.filter(pk=seal.pk).update(prev_hash=previous, hash=rehashed, sealed_at=seal.sealed_at)
            previous = rehashed


def test_a_seal_moved_back_in_time_and_the_chain_rehashed_is_detected(trail, capsys):
    """Whoever sets the triggers aside can recompute the chain's unkeyed hashes; the times along
    it still may not go back."""
    seals = list(AuditSeal.objects.order_by("seq"))
    moved = seals[1]
    moved.sealed_at = seals[0].sealed_at - dt.timedelta(hours=1)
    with triggers_aside():
        AuditEntry.objects.filter(pk=moved.entry_id).update(at=moved.sealed_at - dt.timedelta(seconds=1))
    _rehash(seals[1:])
    with pytest.raises(CommandError, match="broken in 1 places"):
        call_command("verify_audit")
    assert capsys.readouterr().err.splitlines() == [
        f"entry {moved.entry_id}: was sealed before the entry before it (a time was changed, or the database's clock went back)"]


def test_an_entry_dated_after_its_seal_is_detected(trail, capsys):
    last = AuditSeal.objects.order_by("seq").last()
    with triggers_aside():
        AuditEntry.objects.filter(pk=last.entry_id).update(at=last.sealed_at + dt.timedelta(days=1))
    assert f"entry {last.entry_id}: is dated after it was sealed (its time was changed)" in _broken(capsys)


# --- What a chain cannot show by itself: the loss of its newest entries ---------------------------------------


def test_truncating_both_tables_no_longer_passes_as_an_empty_intact_trail(trail, capsys):
    jobs.job_run("audit_head_ship")
    newest = AuditSeal.objects.order_by("-seq").first()
    with triggers_aside() as cursor:
        cursor.execute("TRUNCATE dsar_auditentry, dsar_auditseal")
    problems = _broken(capsys)
    assert "the chain does not hold the head shipped at " in problems
    assert f"(seq 4, hash {newest.hash}): entries were removed, rolled back or rewritten since" in problems


def test_the_newest_entries_removed_with_their_seals_are_detected_by_the_shipped_head(trail, capsys):
    jobs.job_run("audit_head_ship")
    last = AuditSeal.objects.order_by("-seq").first()
    with triggers_aside():
        AuditSeal.objects.filter(pk=last.pk).delete()
        AuditEntry.objects.filter(pk=last.entry_id).delete()
    assert f"(seq 4, hash {last.hash}): entries were removed, rolled back or rewritten since" in _broken(capsys)


def test_a_rewritten_chain_that_forks_from_the_shipped_head_is_detected(trail, capsys):
    jobs.job_run("audit_head_ship")
    last = AuditSeal.objects.order_by("-seq").first()
    with triggers_aside():
        AuditSeal.objects.filter(pk=last.pk).update(hash="e" * 64)
    assert f"(seq 4, hash {last.hash}): entries were removed, rolled back or rewritten since" in _broken(capsys)


def test_an_altered_head_file_is_detected(trail, capsys, audit_heads):
    jobs.job_run("audit_head_ship")
    path = audit_heads / "heads.jsonl"
    head = json.loads(path.read_text())
    head["seq"], head["hash"] = 1, AuditSeal.objects.get(seq=1).hash  # an older head of the same chain, passed off as the newest
    path.write_text(json.dumps(head) + "\n")
    assert f"the newest head in {path} does not carry the audit key's MAC (the file was altered)" in _broken(capsys)


@pytest.mark.parametrize("last_line", ["not json at all", '{"seq": 4, "hash": "abc"}', '["a", "list"]'])
def test_a_head_file_whose_newest_line_is_not_a_signed_head_is_detected(trail, capsys, audit_heads, last_line):
    jobs.job_run("audit_head_ship")
    path = audit_heads / "heads.jsonl"
    path.write_text(path.read_text() + last_line + "\n")
    assert f"the newest head in {path} does not carry the audit key's MAC (the file was altered)" in _broken(capsys)


@pytest.fixture
def lenient_umask():
    """The umask most hosts run with, which lets anyone read a new file (the test run's own lets no one)."""
    was = os.umask(0o022)
    yield
    os.umask(was)


def test_heads_are_shipped_to_a_file_only_the_products_user_reads_in_folders_made_as_needed(trail, settings, tmp_path, lenient_umask):
    settings.DSAR_AUDIT_HEAD_DIR = tmp_path / "audit" / "heads"  # neither folder exists yet
    jobs.job_run("audit_head_ship")
    path = tmp_path / "audit" / "heads" / "heads.jsonl"
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    [line] = path.read_text().splitlines()
    assert list(json.loads(line)) == ["hash", "mac", "sealed_at", "seq", "shipped_at"]  # each line written the same way, keys sorted
