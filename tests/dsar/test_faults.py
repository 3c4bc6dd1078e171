"""Faults in the systems connectors reach (errors at random, malformed data, a connector that
hangs) and in the product's own (its database connection dropped mid-task, a full disk under the
export). A request ends completed with every category, or failed with the reason; never completed
with a gap, and never with half-written state left where anyone could see it."""

from __future__ import annotations

import os
import random
import subprocess
import zipfile
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.db import connection

from dsar.models import ConnectorTask, Export

from ..support.flows import approve, file_request, wait_until_final
from ..support.probe import probe_calls, probe_plan
from ..support.waiting import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]


def test_errors_at_random_on_thirty_percent_of_calls_are_retried_and_every_request_completes(api, reviewer, mailoutbox, unique_email):
    rng = random.Random(7)
    ids = []
    for _ in range(8):
        email = unique_email("flaky")
        # 30% of calls fail, as a fixed pattern; four in a row is the most the bound allows
        pattern = "".join("T" if rng.random() < 0.3 else "F" for _ in range(4)) + "F"
        probe_plan(email, failures=pattern, records=2)
        request_id, _ = file_request(api, mailoutbox, type="access", email=email)
        approve(reviewer, request_id)
        ids.append((request_id, pattern))
    for request_id, pattern in ids:
        request = wait_until_final(request_id)
        assert request.status == "completed", pattern
        assert request.result["categories"]["feedback_ratings"] == 2
        probe = ConnectorTask.objects.get(request_id=request_id, connector="probe")
        assert probe.attempts == pattern.index("F") + 1


@pytest.mark.parametrize("malformed", ["category", "fields"])
def test_malformed_data_fails_the_request_with_the_reason_and_no_export(api, reviewer, mailoutbox, unique_email, malformed):
    email = unique_email("malformed")
    probe_plan(email, records=1, malformed=malformed)
    request_id, _ = file_request(api, mailoutbox, type="access", email=email)
    approve(reviewer, request_id)
    request = wait_until_final(request_id)
    assert request.status == "failed"
    assert request.failure_reason.startswith("probe: PermanentError")
    assert ("not a category" if malformed == "category" else "not a mapping") in request.failure_reason
    assert not hasattr(request, "export") or request.export is None


def test_a_connector_that_hangs_past_its_time_limit_is_stopped_and_retried(api, reviewer, mailoutbox, unique_email):
    email = unique_email("hangs")
    probe_plan(email, sleep=30, slow_calls=1, records=2)  # the first call hangs; the probe's limit is 5 s
    request_id, _ = file_request(api, mailoutbox, type="access", email=email)
    approve(reviewer, request_id)
    request = wait_until_final(request_id)
    assert request.status == "completed"
    assert request.result["categories"]["feedback_ratings"] == 2
    probe = ConnectorTask.objects.get(request_id=request_id, connector="probe")
    assert probe.attempts == 2 and probe_calls(email) == 2
    assert "TimeoutError: probe did not finish within 5s" in probe.last_error


def _drop_other_connections() -> int:
    """Terminate every other session on this test database: the worker's, mid-task."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_a_database_connection_dropped_mid_task_is_retried_and_nothing_half_written_is_seen(api, reviewer, mailoutbox, unique_email):
    email = unique_email("dropped")
    probe_plan(email, sleep=2, slow_calls=1, records=3)
    request_id, _ = file_request(api, mailoutbox, type="access", email=email)
    approve(reviewer, request_id)
    task = wait_for(lambda: ConnectorTask.objects.filter(request_id=request_id, connector="probe", status="running").first(),
                    what="the probe task to start")
    assert _drop_other_connections() >= 1
    request = wait_until_final(request_id)
    assert request.status == "completed"
    assert request.result["categories"]["feedback_ratings"] == 3
    probe = ConnectorTask.objects.get(pk=task.pk)
    assert probe.attempts == 2 and probe.status == "succeeded"
    assert "database connection lost" in probe.last_error  # the first attempt committed nothing
    assert Export.objects.filter(request_id=request_id).count() == 1
    assert not default_storage.exists(f"work/{request_id}")  # both attempts' staged files are gone


@pytest.fixture
def small_disk():
    """A 256 KiB tmpfs mounted over the exports directory, for as long as the test wants it full."""
    exports = Path(default_storage.path("exports"))
    exports.mkdir(parents=True, exist_ok=True)
    while os.path.ismount(exports):  # left mounted by a run killed in the middle of this test
        subprocess.run(["umount", str(exports)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(exports)], check=True)
    mounted = [True]

    def free() -> None:
        if mounted[0]:
            subprocess.run(["umount", str(exports)], check=True)
            mounted[0] = False

    free.path = exports
    try:
        yield free
    finally:
        free()


def test_a_full_disk_under_the_export_fails_cleanly_and_retry_works_once_space_is_back(api, reviewer, mailoutbox, unique_email, small_disk):
    email = unique_email("fulldisk")
    probe_plan(email, records=200, text_bytes=4000)  # about 1.6 MB of text that does not compress away
    request_id, _ = file_request(api, mailoutbox, type="access", email=email)
    approve(reviewer, request_id)
    request = wait_until_final(request_id)
    assert request.status == "failed"
    assert request.failure_reason.startswith("export: OSError") and "No space left on device" in request.failure_reason
    assert not Export.objects.filter(request_id=request_id).exists()
    assert [p for p in small_disk.path.rglob("*") if p.is_file()] == []  # the partial archive was removed

    small_disk()  # space is back
    answer = reviewer.post(f"/api/v1/staff/requests/{request_id}/retry")
    assert answer.status_code == 200, answer.content
    request = wait_until_final(request_id)
    assert request.status == "completed"
    export = Export.objects.get(request_id=request_id)
    with default_storage.open(export.path) as handle, zipfile.ZipFile(handle) as archive:
        assert archive.testzip() is None
        assert sum(1 for _ in archive.open("data/feedback_ratings.json").read().splitlines()) >= 200
