"""Acting on the audit tables as someone other than the application: a superuser who sets the
triggers aside, or a role of the test's own with only the grants it names."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from django.db import connection, transaction

AUDIT_TABLES = ("dsar_auditentry", "dsar_auditseal")


@contextlib.contextmanager
def triggers_aside() -> Iterator:
    """One transaction in which the audit tables' triggers do not fire, as a superuser can make it
    (`session_replication_role`); the test database's user is one. Yields its cursor."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        yield cursor


@contextlib.contextmanager
def role_with(privileges: str) -> Iterator[str]:
    """A role made for one test, granted `privileges` (such as "SELECT, INSERT") on both audit
    tables and the use of the entries' id sequence; dropped afterwards. Yields its name."""
    name = f"audit_test_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name} NOLOGIN")
        cursor.execute(f"GRANT {privileges} ON {', '.join(AUDIT_TABLES)} TO {name}")
        cursor.execute(f"GRANT USAGE ON SEQUENCE dsar_auditentry_id_seq TO {name}")
    try:
        yield name
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP OWNED BY {name}")
            cursor.execute(f"DROP ROLE {name}")


@contextlib.contextmanager
def acting_as(role: str) -> Iterator:
    """One transaction run as `role` (its commit too, so the seal trigger runs as that role).
    Yields its cursor."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {role}")
        yield cursor
