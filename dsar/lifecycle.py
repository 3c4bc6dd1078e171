"""The request state machine and its audit trail: the one place that changes a request's status.

Every transition is checked against TRANSITIONS and written to the audit trail in the same
transaction as the status change. The trail is append-only (database triggers refuse updates,
deletes and truncation, to every role and whatever its session has set) and chained: the
application signs each entry with a MAC under DSAR_AUDIT_KEY, a key the database never holds; the
database sets the entry's time, and when the transaction commits a trigger seals it into the chain
(AuditSeal), each seal covering the one before, the entry's MAC and time, and its own time. So an
edited, forged, removed, reordered or re-timed entry breaks the chain (`audit_verify`), and no
writer ever holds a lock across a round trip to the application. A scheduled job ships the newest
seal, with a MAC, off the database, so the loss of the newest entries shows too (`audit_head_check`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from .models import GENESIS_HASH, AuditEntry, AuditSeal, Request, Status

# action -> {from status: to status}. The action is also what the audit entry records.
TRANSITIONS: dict[str, dict[str, str]] = {
    "verified": {Status.UNVERIFIED: Status.PENDING_REVIEW},
    "auto_approved": {Status.UNVERIFIED: Status.PROCESSING},
    "referred": {Status.UNVERIFIED: Status.REFERRED},
    "canceled": {Status.UNVERIFIED: Status.CANCELED, Status.PENDING_REVIEW: Status.CANCELED, Status.AWAITING_SUBJECT: Status.CANCELED},
    "approved": {Status.PENDING_REVIEW: Status.PROCESSING},
    "denied": {Status.PENDING_REVIEW: Status.DENIED, Status.AWAITING_SUBJECT: Status.DENIED},
    "completed": {Status.PROCESSING: Status.COMPLETED},
    "failed": {Status.PROCESSING: Status.FAILED},
    "retried": {Status.FAILED: Status.PROCESSING},
    "expired": {Status.COMPLETED: Status.EXPIRED},  # the export's time is up
    "asked": {Status.PENDING_REVIEW: Status.AWAITING_SUBJECT},  # staff need more information from the person
    "answered": {Status.AWAITING_SUBJECT: Status.PENDING_REVIEW},  # the person answered: back to review
}

FINAL = frozenset({Status.COMPLETED, Status.DENIED, Status.CANCELED, Status.EXPIRED, Status.REFERRED})


class IllegalTransition(Exception):
    """An action the state machine does not allow in the request's status."""

    def __init__(self, request: Request, action: str) -> None:
        self.from_status, self.action = request.status, action
        super().__init__(f"a {request.status} request cannot be {action}")


def transition_target(from_status: str, action: str) -> str | None:
    """The status `action` leads to from `from_status`, or None when it is not allowed."""
    return TRANSITIONS.get(action, {}).get(from_status)


def request_transition(
    request: Request,
    action: str,
    *,
    actor: str,
    note: str = "",
    data: dict[str, Any] | None = None,
    update_fields: Iterable[str] = (),
) -> AuditEntry:
    """Apply `action` to a request locked by `locks.request_lock`, saving `update_fields` too, and
    audit it in the same transaction. Raises IllegalTransition when the status does not allow it.
    A request leaving awaiting_subject with its deadline paused has the deadline run again, moved
    later by the time it stood still, and the audit entry records the move (`due_from`, `due_to`).
    A request closed after its due date keeps the deadline it missed (`overdue_since`), though the
    deadline watch, which records it otherwise, had not run since."""
    to = transition_target(request.status, action)
    if to is None:
        raise IllegalTransition(request, action)
    from_status = request.status
    request.status = to
    update_fields = ["status", "updated_at", *update_fields]
    if request.deadline_paused_at is not None and to != Status.AWAITING_SUBJECT:
        due_from = request.due_at
        request.due_at += timezone.now() - request.deadline_paused_at
        request.deadline_paused_at = None
        update_fields += ["due_at", "deadline_paused_at"]
        data = {**(data or {}), "due_from": due_from.isoformat(), "due_to": request.due_at.isoformat()}
    if to in FINAL:
        request.closed_at = timezone.now()
        update_fields.append("closed_at")
        if from_status not in FINAL and request.due_at is not None and request.due_at < request.closed_at and request.overdue_since is None:
            request.overdue_since = request.due_at
            update_fields.append("overdue_since")
    request.save(update_fields=update_fields)
    return audit_record(request, actor=actor, action=action, from_status=from_status, to_status=to, note=note, data=data)


