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

from django.db import DatabaseError, models, transaction
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.models.sql import InsertQuery, UpdateQuery
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


def request_lock(request_id: Any) -> Request:
    """Lock a request's row for the rest of the transaction, and return it. Call inside
    `transaction.atomic`. The statement is written out (a raw query builds the model without the
    ORM's compiler, a tenth of verifying a request); a malformed id is refused as the ORM would."""
    pk = Request._meta.pk.to_python(request_id)
    locked = next(iter(Request.objects.raw("SELECT * FROM dsar_request WHERE id = %s FOR UPDATE", [pk])), None)
    if locked is None:
        raise Request.DoesNotExist(f"request {pk} does not exist")
    return locked


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
    row_update(request, update_fields)
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
    entry = _entry_new(request, actor=actor, action=action, from_status=from_status, to_status=to_status, note=note, data=data)
    rows_insert([entry])
    return entry


def _entry_new(request: Request, *, actor: str, action: str, from_status: str = "", to_status: str = "", note: str = "",
               data: dict[str, Any] | None = None) -> AuditEntry:
    """An unsaved entry with its content hash; a status left out is the request's current one."""
    entry = AuditEntry(
        request_id=request.pk,
        at=timezone.now(),
        actor=actor,
        action=action,
        from_status=from_status or request.status,
        to_status=to_status or request.status,
        note=note,
        data=data or {},
    )
    entry.content_hash = audit_content_hash(entry)
    return entry


def request_insert(request: Request, *, actor: str, action: str, note: str = "", also: Sequence[models.Model] = ()) -> AuditEntry:
    """Insert a new request together with the audit entry that records it, and the rows in `also`
    (which may refer to the request), in one statement.

    Filing is the hottest path the product has, and its inserts inside BEGIN and COMMIT took
    four round trips to PostgreSQL. Here every INSERT is Django's own (its insert compiler fills
    defaults, `auto_now` and each field's conversion), joined by a WITH into one statement: one
    round trip, and atomic on its own, so the request never exists without its entry. Inside a
    transaction it is part of that transaction like any other statement. Model signals are not
    sent, as `bulk_create` sends none; the product listens to none. The rows' auto ids are left
    unread.
    """
    entry = _entry_new(request, actor=actor, action=action, note=note)
    database = transaction.get_connection()  # the connection itself: `django.db.connection` is a proxy, costly per attribute
    rows = [request, *also, entry]
    inserts = [_insert_sql(row, database) for row in rows]
    *first, (last, _) = inserts
    with_ = ", ".join(f"inserted_{number} AS ({sql})" for number, (sql, _) in enumerate(first))
    with server_bound_cursor(database) as cursor:
        cursor.execute(f"WITH {with_} {last}", [param for _, params in inserts for param in params])
    for row in rows:
        row._state.adding, row._state.db = False, database.alias
    return entry


def rows_insert(rows: Sequence[models.Model]) -> None:
    """Insert new rows in one statement, each with Django's own INSERT (as `request_insert` does),
    and give each its auto id. Where `bulk_create` compiled its INSERT anew every time (an eighth
    of verifying a request, which creates a task per connector), these texts are kept."""
    if not rows:
        return
    database = transaction.get_connection()
    inserts = [_insert_sql(row, database) for row in rows]
    quote = database.ops.quote_name
    with_ = ", ".join(f"inserted_{number} AS ({sql} RETURNING {quote(row._meta.pk.column)})"
                      for number, (row, (sql, _)) in enumerate(zip(rows, inserts, strict=True)))
    ids = " UNION ALL ".join(f"SELECT {number}, * FROM inserted_{number}" for number in range(len(rows)))
    with server_bound_cursor(database) as cursor:
        cursor.execute(f"WITH {with_} {ids}", [param for _, params in inserts for param in params])
        for number, pk in cursor.fetchall():
            rows[number].pk = pk
    for row in rows:
        row._state.adding, row._state.db = False, database.alias


