"""The one place the product writes around Django's ORM: a new request, its audit entry and its code
email inserted in one SQL statement. Why, and what it costs the reader:
docs/decisions/0101-filing-in-one-statement.md.

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
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from functools import cache

from django.db import connection, models

from .models import AuditEntry, OutgoingEmail, Request


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