def audit_entry_new(
    request: Request | None,
    *,
    actor: str,
    action: str,
    from_status: str = "",
    to_status: str = "",
    note: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEntry:
    """An unsaved audit entry with its MAC, about `request` (a status left out is its current one)
    or, with None, about staff management. Its `at` is a placeholder: the database sets its own
    clock's time as the row is written (a `save` reads it back in the same statement)."""
    entry = AuditEntry(
        request=request,
        at=timezone.now(),
        actor=actor,
        action=action,
        from_status=from_status or (request.status if request else ""),
        to_status=to_status or (request.status if request else ""),
        note=note,
        data=data or {},
        nonce=secrets.token_hex(16),
    )
    entry.mac = audit_entry_mac(entry)
    return entry


def audit_record(request: Request | None, *, actor: str, action: str, **details: Any) -> AuditEntry:
    """Append one entry to the audit trail, made by `audit_entry_new` (whose keyword arguments
    `details` are: from_status, to_status, note, data). Call inside the transaction of the change it
    records: the database seals it into the chain when that commits."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit entries are written inside the transaction of the change they record")
    entry = audit_entry_new(request, actor=actor, action=action, **details)
    entry.save(force_insert=True)
    return entry


def rows_insert(rows: Sequence[models.Model]) -> None:
    """Insert new rows of one model in one statement (`bulk_create`), each given its id."""
    if rows:
        type(rows[0]).objects.bulk_create(rows)


def _audit_body(entry: AuditEntry, **extra: str) -> bytes:
    """What an entry says, as canonical JSON (sorted keys, no spaces), with `extra` keys."""
    said = {"request": str(entry.request_id) if entry.request_id else None, "actor": entry.actor, "action": entry.action,
            "from": entry.from_status, "to": entry.to_status, "note": entry.note, "data": entry.data, **extra}
    return json.dumps(said, sort_keys=True, separators=(",", ":")).encode()


def audit_entry_mac(entry: AuditEntry) -> str:
    """HMAC-SHA256, under DSAR_AUDIT_KEY, of what an entry says and its nonce: everything but its
    id, its time (the database's, bound by the seal) and its place in the chain. Without the key,
    nobody can write an entry that verifies, nor change one."""
    return hmac.new(settings.DSAR_AUDIT_KEY.encode(), _audit_body(entry, nonce=entry.nonce), hashlib.sha256).hexdigest()


def audit_content_hash(entry: AuditEntry) -> str:
    """SHA-256 of what an entry written before the trail was keyed says (everything but its id and
    its place in the chain)."""
    return hashlib.sha256(_audit_body(entry, at=entry.at.isoformat())).hexdigest()


def _utc(at: dt.datetime | None) -> str:
    """A time as the seal trigger writes it into a hash: UTC to the microsecond, or '' for none."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") if at else ""


def audit_seal_hash(prev_hash: str, entry_id: int, mac: str, at: dt.datetime, sealed_at: dt.datetime) -> str:
    """A seal's hash, as the seal trigger computes it (migration 0012): the link to the seal
    before, the entry's id, MAC and time, and when it was sealed."""
    return hashlib.sha256(f"{prev_hash}:{entry_id}:{mac}:{_utc(at)}:{_utc(sealed_at)}".encode()).hexdigest()


def audit_seal_hash_unkeyed(prev_hash: str, entry_id: int, content_hash: str) -> str:
    """The hash of a seal made before the trail was keyed: no MAC, no times."""
    return hashlib.sha256(f"{prev_hash}:{entry_id}:{content_hash}".encode()).hexdigest()


def audit_verify(*, batch: int = 2000) -> list[str]:
    """Walk the whole chain in order; return a description of every break (empty when intact).
    Entries from before the trail was keyed are checked by their content hash, and only before
    the first keyed one: after it, an entry or seal of the old kind was written around the key."""
    problems: list[str] = []
    link = _Link()
    seals = AuditSeal.objects.order_by("seq").values_list("seq", "entry_id", "prev_hash", "hash", "sealed_at").iterator(chunk_size=batch)
    while rows := list(itertools.islice(seals, batch)):
        entries = AuditEntry.objects.in_bulk([row[1] for row in rows])
        for seq, entry_id, prev_hash, seal_hash, sealed_at in rows:
            problems.extend(link.follow(entries.get(entry_id), seq, entry_id, prev_hash, seal_hash, sealed_at))
    for entry_id in AuditEntry.objects.filter(seal__isnull=True).values_list("id", flat=True):
        problems.append(f"entry {entry_id}: was never sealed into the chain (written around the trigger)")
    return problems


class _Link:
    """Where the walk along the chain is: the seal it expects next, the last seal's time, and
    whether a keyed seal was seen."""

    def __init__(self) -> None:
        self.previous, self.seq, self.sealed_at, self.keyed = GENESIS_HASH, 1, None, False

    def follow(self, entry: AuditEntry | None, seq: int, entry_id: int, prev_hash: str, seal_hash: str,
               sealed_at: dt.datetime | None) -> list[str]:
        """The problems of one seal and its entry."""
        problems = []
        if seq != self.seq or prev_hash != self.previous:
            problems.append(f"entry {entry_id}: does not follow the entry before it (one was removed or reordered)")
        if entry is None:
            problems.append(f"entry {entry_id}: is missing from the trail (it was deleted)")
        elif sealed_at is None:
            problems.extend(self._unkeyed(entry, prev_hash, seal_hash))
        else:
            problems.extend(self._keyed(entry, prev_hash, seal_hash, sealed_at))
        self.previous, self.seq = seal_hash, seq + 1
        return problems

    def _unkeyed(self, entry: AuditEntry, prev_hash: str, seal_hash: str) -> list[str]:
        if self.keyed or entry.mac:
            return [f"entry {entry.pk}: was sealed the old way after the trail was keyed (written around the seal trigger)"]
        if audit_content_hash(entry) != entry.content_hash:
            return [f"entry {entry.pk}: its content does not match its hash (it was edited)"]
        if audit_seal_hash_unkeyed(prev_hash, entry.pk, entry.content_hash) != seal_hash:
            return [f"entry {entry.pk}: does not follow the entry before it (it was moved or replaced)"]
        return []

    def _keyed(self, entry: AuditEntry, prev_hash: str, seal_hash: str, sealed_at: dt.datetime) -> list[str]:
        problems = []
        if not hmac.compare_digest(audit_entry_mac(entry), entry.mac):
            problems.append(f"entry {entry.pk}: its content does not match its MAC (it was edited, or written without the audit key)")
        elif audit_seal_hash(prev_hash, entry.pk, entry.mac, entry.at, sealed_at) != seal_hash:
            problems.append(f"entry {entry.pk}: does not follow the entry before it (it was moved or replaced, or its time changed)")
        if self.sealed_at is not None and sealed_at < self.sealed_at:
            problems.append(f"entry {entry.pk}: was sealed before the entry before it (a time was changed, or the database's clock went back)")
        if entry.at > sealed_at:
            problems.append(f"entry {entry.pk}: is dated after it was sealed (its time was changed)")
        self.keyed, self.sealed_at = True, sealed_at
        return problems


def audit_unkeyed_count() -> int:
    """How many entries were written before the trail was keyed (they carry no MAC)."""
    return AuditEntry.objects.filter(mac="").count()


# --- The chain's head, shipped off the database --------------------------------------------------------
# A chain shows a change in its middle, never the loss of its newest entries, nor a whole chain
# rebuilt by someone who can rewrite the database. So a job appends the newest seal, with a MAC,
# to a file off the database, and verify_audit checks that the chain still holds the newest one.

HEAD_FILE = "heads.jsonl"


def audit_head_newest() -> dict | None:
    """The newest seal as a head to ship (its seq, hash and sealing time), or None when the trail
    is empty."""
    seal = AuditSeal.objects.order_by("-seq").values("seq", "hash", "sealed_at").first()
    return seal and {"seq": seal["seq"], "hash": seal["hash"], "sealed_at": _utc(seal["sealed_at"])}


def _head_mac(head: dict) -> str:
    message = f"head:{head['seq']}:{head['hash']}:{head['sealed_at']}:{head['shipped_at']}"
    return hmac.new(settings.DSAR_AUDIT_KEY.encode(), message.encode(), hashlib.sha256).hexdigest()


def audit_head_append(head: dict, *, now: dt.datetime) -> Path:
    """Append `head`, the time it is shipped and their MAC as one line to the head file, on the
    disk before this returns; the file's path."""
    directory = Path(settings.DSAR_AUDIT_HEAD_DIR)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / HEAD_FILE
    line = {**head, "shipped_at": _utc(now)}
    line["mac"] = _head_mac(line)
    created = not path.exists()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, (json.dumps(line, sort_keys=True) + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    if created:  # the new file's name must survive a crash too
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    return path


def _last_line(path: Path) -> str | None:
    """The file's last complete line (one cut short by a crash does not count), or None."""
    with path.open("rb") as file:
        file.seek(max(0, path.stat().st_size - 64 * 1024))
        complete = file.read().rpartition(b"\n")[0]
    return complete.rpartition(b"\n")[2].decode(errors="replace") or None


def audit_head_check() -> tuple[str | None, str]:
    """Compare the chain with the newest head shipped: a problem (None when the chain holds it),
    and what was compared, in words."""
    path = Path(settings.DSAR_AUDIT_HEAD_DIR) / HEAD_FILE
    line = _last_line(path) if path.exists() else None
    if line is None:
        return None, f"no head shipped yet to compare with ({path})"
    try:
        head = json.loads(line)
        signed = hmac.compare_digest(_head_mac(head), str(head["mac"]))
    except (ValueError, KeyError, TypeError):
        signed = False
    if not signed:
        return f"the newest head in {path} does not carry the audit key's MAC (the file was altered)", f"the newest line of {path}"
    shipped = f"the head shipped at {head['shipped_at']} (seq {head['seq']}, hash {head['hash']})"
    seal = AuditSeal.objects.filter(seq=head["seq"]).values("hash", "sealed_at").first()
    if seal is None or seal["hash"] != head["hash"] or _utc(seal["sealed_at"]) != head["sealed_at"]:
        return f"the chain does not hold {shipped}: entries were removed, rolled back or rewritten since", f"{shipped}, from {path}"
    return None, f"the chain holds {shipped}, from {path}"
