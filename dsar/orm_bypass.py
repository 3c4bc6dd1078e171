"""The one place the product writes around Django's ORM, on its two hottest writes:

- a new request, its audit entry and its code email, inserted in one SQL statement
  (docs/decisions/0101-filing-in-one-statement.md);
- a connector task's result, whose staged output can be hundreds of kilobytes of JSON, sent as a
  parameter PostgreSQL binds rather than quoted into the statement's text
  (docs/decisions/0102-task-results-bound-by-the-server.md).

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

A task's result is recorded with a cursor whose parameters PostgreSQL binds: Django's cursors quote
every value into the statement's text in Python's process, and libpq's quoting of a large JSON
document costs about thirty instructions a byte. The cursor is Django's wrapper around psycopg's
own server-binding cursor, so errors, execute wrappers and the query log are Django's as ever.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from functools import cache

import psycopg
from django.db import connection, models
from psycopg.types.json import Jsonb

from .models import AuditEntry, ConnectorTask, OutgoingEmail, Request, TaskStatus


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
    transaction, if one is open)."""
    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)


def _task_result_statement() -> str:
    table = connection.ops.quote_name(ConnectorTask._meta.db_table)
    return (f"UPDATE {table} SET status = %s, counts = %s, output = %s, receipt = %s, lease_until = NULL, finished_at = %s,"
            " updated_at = %s WHERE id = %s AND status = %s")


def task_result_record(task_id: int, *, counts: dict, output: dict | None, receipt: dict | None, now) -> bool:
    """Mark a running task succeeded with its result, as `QuerySet.update` would; False when the
    task was no longer running."""
    def jsonb(value):
        return None if value is None else Jsonb(value)

    with _server_bound_cursor() as cursor:
        cursor.execute(_task_result_statement(), [TaskStatus.SUCCEEDED.value, jsonb(counts), jsonb(output), jsonb(receipt), now, now,
                                                   task_id, TaskStatus.RUNNING.value])
        return cursor.rowcount == 1
