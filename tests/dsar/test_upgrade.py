"""Upgrading with work in flight (docs/upgrading.md, dsar/formats.py).

What the release before format versions left in the database, the work area and the broker
(tests/dsar/fixtures/upgrade/, made by that release and never regenerated) is loaded as it left it;
the migrations run; its queued messages go to the real worker of the test run, which finishes every
request on this release's code. Work in a format this release does not read is refused, and
nothing changes."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.files.storage import default_storage
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dsar import processing
from dsar.celery import app as celery_app
from dsar.doorbell import ring_all
from dsar.formats import FormatUnknown
from dsar.models import ConnectorTask, Export, FinalStep, Request

from ..factories import request_make
from ..support.flows import wait_until_final
from ..support.probe import probe_calls, probe_plan
from ..support.waiting import wait_for

FIXTURES = Path(__file__).parent / "fixtures" / "upgrade"
PREVIOUS_RELEASE = ("dsar", "0011_staff_token_expiry")  # the last migration of the release that left the fixtures
A, B, C = "a0000000-0000-4000-8000-00000000000a", "b0000000-0000-4000-8000-00000000000b", "c0000000-0000-4000-8000-00000000000c"


def _broker() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _rows_insert(rows: list[dict], table: str) -> None:
    """Insert rows naming only the columns the previous release knew, as its code does."""
    with connection.cursor() as cursor:
        for row in rows:
            columns = ", ".join(row)
            populated = f"jsonb_populate_record(NULL::{table}, %s::jsonb)"
            cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {populated}", [json.dumps(row)])


def _of(rows: dict, request_id: str) -> dict:
    """The rows of one request: its own, its tasks' and its final step's."""
    return {table: [row for row in table_rows if row.get("request_id", row.get("id")) == request_id]
            for table, table_rows in rows.items()}


def _previous_release_left() -> None:
    """The database, work area, content store and broker as the previous release left them: requests
    a and c written before the migrations ran, request b while they ran (that release's web and
    workers keep running until the new code starts)."""
    rows = json.loads((FIXTURES / "rows.json").read_text())
    MigrationExecutor(connection).migrate([PREVIOUS_RELEASE])
    for request_id in (A, C):
        for table, table_rows in _of(rows, request_id).items():
            _rows_insert(table_rows, table)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    for table, table_rows in _of(rows, B).items():
        _rows_insert(table_rows, table)
    shutil.copytree(FIXTURES / "work", default_storage.path("work"), dirs_exist_ok=True)
    content_store = settings.DSAR_SYSTEMS["content"].options["storage_options"]["location"]
    shutil.copytree(FIXTURES / "content", content_store, dirs_exist_ok=True)


def _messages_deliver() -> None:
    """Put the previous release's messages back in their queues, byte for byte, in their order."""
    broker = _broker()
    for queued in json.loads((FIXTURES / "messages.json").read_text()):
        broker.rpush(queued["queue"], json.dumps(queued["message"]))