def row_update(row: models.Model, update_fields: Iterable[str]) -> None:
    """Save `update_fields` of a stored row, as `row.save(update_fields=...)` does, with the UPDATE's
    text kept once Django has compiled it (as `_insert_sql` keeps an INSERT's): compiling it was a
    twentieth of completing a request. Values are prepared as Django's compiler prepares them
    (`pre_save`, then `get_db_prep_save`); a value that is an expression goes through `save`."""
    database = transaction.get_connection()
    model, names = type(row), tuple(update_fields)
    fields = [model._meta.get_field(name) for name in names]
    values = [field.pre_save(row, add=False) for field in fields]
    if any(hasattr(value, "resolve_expression") or getattr(field, "get_placeholder", None) for field, value in zip(fields, values)):
        row.save(update_fields=names)
        return
    sql = _UPDATES.get((model, names, database.alias))
    if sql is None:
        query = UpdateQuery(model)
        query.add_update_fields([(field, None, value) for field, value in zip(fields, values)])
        query.add_filter("pk", row.pk)
        sql, params = query.get_compiler(connection=database).as_sql()
        if len(params) == len(fields) + 1:
            _UPDATES[model, names, database.alias] = sql
    params = [field.get_db_prep_save(value, connection=database) for field, value in zip(fields, values)]
    params.append(model._meta.pk.get_db_prep_value(row.pk, connection=database))
    with server_bound_cursor(database) as cursor:
        cursor.execute(sql, params)
        if not cursor.rowcount:
            raise DatabaseError("Save with update_fields did not affect any rows.")


# Each UPDATE text, compiled once per model, fields written and database.
_UPDATES: dict[tuple[type[models.Model], tuple[str, ...], str], str] = {}


def server_bound_cursor(database=None):
    """A cursor whose parameters PostgreSQL binds, made and wrapped as Django makes its own (the
    health check, error translation, execute wrappers, the debug log).

    Django's cursors quote every parameter into the statement's text in Python, which for the
    filing's forty-odd parameters was a tenth of a filing's instructions, and for a connector
    task's result (its staged output, as JSON) a twentieth of the worker's time; bound by the
    server they travel beside a text that stays the same, which psycopg prepares once it has run
    DSAR_DB_PREPARE_THRESHOLD times on a connection (PostgreSQL then skips parsing and planning it:
    a quarter of its CPU per filing). The product's hot statements use it (the
    filing, `rows_insert`, `row_update`, a task's claim and result, the final step's lock); the
    ORM's queries keep Django's client-side binding, under which `pgtrigger.ignore()` (a second
    command before the statement, as the audit migration runs) works, and a bound statement
    would refuse it.
    """
    database = database or transaction.get_connection()  # the default database's connection itself, not its proxy
    database.close_if_health_check_failed()
    database.ensure_connection()
    with database.wrap_database_errors:
        return database._prepare_cursor(ServerBindingCursor(database.connection))


# Each model's INSERT text, compiled once per database: (the fields, in order, and the SQL).
_INSERTS: dict[tuple[type[models.Model], str], tuple[list[models.Field], str]] = {}


def _insert_sql(row: models.Model, database) -> tuple[str, list]:
    """The INSERT that saving a new `row` would run, as Django writes it (its auto id left to the database).

    Compiling it was a tenth of a filing's instructions, for a text that is the same every time
    when every value is a plain one. So the text is kept once Django has compiled it, and a later
    row only has its values prepared as Django's compiler prepares them (`pre_save`, then
    `get_db_prep_save`). A row with an expression among its values, or a model with a field that
    writes its own placeholder, is compiled each time, as Django does.
    """
    model = type(row)
    known = _INSERTS.get((model, database.alias))
    if known:
        fields, sql = known
        values = [field.pre_save(row, add=True) for field in fields]
        if not any(hasattr(value, "resolve_expression") for value in values):
            return sql, [field.get_db_prep_save(value, connection=database) for field, value in zip(fields, values)]
    fields = [field for field in model._meta.local_concrete_fields if field is not model._meta.auto_field]
    query = InsertQuery(model)
    query.insert_values(fields, [row])
    [(sql, params)] = query.get_compiler(connection=database).as_sql()
    plain = not any(
        getattr(field, "get_placeholder", None) or hasattr(getattr(row, field.attname), "resolve_expression") for field in fields)
    if plain and len(params) == len(fields):
        _INSERTS[model, database.alias] = fields, sql
    return sql, list(params)


def audit_content_hash(entry: AuditEntry) -> str:
    """SHA-256 of what an entry says (everything but its id and its place in the chain)."""
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
