"""The state machine refuses every illegal transition, and the audit trail records every legal one."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dsar.lifecycle import (
    TRANSITIONS,
    IllegalTransition,
    audit_record,
    audit_verify,
    request_insert,
    request_lock,
    request_transition,
    row_update,
    rows_insert,
)
from dsar.models import GENESIS_HASH, AuditEntry, AuditSeal, ConnectorTask, Request, Status

from ..factories import request_make

pytestmark = pytest.mark.django_db(transaction=True)

ILLEGAL = [(status, action) for action, moves in TRANSITIONS.items() for status in Status.values if status not in moves]
LEGAL = [(status, action, to) for action, moves in TRANSITIONS.items() for status, to in moves.items()]


@pytest.mark.parametrize(("from_status", "action"), ILLEGAL)
def test_every_illegal_transition_is_refused_and_changes_nothing(from_status, action):
    request = request_make(status=from_status)
    entries = AuditEntry.objects.count()
    with pytest.raises(IllegalTransition), transaction.atomic():
        request_transition(request_lock(request.pk), action, actor="system")
    assert Request.objects.get(pk=request.pk).status == from_status
    assert AuditEntry.objects.count() == entries


@pytest.mark.parametrize(("from_status", "action", "to_status"), LEGAL)
def test_every_legal_transition_is_audited_in_the_same_transaction(from_status, action, to_status):
    request = request_make(status=from_status)
    with transaction.atomic():
        request_transition(request_lock(request.pk), action, actor="staff:rita", note="why")
    entry = AuditEntry.objects.filter(request=request).last()
    assert (entry.action, entry.from_status, entry.to_status, entry.actor, entry.note) == (action, from_status, to_status, "staff:rita", "why")
    assert Request.objects.get(pk=request.pk).status == to_status


def test_an_audit_write_outside_a_transaction_is_refused():
    request = request_make()
    with pytest.raises(RuntimeError):
        audit_record(request, actor="system", action="stray")


def _new_request(email: str, now: dt.datetime | None = None) -> Request:
    now = now or timezone.now()
    return Request(type="access", email=email, categories=["account.profile"], jurisdiction="gdpr", created_at=now,
                   due_at=now + dt.timedelta(days=30), code_hash="a" * 64, code_expires_at=now, code_sent_at=now)


def test_a_request_inserted_with_its_entry_is_the_row_the_orm_would_write_and_is_sealed():
    now = timezone.now()
    joined, plain = _new_request("joined@example.com", now), _new_request("plain@example.com", now)
    entry = request_insert(joined, actor="subject", action="filed", note="access request filed")
    plain.save()
    stored = {row["email"]: row for row in Request.objects.values()}
    drop = {"id", "email", "updated_at"}
    assert {k: v for k, v in stored["joined@example.com"].items() if k not in drop} == {k: v for k, v in stored["plain@example.com"].items() if k not in drop}
    assert stored["joined@example.com"]["updated_at"] is not None
    written = AuditEntry.objects.get(request_id=joined.pk)
    assert (written.action, written.actor, written.from_status, written.to_status, written.content_hash) == (
        "filed", "subject", "unverified", "unverified", entry.content_hash)
    assert AuditSeal.objects.filter(entry=written).exists() and audit_verify() == []
    joined.status = Status.CANCELED
    joined.save()  # the instance knows it is stored: an UPDATE, not a second INSERT
    assert Request.objects.get(pk=joined.pk).status == Status.CANCELED


def test_rows_inserted_together_are_one_statement_get_their_ids_and_are_what_bulk_create_writes():
    joined, plain = request_make(email="tasks.joined@example.com"), request_make(email="tasks.plain@example.com")
    tasks = [ConnectorTask(request=joined, connector=name) for name in ("accounts", "payments", "support")]
    with CaptureQueriesContext(connection) as queries:
        rows_insert(tasks)
    assert len(queries) == 1
    ConnectorTask.objects.bulk_create([ConnectorTask(request=plain, connector=name) for name in ("accounts", "payments", "support")])
    stored = {task.pk: task for task in ConnectorTask.objects.filter(request=joined)}
    assert sorted(stored) == sorted(task.pk for task in tasks) and all(stored[task.pk].connector == task.connector for task in tasks)
    drop = {"id", "request_id", "created_at", "updated_at"}

    def rows(request):
        return [{k: v for k, v in row.items() if k not in drop} for row in ConnectorTask.objects.filter(request=request).order_by("connector").values()]

    assert rows(joined) == rows(plain)
    tasks[0].status = "running"
    tasks[0].save()  # the instance knows it is stored: an UPDATE, not a second INSERT
    assert ConnectorTask.objects.get(pk=tasks[0].pk).status == "running"


def test_a_row_updated_with_its_kept_text_is_what_save_with_update_fields_writes():
    kept, saved = request_make(email="update.kept@example.com"), request_make(email="update.saved@example.com")
    for number, fields in enumerate((["status", "result", "updated_at"], ["status", "result", "updated_at"], ["referred_to"])):
        for row in (kept, saved):
            row.status, row.result, row.referred_to = Status.PROCESSING, {"n": number, "é": [1, None]}, f"Org {number}"
        with CaptureQueriesContext(connection) as queries:
            row_update(kept, fields)
        saved.save(update_fields=fields)
        assert len(queries) == 1
        drop = {"id", "email", "updated_at", "created_at", "due_at"}  # all but what each was made with
        stored = {row["email"]: {k: v for k, v in row.items() if k not in drop} for row in Request.objects.filter(pk__in=[kept.pk, saved.pk]).values()}
        assert stored["update.kept@example.com"] == stored["update.saved@example.com"]
    assert Request.objects.get(pk=kept.pk).updated_at > kept.created_at
    gone = request_make(email="update.gone@example.com")
    Request.objects.filter(pk=gone.pk).delete()
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        row_update(gone, ["status"])


def test_inserts_after_the_first_reuse_its_sql_and_write_what_django_compiles_and_an_expression_is_compiled():
    from django.db.models.functions import Now
    from django.db.models.sql import InsertQuery

    from dsar import lifecycle

    def compiled(row):  # what Django's insert compiler writes for the row, from nothing kept
        fields = [field for field in Request._meta.local_concrete_fields if field is not Request._meta.auto_field]
        query = InsertQuery(Request)
        query.insert_values(fields, [row])
        [(sql, params)] = query.get_compiler(connection=connection).as_sql()
        return sql, list(params)

    now = timezone.now()
    lifecycle._INSERTS.clear()
    first = lifecycle._insert_sql(_new_request("first@example.com", now), connection)
    assert (Request, connection.alias) in lifecycle._INSERTS  # a plain row's text is kept
    second = _new_request("second@example.com", now)
    kept = lifecycle._insert_sql(second, connection)
    assert kept[0] == first[0] and kept[1] != first[1]
    fresh = compiled(second)
    assert kept[0] == fresh[0]
    names = [field.name for field in Request._meta.local_concrete_fields if field is not Request._meta.auto_field]

    def values(params):  # JSON values come wrapped for psycopg, and auto_now stamps each compile afresh
        return {name: getattr(value, "obj", value) for name, value in zip(names, params, strict=True) if name != "updated_at"}

    assert values(kept[1]) == values(fresh[1])
    # An expression among the values cannot use the kept text: Django compiles it into the SQL.
    timed = _new_request("now@example.com", now)
    timed.created_at = Now()
    sql, params = lifecycle._insert_sql(timed, connection)
    assert sql != first[0] and "STATEMENT_TIMESTAMP()" in sql and len(params) == len(first[1]) - 1
    request_insert(_new_request("stored@example.com", now), actor="subject", action="filed")
    stored = Request.objects.get(email="stored@example.com")
    assert stored.created_at == now and stored.categories == ["account.profile"] and audit_verify() == []


def test_the_filing_statement_is_bound_by_the_server_and_passes_through_djangos_wrappers():
    from django.test.utils import CaptureQueriesContext

    seen = []

    def wrapper(execute, sql, params, many, context):  # as an instrumentation library would hook in
        seen.append((sql, params))
        return execute(sql, params, many, context)

    with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(wrapper):
        request_insert(_new_request("bound@example.com"), actor="subject", action="filed")
    [params] = [params for sql, params in seen if sql.startswith("WITH")]
    assert "bound@example.com" in params
    [logged] = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("WITH")]
    # The text PostgreSQL received holds placeholders; the values travelled beside it.
    assert "$1" in logged and "bound@example.com" not in logged
    assert Request.objects.get(email="bound@example.com").categories == ["account.profile"] and audit_verify() == []


def test_the_filing_statement_is_prepared_after_the_threshold_and_djangos_own_queries_never_are():
    from django.conf import settings

    threshold = settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"]
    assert threshold == 5  # the default, which the benchmarks measure
    connection.ensure_connection()
    assert connection.connection.prepare_threshold == threshold

    def prepared() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            return [statement for (statement,) in cursor.fetchall()]

    for number in range(threshold + 1):
        request_insert(_new_request(f"prepared.{number}@example.com"), actor="subject", action="filed")
        assert Request.objects.filter(email=f"prepared.{number}@example.com").count() == 1
    statements = prepared()
    assert len([s for s in statements if s.startswith('WITH inserted_0 AS (INSERT INTO "dsar_request"')]) == 1
    assert not [s for s in statements if "COUNT(*)" in s]  # the ORM's count, run as often, is bound in Python
    assert Request.objects.filter(email__startswith="prepared.").count() == threshold + 1 and audit_verify() == []


def test_a_request_is_never_stored_without_its_entry():
    request = _new_request("alone@example.com")
    with pytest.raises(DatabaseError):
        request_insert(request, actor="x" * 161, action="filed")  # the entry's actor is too long: its INSERT fails
    assert not Request.objects.filter(pk=request.pk).exists()
    assert AuditEntry.objects.count() == 0


@pytest.mark.parametrize(
    ("status", "action", "body"),
    [
        ("unverified", "approve", {}),
        ("completed", "approve", {}),
        ("processing", "deny", {"reason": "no"}),
        ("denied", "deny", {"reason": "no"}),
        ("pending_review", "retry", {}),
        ("unverified", "deny", {"reason": "no"}),
        ("completed", "retry", {}),
        ("completed", "extend", {"reason": "busy", "days": 5}),
    ],
)
def test_staff_actions_on_the_wrong_status_answer_409_and_change_nothing(reviewer, status, action, body):
    request = request_make(status=status)
    response = reviewer.post(f"/api/v1/staff/requests/{request.pk}/{action}", body, format="json")
    assert response.status_code == 409
    assert response.json()["error"] in {"illegal_transition"}
    assert Request.objects.get(pk=request.pk).status == status
    assert AuditEntry.objects.filter(request=request).count() == 1


def test_the_audit_trail_cannot_be_edited_deleted_or_truncated_through_the_database():
    request = request_make()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(request=request).update(note="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(request=request).delete()
    for table in ("dsar_auditentry", "dsar_auditseal"):
        with pytest.raises(DatabaseError, match="Cannot truncate"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {table} CASCADE")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditSeal.objects.filter(entry__request=request).update(hash="0" * 64)
    assert AuditEntry.objects.filter(request=request, note="rewritten").count() == 0
    assert AuditEntry.objects.filter(request=request).count() == AuditSeal.objects.filter(entry__request=request).count() == 1


def test_the_audit_chain_links_every_entry_to_the_one_before():
    for status in ("unverified", "pending_review", "processing"):
        request_make(status=status)
    assert audit_verify() == []
    seals = list(AuditSeal.objects.order_by("seq"))
    assert [seal.seq for seal in seals] == list(range(1, AuditEntry.objects.count() + 1))
    assert seals[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(seals))


def test_an_entry_is_sealed_only_when_its_transaction_commits():
    request = request_make()
    with transaction.atomic():
        entry = audit_record(request_lock(request.pk), actor="system", action="noted")
        assert not AuditSeal.objects.filter(entry=entry).exists()
    assert AuditSeal.objects.filter(entry=entry).exists()
    with pytest.raises(RuntimeError), transaction.atomic():
        rolled_back = audit_record(request_lock(request.pk), actor="system", action="noted")
        raise RuntimeError("the change is abandoned")
    assert not AuditEntry.objects.filter(pk=rolled_back.pk).exists() and not AuditSeal.objects.filter(entry_id=rolled_back.pk).exists()
    assert audit_verify() == []


def test_writers_committing_at_once_get_one_unbroken_chain():
    requests = [request_make() for _ in range(8)]
    start = threading.Barrier(len(requests))

    def write(request) -> None:
        start.wait()
        try:
            for _ in range(15):
                with transaction.atomic():
                    audit_record(request_lock(request.pk), actor="system", action="noted")
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(request,)) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert AuditSeal.objects.count() == AuditEntry.objects.count() == 8 + 8 * 15
    assert audit_verify() == []
