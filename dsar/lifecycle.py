"""The request state machine and its audit trail: the one place that changes a request's status.

Every transition is checked against TRANSITIONS and written to the audit trail in the same
transaction as the status change. The trail is append-only (database triggers refuse updates,
deletes and truncation) and hash-chained: the application stores each entry's content hash, and
when the transaction commits a database trigger seals the entry into the chain (AuditSeal), whose
every hash covers the one before. So an edited, removed, reordered or replaced entry breaks the
chain (`audit_verify`), and no writer ever holds a lock across a round trip to the application.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from .models import GENESIS_HASH, AuditEntry, AuditSeal, Request, Status

# action -> {from status: to status}. The action is also what the audit entry records.
TRANSITIONS: dict[str, dict[str, str]] = {
    "verified": {Status.UNVERIFIED: Status.PENDING_REVIEW},
    "auto_approved": {Status.UNVERIFIED: Status.PROCESSING},
    "referred": {Status.UNVERIFIED: Status.REFERRED},
    "canceled": {Status.UNVERIFIED: Status.CANCELED, Status.PENDING_REVIEW: Status.CANCELED},
    "approved": {Status.PENDING_REVIEW: Status.PROCESSING},
    "denied": {Status.PENDING_REVIEW: Status.DENIED},
    "completed": {Status.PROCESSING: Status.COMPLETED},
    "failed": {Status.PROCESSING: Status.FAILED},
    "retried": {Status.FAILED: Status.PROCESSING},
    "expired": {Status.COMPLETED: Status.EXPIRED},  # the export's time is up
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
    audit it in the same transaction. Raises IllegalTransition when the status does not allow it."""
    to = transition_target(request.status, action)
    if to is None:
        raise IllegalTransition(request, action)
    from_status = request.status
    request.status = to
    update_fields = ["status", "updated_at", *update_fields]
    if to in FINAL:
        request.closed_at = timezone.now()
        update_fields.append("closed_at")
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
    """An unsaved audit entry with its content hash, about `request` (a status left out is its
    current one) or, with None, about staff management."""
    entry = AuditEntry(
        request=request,
        at=timezone.now(),
        actor=actor,
        action=action,
        from_status=from_status or (request.status if request else ""),
        to_status=to_status or (request.status if request else ""),
        note=note,
        data=data or {},
    )
    entry.content_hash = audit_content_hash(entry)
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


def audit_content_hash(entry: AuditEntry) -> str:
    """SHA-256 of what an entry says (everything but its id and its place in the chain)."""
    body = json.dumps(
        {
            "request": str(entry.request_id) if entry.request_id else None,
            "at": entry.at.isoformat(),
            "actor": entry.actor,
            "action": entry.action,
            "from": entry.from_status,
            "to": entry.to_status,
            "note": entry.note,
            "data": entry.data,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def audit_seal_hash(prev_hash: str, entry_id: int, content_hash: str) -> str:
    """The seal's hash, as the audit_seal trigger computes it (dsar/models.py)."""
    return hashlib.sha256(f"{prev_hash}:{entry_id}:{content_hash}".encode()).hexdigest()


def audit_verify(*, batch: int = 2000) -> list[str]:
    """Walk the whole chain in order; return a description of every break (empty when intact)."""
    problems: list[str] = []
    previous, expected_seq = GENESIS_HASH, 1
    seals = AuditSeal.objects.order_by("seq").values_list("seq", "entry_id", "prev_hash", "hash").iterator(chunk_size=batch)
    while rows := list(itertools.islice(seals, batch)):
        entries = AuditEntry.objects.in_bulk([entry_id for _, entry_id, _, _ in rows])
        for seq, entry_id, prev_hash, seal_hash in rows:
            entry = entries.get(entry_id)
            if seq != expected_seq or prev_hash != previous:
                problems.append(f"entry {entry_id}: does not follow the entry before it (one was removed or reordered)")
            if entry is None:
                problems.append(f"entry {entry_id}: is missing from the trail (it was deleted)")
            elif audit_content_hash(entry) != entry.content_hash:
                problems.append(f"entry {entry_id}: its content does not match its hash (it was edited)")
            elif audit_seal_hash(prev_hash, entry_id, entry.content_hash) != seal_hash:
                problems.append(f"entry {entry_id}: does not follow the entry before it (it was moved or replaced)")
            previous, expected_seq = seal_hash, seq + 1
    for entry_id in AuditEntry.objects.filter(seal__isnull=True).values_list("id", flat=True):
        problems.append(f"entry {entry_id}: was never sealed into the chain (written around the trigger)")
    return problems
