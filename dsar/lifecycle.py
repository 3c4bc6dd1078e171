"""The request state machine and its audit trail: the one place that changes a request's status.

Every transition is checked against TRANSITIONS and written to the audit trail in the same
transaction as the status change. The trail is append-only (a database trigger refuses updates and
deletes) and hash-chained: each entry's hash covers the previous entry's hash, so an edited,
removed or reordered entry breaks the chain (`audit_verify`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from .models import AuditEntry, Request, Status

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

GENESIS_HASH = "0" * 64
# Every writer of the audit trail takes this lock so the chain has one order.
_AUDIT_LOCK_KEY = 0x44534152  # "DSAR"


class IllegalTransition(Exception):
    """An action the state machine does not allow in the request's status."""

    def __init__(self, request: Request, action: str) -> None:
        self.from_status, self.action = request.status, action
        super().__init__(f"a {request.status} request cannot be {action}")


def transition_target(from_status: str, action: str) -> str | None:
    """The status `action` leads to from `from_status`, or None when it is not allowed."""
    return TRANSITIONS.get(action, {}).get(from_status)


def request_lock(request_id: Any) -> Request:
    """Lock a request's row for the rest of the transaction. Call inside `transaction.atomic`."""
    return Request.objects.select_for_update().get(pk=request_id)


def request_transition(
    request: Request,
    action: str,
    *,
    actor: str,
    note: str = "",
    data: dict[str, Any] | None = None,
    update_fields: Iterable[str] = (),
) -> AuditEntry:
    """Apply `action` to a locked request, saving `update_fields` too, and audit it in the same
    transaction. Raises IllegalTransition when the action is not allowed in its status."""
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


def audit_record(
    request: Request,
    *,
    actor: str,
    action: str,
    from_status: str = "",
    to_status: str = "",
    note: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry to the audit trail, chained to the one before. Call inside a transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit entries are written inside the transaction of the change they record")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_LOCK_KEY])
    previous = AuditEntry.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS_HASH
    entry = AuditEntry(
        request_id=request.pk,
        at=timezone.now(),
        actor=actor,
        action=action,
        from_status=from_status or request.status,
        to_status=to_status or request.status,
        note=note,
        data=data or {},
        prev_hash=previous,
    )
    entry.hash = audit_hash(entry)
    entry.save(force_insert=True)
    return entry


def audit_hash(entry: AuditEntry) -> str:
    """The hash of an entry: its content and the previous entry's hash."""
    body = json.dumps(
        {
            "request": str(entry.request_id),
            "at": entry.at.isoformat(),
            "actor": entry.actor,
            "action": entry.action,
            "from": entry.from_status,
            "to": entry.to_status,
            "note": entry.note,
            "data": entry.data,
            "prev": entry.prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def audit_verify() -> list[str]:
    """Walk the whole trail in order; return a description of every break (empty when intact)."""
    problems: list[str] = []
    previous = GENESIS_HASH
    for entry in AuditEntry.objects.order_by("id").iterator(chunk_size=2000):
        if entry.prev_hash != previous:
            problems.append(f"entry {entry.id}: does not follow the entry before it (one was removed or reordered)")
        if audit_hash(entry) != entry.hash:
            problems.append(f"entry {entry.id}: its content does not match its hash (it was edited)")
        previous = entry.hash
    return problems
