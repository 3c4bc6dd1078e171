"""The one place the product writes around Django's ORM, on its hottest paths:

- a new request, its audit entry and its code email, inserted in one SQL statement
  (docs/decisions/0101-filing-in-one-statement.md);
- a connector task's claim and its result, and a final step's claim, each one statement PostgreSQL
  binds and prepares, the result's staged output (often hundreds of kilobytes of JSON) sent as a
  parameter rather than quoted into the text (docs/decisions/0102-connector-tasks-in-sql.md). The
  rest of the final step stays in the ORM.

Filing is the hottest path the product has. The plain way (`request.save()`, `audit_record`,
`email_enqueue` inside `transaction.atomic()`) is five round trips to PostgreSQL (BEGIN, three
INSERTs, COMMIT), each INSERT compiled by the ORM and its forty-odd values quoted one by one; here
each row travels as one JSON document, and PostgreSQL turns it back into the table's row
(`jsonb_populate_record`). One statement is atomic on its own: the request never exists without
its entry and its email.

What it bypasses, so what the caller must not rely on: model signals (none is listed to), the
rows' auto ids (left unread), and the ORM's knowing the instances are stored (`save()` on them
afterwards would try to insert them again). tests/dsar/test_orm_bypass.py holds it to writing the
rows the plain way writes.

A job's statements run on a cursor whose parameters PostgreSQL binds: Django's cursors quote every
value into the statement's text in Python's process (libpq's quoting of a large JSON document costs
about thirty instructions a byte), and compile each query anew. The cursor is Django's wrapper
around psycopg's own server-binding cursor, so errors, execute wrappers and the query log are
Django's as ever. tests/dsar/test_orm_bypass.py holds these statements to what the ORM's would do.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from functools import cache

import psycopg
from django.db import connection, models
from psycopg.types.json import Jsonb

from . import formats
from .models import AuditEntry, ConnectorTask, FinalStep, OutgoingEmail, Request, Status, TaskStatus


def _columns(model: type[models.Model]) -> list[models.Field]:
    """The fields an INSERT of `model` writes: every concrete one but an auto id."""
    return [field for field in model._meta.concrete_fields if not isinstance(field, models.AutoField)]


@cache
def _statement() -> str:
    """The INSERTs of a request, its entry and its email as one statement, each row from JSON."""

    def insert(model: type[models.Model]) -> str:
        table = connection.ops.quote_name(model._meta.db_table)
        columns = ", ".join(connection.ops.quote_name(field.column) for field in _columns(model))
        return f"INSERT INTO {table} ({columns}) SELECT {columns} FROM jsonb_populate_record(NULL::{table}, %s::jsonb)"

    return f"WITH filed AS ({insert(Request)}), entry AS ({insert(AuditEntry)}) {insert(OutgoingEmail)}"


def _json_value(value):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"no JSON form for {type(value).__name__}")


def _row(row: models.Model) -> str:
    """The row as a JSON object keyed by column, with the values the ORM would save (its
    `pre_save` fills `auto_now` and the like, as on an INSERT). A None is left out, so the column
    is NULL: given a JSON null, a jsonb column would hold that null instead."""
    values = ((field.column, field.pre_save(row, add=True)) for field in _columns(type(row)))
    return json.dumps({column: value for column, value in values if value is not None}, default=_json_value)


def request_file(request: Request, entry: AuditEntry, email: OutgoingEmail) -> None:
    """Insert a new request, the audit entry that records its filing and its code email, in one
    statement: its own transaction, or part of the caller's when there is one."""
    with connection.cursor() as cursor:
        cursor.execute(_statement(), [_row(request), _row(entry), _row(email)])


def _server_bound_cursor():
    """A Django cursor over psycopg's server-binding cursor, on Django's own connection (in its
    transaction, if one is open). As Django does before each cursor it makes, a connection that
    failed its health check (a worker's, after the database restarted) is replaced first."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)


def _claimed(statement: str, params: dict) -> tuple | None:
    """A claim's UPDATE … RETURNING: the row it returns, or None when it claimed nothing."""
    with _server_bound_cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()


def task_claim(task_id: int, *, now: dt.datetime, lease_until: dt.datetime, worker: str) -> ConnectorTask | None:
    """Claim a task for `worker` with one conditional UPDATE that also reads what the run needs:
    queued and due, or running past its lease, of a request still processing. The task (with its
    request's id, type, email, categories and period), or None when another worker has it or it is not due.
    Like a queryset's annotation, the task carries `system_problems`: when its system's last check
    found problems, and which (`(checked_at, [problem, ...])`), or None."""
    row = _claimed(_CLAIM, {"id": task_id, "now": now, "lease": lease_until, "worker": worker})
    if row is None:
        return None
    (task_pk, connector, attempts, last_error, request_pk, request_type, email, categories, date_from, date_to, time_zone,
     checked_at, problems) = row
    # Django's PostgreSQL backend loads jsonb as text, for the JSONField to parse.
    request = Request(pk=request_pk, type=request_type, email=email, categories=json.loads(categories), date_from=date_from,
                      date_to=date_to, time_zone=time_zone, status=Status.PROCESSING)
    task = ConnectorTask(pk=task_pk, request=request, connector=connector, attempts=attempts, last_error=last_error,
                         status=TaskStatus.RUNNING)
    task.system_problems = None if checked_at is None else (checked_at, json.loads(problems))
    return task