def _archive(request_id: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(default_storage.open(Export.objects.get(request_id=request_id).path, "rb"))


def _probe_line(number: int) -> dict:
    return {"connector": "probe", "system": "probe", "source": {"type": "provided", "name": None, "kind": None}, "collected_at": None,
            "fields": {"rating": 5, "text": f"probe feedback {number}"}}


def _content_line(path: str, size: int) -> dict:
    return {"connector": "content", "system": "content", "source": {"type": "provided", "name": None, "kind": None},
            "collected_at": None, "fields": {"file": path, "bytes": size}}


@pytest.mark.django_db(transaction=True)
def test_work_the_previous_release_left_in_flight_is_finished_after_the_migrations_by_this_release(worker):
    _previous_release_left()
    assert sorted(ConnectorTask.objects.values_list("pk", "result_format")) == [
        (910001, 1), (910002, 1), (920001, 1), (920002, 1), (930001, 1), (930002, 1)]
    probe_plan("bea.upgrade@example.com", records=1)  # request b's probe task runs on this release
    _messages_deliver()

    assert [wait_until_final(request_id).status for request_id in (A, B, C)] == ["completed"] * 3
    assert set(FinalStep.objects.values_list("status", flat=True)) == {"succeeded"}
    wait_for(lambda: not default_storage.exists(f"work/{A}") and not default_storage.exists(f"work/{B}"),
             timeout=30, what="the work areas to be discarded once the requests completed")

    # a: staged by the previous release in full (spilled streams, a zip of files, inline streams).
    archive = _archive(A)
    assert archive.namelist() == [
        "files/content/notes/hello.txt", "files/content/holiday/beach.jpg",
        "data/feedback_ratings.json", "data/feedback_ratings.csv", "data/content.json", "data/content.csv",
        "data/images.json", "data/images.csv", "index.html", "manifest.json"]
    assert archive.read("files/content/notes/hello.txt") == b"Hello from the release before.\n"
    assert archive.read("files/content/holiday/beach.jpg") == b"\xff\xd8\xff\xe0 not really a jpeg \x00\x01\x02"
    assert json.loads(archive.read("data/feedback_ratings.json")) == [_probe_line(0), _probe_line(1)]
    assert archive.read("data/feedback_ratings.csv") == (
        b"connector,system,source_type,source_name,source_kind,collected_at,rating,text\r\n"
        b"probe,probe,provided,,,,5,probe feedback 0\r\nprobe,probe,provided,,,,5,probe feedback 1\r\n")
    assert json.loads(archive.read("data/content.json")) == [_content_line("files/content/notes/hello.txt", 31)]
    assert archive.read("data/images.csv") == (
        b"connector,system,source_type,source_name,source_kind,collected_at,file,bytes\r\n"
        b"content,content,provided,,,,files/content/holiday/beach.jpg,26\r\n")
    manifest = json.loads(archive.read("manifest.json"))
    assert (manifest["format_version"], manifest["request_id"], manifest["subject_email"]) == (1, A, "ada.upgrade@example.com")
    assert {category: entry["records"] for category, entry in manifest["categories"].items()} == {
        "feedback_ratings": 2, "content": 1, "images": 1}
    assert {"path": "files/content/notes/hello.txt", "bytes": 31,
            "sha256": "c04c871310ffb350ed6e4f6003591f6636e5383872df7fd129d881b8c17e765e"} in manifest["files"]
    assert Request.objects.get(pk=A).result == {"categories": {"feedback_ratings": 2, "content": 1, "images": 1},
                                                "bytes": Export.objects.get(request_id=A).bytes}

    # b: one task staged by the previous release, one run by this release from the previous one's message.
    archive = _archive(B)
    assert archive.namelist() == ["files/content/letter.txt", "data/feedback_ratings.json", "data/feedback_ratings.csv",
                                  "data/content.json", "data/content.csv", "index.html", "manifest.json"]
    assert archive.read("files/content/letter.txt") == b"Dear Bea, a letter kept by the content system.\n"
    assert json.loads(archive.read("data/feedback_ratings.json")) == [_probe_line(0)]
    assert json.loads(archive.read("data/content.json")) == [_content_line("files/content/letter.txt", 47)]
    probe = ConnectorTask.objects.get(pk=920002)
    assert (probe.status, probe.attempts, probe.result_format, probe.output["format"]) == ("succeeded", 1, 1, 2)

    # c: a deletion whose receipts the previous release recorded; this release tells the recipient of the content erased.
    assert Request.objects.get(pk=C).result == {"erased": {"content": 1, "feedback_ratings": 3}, "retained": [],
                                                "recipients_notified": ["Nimbus Hosting GmbH"]}


@pytest.mark.django_db(transaction=True)
def test_a_message_in_a_format_this_release_does_not_read_is_refused_and_its_task_left_queued(worker, unique_email):
    email = unique_email("newer-message")
    request = request_make(status="processing", email=email)
    task = ConnectorTask.objects.create(request=request, connector="probe")
    probe_plan(email, records=1)
    # As a newer release would ring for it.
    celery_app.send_task("dsar.tasks.connector_task_run", (task.pk,), headers={"dsar_format": 2})

    wait_for(lambda: f"the message for dsar.tasks.connector_task_run[{task.pk}] is in format 2, which this release does not read"
             in worker.log.read_text(), timeout=30, what="the worker to refuse the message")
    stored = ConnectorTask.objects.get(pk=task.pk)
    assert (stored.status, stored.attempts, stored.claimed_by, stored.output) == ("queued", 0, "", None)
    assert probe_calls(email) == 0
    assert Request.objects.get(pk=request.pk).status == "processing"


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value", "refusal"), [
    ("output", {"format": 3, "prefix": "work/x/probe/1", "inline": {}, "categories": {}}, "the work probe staged for request {} is in format 3"),
    ("result_format", 2, "the result of probe for request {} is in format 2"),
])
def test_a_final_step_over_results_in_a_format_this_release_does_not_read_is_refused_and_changes_nothing(field, value, refusal):
    request = request_make(status="processing")
    ConnectorTask.objects.create(request=request, connector="probe", status="succeeded", **{field: value})
    step = FinalStep.objects.create(request=request)
    default_storage.save(f"work/{request.pk}/probe/1/feedback_ratings.jsonl", ContentFile(b"{}\n"))

    with pytest.raises(FormatUnknown, match=f"{refusal.format(request.pk)}, which this release does not read"):
        processing.final_step_run(request.pk)
    stored = FinalStep.objects.get(pk=step.pk)
    assert (stored.status, stored.attempts, stored.claimed_by, stored.lease_until) == ("queued", 0, "", None)
    assert Request.objects.get(pk=request.pk).status == "processing"
    assert not Export.objects.filter(request=request).exists()
    assert default_storage.exists(f"work/{request.pk}/probe/1/feedback_ratings.jsonl")


def test_every_doorbell_says_the_format_of_its_message():
    broker = _broker()
    broker.delete("upgrade-test")  # a queue no worker takes from
    ring_all("dsar.tasks.connector_task_run", [((7,), {"queue": "upgrade-test"})])
    (message,) = [json.loads(raw) for raw in broker.lrange("upgrade-test", 0, -1)]
    broker.delete("upgrade-test")
    assert (message["headers"]["task"], message["headers"]["argsrepr"], message["headers"]["dsar_format"]) == (
        "dsar.tasks.connector_task_run", "(7,)", 1)


@pytest.mark.django_db
def test_the_migrations_describe_the_models_as_they_are():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)  # exits 1 on a change no migration holds
    assert out.getvalue() == "No changes detected\n"