_CLAIM = """
UPDATE dsar_connectortask AS t
   SET status = 'running', attempts = t.attempts + 1, lease_until = %(lease)s, started_at = %(now)s,
       claimed_by = %(worker)s, updated_at = %(now)s
  FROM dsar_request AS r
 WHERE t.id = %(id)s AND r.id = t.request_id AND r.status = 'processing'
   AND ((t.status = 'queued' AND (t.not_before IS NULL OR t.not_before <= %(now)s))
        OR (t.status = 'running' AND t.lease_until < %(now)s))
RETURNING t.id, t.connector, t.attempts, t.last_error, r.id, r.type, r.email, r.categories, r.date_from, r.date_to, r.time_zone,
          (SELECT c.checked_at FROM dsar_systemcheck AS c WHERE c.system = t.connector AND c.problems <> '[]'::jsonb),
          (SELECT c.problems FROM dsar_systemcheck AS c WHERE c.system = t.connector AND c.problems <> '[]'::jsonb)
"""


def task_result_record(task_id: int, *, attempt: int, request_id, counts: dict, output: dict | None, receipt: dict | None,
                       identities: dict | None = None, now: dt.datetime) -> tuple[bool, bool]:
    """Lock the task's request (its row, as `locks.request_lock` does), mark the task succeeded with
    its result if it is still running as `attempt`, as `QuerySet.update` would; then, if the request
    is processing and no task of it is left unfinished, create its final step (queued). Call inside a
    transaction, which holds the lock: of tasks finishing together, exactly one creates the step.
    Returns whether the result was recorded (False: the task was no longer running, or another claim
    took it over) and whether it created the step.
    Raises Request.DoesNotExist when the request is gone."""
    def jsonb(value):
        return None if value is None else Jsonb(value)

    params = {"id": task_id, "attempt": attempt, "request": request_id, "now": now, "counts": jsonb(counts), "output": jsonb(output),
              "receipt": jsonb(receipt), "identities": jsonb(identities), "result_format": formats.TASK_RESULT}
    with _server_bound_cursor() as cursor:
        cursor.execute(_REQUEST_LOCK, params)
        locked = cursor.fetchone()
        if locked is None:
            raise Request.DoesNotExist(f"request {request_id} does not exist")
        cursor.execute(_SUCCEED, params)
        if cursor.rowcount != 1:
            return False, False
        if locked[0] != Status.PROCESSING:
            return True, False
        cursor.execute(_LAST_ONE, params)
        return True, cursor.fetchone() is not None


_REQUEST_LOCK = "SELECT status FROM dsar_request WHERE id = %(request)s FOR UPDATE"
_SUCCEED = """
UPDATE dsar_connectortask
   SET status = 'succeeded', counts = %(counts)s, output = %(output)s, receipt = %(receipt)s, identities = %(identities)s,
       result_format = %(result_format)s, lease_until = NULL, finished_at = %(now)s, updated_at = %(now)s
 WHERE id = %(id)s AND status = 'running' AND attempts = %(attempt)s
"""
_LAST_ONE = """
INSERT INTO dsar_finalstep (request_id, status, attempts, sweeps, claimed_by, last_error, created_at, updated_at)
SELECT %(request)s, 'queued', 0, 0, '', '', %(now)s, %(now)s
 WHERE NOT EXISTS (SELECT 1 FROM dsar_connectortask WHERE request_id = %(request)s AND status <> 'succeeded')
ON CONFLICT (request_id) DO NOTHING
RETURNING id
"""


def final_step_claim(request_id, *, now: dt.datetime, lease_until: dt.datetime, worker: str) -> FinalStep | None:
    """Claim a request's final step for `worker` as a task is claimed (queued, or running past its
    lease, of a request still processing), reading what the step needs: the step, with its
    request's id, type, email, categories, refusals, referral, filing time and jurisdiction (whose
    law the export's report answers under), period, time zone, language and part size; or None when
    there is nothing to do."""
    row = _claimed(_FINAL_STEP_CLAIM, {"request": request_id, "now": now, "lease": lease_until, "worker": worker})
    if row is None:
        return None
    (step_pk, attempts, request_pk, request_type, email, categories, refusals, referred_to, referred_contact, referred_systems,
     created_at, jurisdiction, date_from, date_to, time_zone, language, part_size) = row
    request = Request(pk=request_pk, type=request_type, email=email, categories=json.loads(categories),
                      refusals=json.loads(refusals), referred_to=referred_to, referred_contact=referred_contact,
                      referred_systems=json.loads(referred_systems), created_at=created_at, jurisdiction=jurisdiction,
                      date_from=date_from, date_to=date_to, time_zone=time_zone, language=language, part_size=part_size, status=Status.PROCESSING)
    return FinalStep(pk=step_pk, request=request, attempts=attempts, status=TaskStatus.RUNNING, claimed_by=worker,
                     lease_until=lease_until, started_at=now)


_FINAL_STEP_CLAIM = """
UPDATE dsar_finalstep AS s
   SET status = 'running', attempts = s.attempts + 1, lease_until = %(lease)s, started_at = %(now)s,
       claimed_by = %(worker)s, updated_at = %(now)s
  FROM dsar_request AS r
 WHERE s.request_id = %(request)s AND r.id = s.request_id AND r.status = 'processing'
   AND (s.status = 'queued' OR (s.status = 'running' AND s.lease_until < %(now)s))
RETURNING s.id, s.attempts, r.id, r.type, r.email, r.categories, r.refusals, r.referred_to, r.referred_contact,
          r.referred_systems, r.created_at, r.jurisdiction, r.date_from, r.date_to, r.time_zone, r.language, r.part_size
"""
