"""The scheduled jobs, each at its boundaries under a controlled clock, and run twice at once."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import signal
import threading

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from devstack import free_port
from dsar import jobs, services
from dsar.errors import Conflict
from dsar.lifecycle import audit_verify
from dsar.locks import job_lock
from dsar.models import AuditEntry, ConnectorTask, DeadlineNotice, Export, OutgoingEmail, PurgeTally, Request
from dsar.staff import ROLE_ADMIN, ROLE_REVIEWER, staff_user_ensure

from ..factories import request_make
from ..support.flows import approve, file_request, wait_until_final
from ..support.probe import probe_plan
from ..support.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
MINUTE = dt.timedelta(minutes=1)
UTC = dt.UTC


def run_at(name: str, when: dt.datetime) -> str:
    with time_machine.travel(when, tick=False):
        return jobs.job_run(name)


@pytest.fixture
def staff_mail():
    reviewer = staff_user_ensure(username="rev", role=ROLE_REVIEWER)
    admin = staff_user_ensure(username="adm", role=ROLE_ADMIN)
    for user, address in ((reviewer, "rev@example.com"), (admin, "adm@example.com")):
        user.email = address
        user.save(update_fields=["email"])


def test_deadline_watch_reminds_at_7_and_2_days_and_escalates_once_overdue(staff_mail, mailoutbox):
    request = request_make(status="pending_review")
    due = request.due_at
    timeline = [
        (due - dt.timedelta(days=7) - MINUTE, set()),
        (due - dt.timedelta(days=7) + MINUTE, {"7d"}),
        (due - dt.timedelta(days=2) - MINUTE, {"7d"}),
        (due - dt.timedelta(days=2) + MINUTE, {"7d", "2d"}),
        (due - MINUTE, {"7d", "2d"}),
        (due + MINUTE, {"7d", "2d", "overdue"}),
        (due + dt.timedelta(days=3), {"7d", "2d", "overdue"}),
    ]
    for when, expected in timeline:
        run_at("deadline_watch", when)
        assert set(DeadlineNotice.objects.filter(request=request).values_list("kind", flat=True)) == expected, when
    recipients = [m.to for m in mailoutbox]
    assert recipients == [["adm@example.com", "rev@example.com"]] * 2 + [["adm@example.com"]]
    assert "OVERDUE" in mailoutbox[-1].body
    assert request.email not in "".join(m.body for m in mailoutbox)


def _received_1_march_2026(status: str, email: str = "someone@example.com") -> Request:
    """A request received 1 March 2026 under the GDPR: due 1 April 2026, 12:00 UTC."""
    request = request_make(status=status, email=email)
    Request.objects.filter(pk=request.pk).update(created_at=dt.datetime(2026, 3, 1, 12, tzinfo=UTC),
                                                 due_at=dt.datetime(2026, 4, 1, 12, tzinfo=UTC))
    return Request.objects.get(pk=request.pk)


def _kinds(request: Request) -> set[str]:
    return set(DeadlineNotice.objects.filter(request=request).values_list("kind", flat=True))


def test_a_request_found_overdue_keeps_the_deadline_it_missed_whatever_happens_after(staff_mail):
    request = _received_1_march_2026("pending_review")
    run_at("deadline_watch", dt.datetime(2026, 4, 1, 11, 59, tzinfo=UTC))
    assert Request.objects.get(pk=request.pk).overdue_since is None
    run_at("deadline_watch", dt.datetime(2026, 4, 1, 12, 1, tzinfo=UTC))
    assert Request.objects.get(pk=request.pk).overdue_since == dt.datetime(2026, 4, 1, 12, tzinfo=UTC)
    with time_machine.travel(dt.datetime(2026, 4, 3, 9, tzinfo=UTC), tick=False):
        with pytest.raises(Conflict):
            services.request_extend(request_id=request.pk, actor="staff:rita", reason="late anyway", days=30)
        services.request_deny(request_id=request.pk, actor="staff:rita", reason="Not the account holder.")
    run_at("deadline_watch", dt.datetime(2026, 4, 4, 12, tzinfo=UTC))
    answered = Request.objects.get(pk=request.pk)
    assert (answered.status, answered.due_at, answered.overdue_since) == (
        "denied", dt.datetime(2026, 4, 1, 12, tzinfo=UTC), dt.datetime(2026, 4, 1, 12, tzinfo=UTC))


def test_a_request_answered_after_its_due_date_keeps_the_deadline_it_missed_though_no_watch_ran_between():
    late, in_time = _received_1_march_2026("pending_review", "late@example.com"), _received_1_march_2026("pending_review", "prompt@example.com")
    with time_machine.travel(dt.datetime(2026, 4, 1, 12, 30, tzinfo=UTC), tick=False):
        services.request_deny(request_id=late.pk, actor="staff:rita", reason="Not the account holder.")
    with time_machine.travel(dt.datetime(2026, 4, 1, 11, 30, tzinfo=UTC), tick=False):
        services.request_deny(request_id=in_time.pk, actor="staff:rita", reason="Not the account holder.")
    on_the_dot = _received_1_march_2026("pending_review", "on.the.dot@example.com")
    with time_machine.travel(dt.datetime(2026, 4, 1, 12, tzinfo=UTC), tick=False):  # the due moment itself is in time
        services.request_deny(request_id=on_the_dot.pk, actor="staff:rita", reason="Not the account holder.")
    assert Request.objects.get(pk=late.pk).overdue_since == dt.datetime(2026, 4, 1, 12, tzinfo=UTC)
    assert Request.objects.get(pk=in_time.pk).overdue_since is None
    assert Request.objects.get(pk=on_the_dot.pk).overdue_since is None


def test_a_completed_export_staff_have_not_released_stays_on_the_deadline_watch(staff_mail, mailoutbox, settings):
    settings.DSAR_REVIEW_BEFORE_RELEASE = True
    held = _received_1_march_2026("completed", "held@example.com")
    released = _received_1_march_2026("completed", "released@example.com")
    made = dt.datetime(2026, 3, 20, 12, tzinfo=UTC)
    for request, released_at in ((held, None), (released, made)):
        Export.objects.create(request=request, path=f"exports/{request.pk}/test.zip", bytes=6, sha256="0" * 64, created_at=made,
                              expires_at=dt.datetime(2026, 5, 1, 12, tzinfo=UTC), released_at=released_at)
    timeline = [
        (dt.datetime(2026, 3, 25, 11, 59, tzinfo=UTC), set()),
        (dt.datetime(2026, 3, 25, 12, 1, tzinfo=UTC), {"7d"}),
        (dt.datetime(2026, 3, 30, 12, 1, tzinfo=UTC), {"7d", "2d"}),
        (dt.datetime(2026, 4, 1, 12, 1, tzinfo=UTC), {"7d", "2d", "overdue"}),
    ]
    for when, expected in timeline:
        run_at("deadline_watch", when)
        assert (_kinds(held), _kinds(released)) == (expected, set()), when
    assert Request.objects.get(pk=held.pk).overdue_since == dt.datetime(2026, 4, 1, 12, tzinfo=UTC)
    assert Request.objects.get(pk=released.pk).overdue_since is None
    assert [m.to for m in mailoutbox] == [["adm@example.com", "rev@example.com"]] * 2 + [["adm@example.com"]]
    assert "OVERDUE" in mailoutbox[-1].body and "The export is made but the person does not have it yet" in mailoutbox[-1].body


def test_export_expiry_warns_a_day_before_then_deletes_the_file_and_expires_the_request(mailoutbox):
    request = request_make(status="completed")
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    path = default_storage.save(f"exports/{request.pk}/test.zip", ContentFile(b"PK zip"))
    expires = timezone.now() + dt.timedelta(days=7)
    Export.objects.create(request=request, path=path, bytes=6, sha256="0" * 64, created_at=timezone.now(), expires_at=expires, released_at=timezone.now())

    run_at("export_expiry", expires - dt.timedelta(days=1) - MINUTE)
    assert not mailoutbox
    run_at("export_expiry", expires - dt.timedelta(days=1) + MINUTE)
    assert [m.subject for m in mailoutbox] == ["Example Company: Your download expires soon"]
    run_at("export_expiry", expires - MINUTE)
    assert default_storage.exists(path) and Request.objects.get(pk=request.pk).status == "completed"
    run_at("export_expiry", expires + MINUTE)
    assert not default_storage.exists(path)
    assert Request.objects.get(pk=request.pk).status == "expired"
    assert Export.objects.get(request=request).deleted_at is not None
    assert len(mailoutbox) == 1


def test_an_export_staff_have_not_released_is_neither_warned_about_nor_deleted_when_its_period_would_have_ended(mailoutbox):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    request = request_make(status="completed")
    path = default_storage.save(f"exports/{request.pk}/test.zip", ContentFile(b"PK zip"))
    expires = timezone.now() + dt.timedelta(days=7)
    Export.objects.create(request=request, path=path, bytes=6, sha256="0" * 64, created_at=timezone.now(), expires_at=expires)
    run_at("export_expiry", expires - dt.timedelta(hours=12))
    run_at("export_expiry", expires + dt.timedelta(days=30))
    assert default_storage.exists(path) and Request.objects.get(pk=request.pk).status == "completed"
    assert Export.objects.get(request=request).deleted_at is None
    assert not mailoutbox


def test_the_export_of_a_person_whose_data_a_later_deletion_erased_stops_working_at_once_and_is_deleted_by_the_next_run():
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from dsar.exports import download_url, export_for_download

    access = request_make(status="completed", email="erased@example.com")
    other = request_make(status="completed", email="kept@example.com")
    now = timezone.now()
    exports = {}
    for request in (access, other):
        path = default_storage.save(f"exports/{request.pk}/test.zip", ContentFile(b"PK zip"))
        exports[request.pk] = Export.objects.create(request=request, path=path, bytes=6, sha256="0" * 64, created_at=now,
                                                    expires_at=now + dt.timedelta(days=7), released_at=now)
    signature = {pk: download_url(export).rsplit("/", 1)[1] for pk, export in exports.items()}
    earlier = request_make(status="completed", type="deletion", email="erased@example.com")
    Request.objects.filter(pk=earlier.pk).update(completed_at=now - dt.timedelta(days=1))  # before the export: it stands
    assert export_for_download(request_id=access.pk, signature=signature[access.pk]) == exports[access.pk]

    erasure = request_make(status="completed", type="deletion", email="erased@example.com")
    Request.objects.filter(pk=erasure.pk).update(completed_at=now + dt.timedelta(minutes=5))
    assert export_for_download(request_id=access.pk, signature=signature[access.pk]) is None
    assert export_for_download(request_id=other.pk, signature=signature[other.pk]) == exports[other.pk]

    run_at("export_expiry", now + dt.timedelta(minutes=6))
    assert not default_storage.exists(exports[access.pk].path) and default_storage.exists(exports[other.pk].path)
    assert Request.objects.get(pk=access.pk).status == "expired" and Request.objects.get(pk=other.pk).status == "completed"
    assert AuditEntry.objects.filter(request=access, to_status="expired").values_list("note", flat=True)[0] == (
        "the person's data was erased by a later request")


def test_unverified_requests_are_purged_after_seven_days_leaving_a_count_and_the_trail():
    request = request_make(status="unverified")
    verified = request_make(status="pending_review")
    created = request.created_at
    run_at("unverified_purge", created + dt.timedelta(days=7) - MINUTE)
    assert Request.objects.filter(pk=request.pk).exists()
    run_at("unverified_purge", created + dt.timedelta(days=7) + MINUTE)
    assert not Request.objects.filter(pk=request.pk).exists()
    assert Request.objects.filter(pk=verified.pk).exists()
    assert sum(PurgeTally.objects.values_list("count", flat=True)) == 1
    assert AuditEntry.objects.filter(request_id=request.pk).exists()
    assert audit_verify() == []


def test_a_request_never_verified_lapses_with_one_email_saying_how_to_start_again_then_is_deleted(mailoutbox, settings):
    settings.DSAR_PUBLIC_URL = "https://privacy.example.com"
    request = request_make(status="unverified", type="deletion", email="lapsing@example.com")
    anonymised = request_make(status="unverified", email="anon:0123")
    Request.objects.filter(pk__in=[request.pk, anonymised.pk]).update(created_at=dt.datetime(2026, 3, 2, 12, tzinfo=UTC))
    Request.objects.filter(pk=anonymised.pk).update(anonymized_at=dt.datetime(2026, 3, 5, tzinfo=UTC))

    assert run_at("unverified_purge", dt.datetime(2026, 3, 9, 11, 59, tzinfo=UTC)) == (
        "unverified_purge: 0 lapse emails queued, 0 never-verified requests deleted")
    assert mailoutbox == [] and Request.objects.filter(pk=request.pk).exists()
    assert run_at("unverified_purge", dt.datetime(2026, 3, 9, 12, 1, tzinfo=UTC)) == (
        "unverified_purge: 1 lapse emails queued, 2 never-verified requests deleted")
    [email] = mailoutbox
    assert (email.to, email.subject) == (["lapsing@example.com"], "Example Company: Your request has lapsed")
    html = email.alternatives[0][0]
    for text in (email.body, html):
        assert "On 2 March 2026 someone made a request to delete the data we hold about this email address." in text
        assert "not confirmed within 7 days. So it has lapsed: we have not acted on it, and we are deleting it." in text
        assert "https://privacy.example.com/request/" in text
        assert "complain to a data protection authority (a supervisory authority)" in text
        assert "the right to take the matter to court" in text
    assert not Request.objects.filter(pk__in=[request.pk, anonymised.pk]).exists()
    assert list(AuditEntry.objects.filter(request_id=request.pk).values_list("action", flat=True)) == ["filed", "lapsed"]

    run_at("unverified_purge", dt.datetime(2026, 3, 10, 12, tzinfo=UTC))
    assert len(mailoutbox) == 1
    assert audit_verify() == []


def test_a_request_past_its_days_to_confirm_can_be_neither_confirmed_nor_sent_a_new_code_though_not_yet_deleted(mailoutbox):
    request = request_make(status="unverified", email="too.late@example.com")
    Request.objects.filter(pk=request.pk).update(created_at=dt.datetime(2026, 3, 2, 12, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2026, 3, 9, 11, 59, tzinfo=UTC), tick=False):
        services.request_code_resend(request_id=request.pk)  # two minutes short of 7 days: still open
    mailoutbox.clear()
    with time_machine.travel(dt.datetime(2026, 3, 9, 12, 1, tzinfo=UTC), tick=False):
        for attempt in (lambda: services.request_code_resend(request_id=request.pk),
                        lambda: services.request_verify(request_id=request.pk, code="12345678")):
            with pytest.raises(Conflict) as refused:
                attempt()
            assert (refused.value.code, str(refused.value)) == (
                "request_lapsed", "This request lapsed: it was not confirmed within 7 days. Make a new request.")
    stored = Request.objects.get(pk=request.pk)
    assert (stored.status, stored.code_attempts, stored.verified_at) == ("unverified", 0, None)
    assert mailoutbox == []
    assert list(AuditEntry.objects.filter(request_id=request.pk).values_list("action", flat=True)) == ["filed", "code_resent"]


def test_a_lapsed_request_is_kept_until_its_lapse_email_has_left_the_outbox(mailoutbox, settings):
    request = request_make(status="unverified", email="slow.relay@example.com")
    Request.objects.filter(pk=request.pk).update(created_at=dt.datetime(2026, 3, 2, 12, tzinfo=UTC))
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    # Nothing listens on the port: the relay is down.
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 5
    assert run_at("unverified_purge", dt.datetime(2026, 3, 9, 12, 1, tzinfo=UTC)) == (
        "unverified_purge: 1 lapse emails queued, 0 never-verified requests deleted")
    assert OutgoingEmail.objects.filter(request=request, template="lapsed").exists()
    assert run_at("unverified_purge", dt.datetime(2026, 3, 9, 12, 2, tzinfo=UTC)) == (
        "unverified_purge: 0 lapse emails queued, 0 never-verified requests deleted")

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # the relay is back
    run_at("sweeper", dt.datetime(2026, 3, 9, 13, tzinfo=UTC))
    assert [(m.to, m.subject) for m in mailoutbox] == [(["slow.relay@example.com"], "Example Company: Your request has lapsed")]
    assert run_at("unverified_purge", dt.datetime(2026, 3, 9, 14, tzinfo=UTC)) == (
        "unverified_purge: 0 lapse emails queued, 1 never-verified requests deleted")
    assert not Request.objects.filter(pk=request.pk).exists() and len(mailoutbox) == 1


def test_closed_request_records_are_anonymised_after_24_months_and_the_trail_stays_whole():
    request = request_make(status="denied", email="old@example.com")
    Request.objects.filter(pk=request.pk).update(closed_at=timezone.now())
    closed = Request.objects.get(pk=request.pk).closed_at
    from dateutil.relativedelta import relativedelta

    limit = closed + relativedelta(months=24)
    run_at("record_retention", limit - MINUTE)
    assert Request.objects.get(pk=request.pk).email == "old@example.com"
    run_at("record_retention", limit + MINUTE)
    anonymised = Request.objects.get(pk=request.pk)
    assert anonymised.email.startswith("anon:") and "old@example.com" not in anonymised.email
    assert anonymised.anonymized_at is not None
    assert list(AuditEntry.objects.filter(request=request).values_list("action", flat=True)) == ["filed", "anonymized"]
    assert audit_verify() == []


@pytest.mark.usefixtures("worker")
def test_erasure_verification_flags_data_planted_after_a_deletion(api, reviewer, mailoutbox, unique_email, staff_mail):
    from estate.loader import estate_load, estate_parse

    planted, clean = unique_email("planted"), unique_email("clean")
    estate_load(estate_parse({"subjects": [{"email": e, "accounts": {"name": "P", "searches": ["q"]}} for e in (planted, clean)]}))
    ids = {}
    for email in (planted, clean):
        ids[email], _ = file_request(api, mailoutbox, type="deletion", email=email)
        approve(reviewer, ids[email])
        assert wait_until_final(ids[email]).status == "completed"
    estate_load(estate_parse({"subjects": [{"email": planted, "accounts": {"searches": ["came back"]}}]}))

    completed = max(Request.objects.get(pk=i).completed_at for i in ids.values())
    run_at("erasure_verification", completed + dt.timedelta(hours=24) - MINUTE)
    assert Request.objects.get(pk=ids[planted]).erasure_check is None
    run_at("erasure_verification", completed + dt.timedelta(hours=24) + MINUTE)
    flagged, ok = Request.objects.get(pk=ids[planted]), Request.objects.get(pk=ids[clean])
    assert flagged.erasure_check["ok"] is False
    assert flagged.erasure_check["found"] == {"name_contact": 1, "searches_commands": 1}
    assert ok.erasure_check["ok"] is True
    alerts = [m for m in mailoutbox if m.subject == "Example Company: Data found after an erasure"]
    assert len(alerts) == 1 and alerts[0].to == ["adm@example.com"]
    assert str(flagged.pk) in alerts[0].body
    shown = reviewer.get(f"/api/v1/staff/requests/{flagged.pk}").json()["erasure_check"]
    assert shown["ok"] is False and shown["found"]["searches_commands"] == 1


def test_the_sweeper_revives_a_task_past_its_lease_and_fails_one_swept_too_often():
    request = request_make(status="processing", email="swept.revived@example.com")
    probe_plan(request.email, sleep=30)  # should a worker take the revived task, it stays running
    task = ConnectorTask.objects.create(request=request, connector="probe", status="running", attempts=1,
                                        lease_until=timezone.now() + dt.timedelta(minutes=30))
    lease = task.lease_until
    run_at("sweeper", lease - MINUTE)
    assert ConnectorTask.objects.get(pk=task.pk).status == "running"
    run_at("sweeper", lease + MINUTE)
    revived = ConnectorTask.objects.get(pk=task.pk)
    # put back in the queue and rung for: a worker of this test run may already have claimed it
    assert revived.sweeps == 1
    assert (revived.status, revived.lease_until) == ("queued", None) or (revived.status, revived.attempts) == ("running", 2)

    lost = request_make(status="processing")  # no message for this one: no worker can take it
    task = ConnectorTask.objects.create(request=lost, connector="probe", status="running", attempts=1, sweeps=3, lease_until=lease)
    run_at("sweeper", lease + MINUTE)
    assert ConnectorTask.objects.get(pk=task.pk).status == "failed"
    failed = Request.objects.get(pk=lost.pk)
    assert failed.status == "failed" and "died under it 4 times" in failed.failure_reason


@pytest.mark.usefixtures("worker")
def test_the_sweeper_revives_a_task_whose_worker_was_killed_and_the_request_gets_one_export(api, reviewer, mailoutbox, unique_email):
    email = unique_email("killed")
    probe_plan(email, sleep=60, records=1)
    request_id, _ = file_request(api, mailoutbox, type="access", email=email)
    approve(reviewer, request_id)
    task = wait_for(
        lambda: ConnectorTask.objects.filter(request_id=request_id, connector="probe", status="running").exclude(claimed_by="").first(),
        what="the probe task to start",
    )
    pid = int(task.claimed_by.rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)  # the worker process running the task dies mid-run
    probe_plan(email, records=1)  # the system answers quickly from now on

    run_at("sweeper", task.lease_until + MINUTE)
    assert wait_until_final(request_id).status == "completed"
    revived = ConnectorTask.objects.get(pk=task.pk)
    assert revived.sweeps == 1 and revived.status == "succeeded"
    assert Export.objects.filter(request_id=request_id).count() == 1
    assert Request.objects.get(pk=request_id).result["categories"]["feedback_ratings"] == 1


def test_two_runs_of_a_job_at_once_do_the_work_once(staff_mail, mailoutbox):
    requests = [request_make(status="pending_review") for _ in range(5)]
    when = requests[0].due_at + MINUTE
    barrier = threading.Barrier(2)
    summaries = []

    def run():
        barrier.wait()
        summaries.append(run_at("deadline_watch", when))
        connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(DeadlineNotice.objects.values_list("kind", flat=True)) == ["overdue"] * 5
    assert len(mailoutbox) == 5
    assert sum("another run holds the lock" in s for s in summaries) == 1


@pytest.mark.parametrize("name", sorted(jobs.JOBS))
def test_a_run_finds_the_lock_held_by_another_and_does_nothing(staff_mail, name):
    request_make(status="pending_review")
    held, release = threading.Event(), threading.Event()

    def hold():
        with job_lock(name):
            held.set()
            release.wait(30)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30)
        assert "another run holds the lock" in jobs.job_run(name)
        assert DeadlineNotice.objects.count() == 0
    finally:
        release.set()
        holder.join(30)
    assert "another run holds the lock" not in jobs.job_run(name)


def test_every_job_is_runnable_by_hand_and_scheduled_in_the_database(capsys):
    from django_celery_beat.models import PeriodicTask

    call_command("schedule_jobs")
    call_command("schedule_jobs")
    assert sorted(PeriodicTask.objects.filter(name__startswith="dsar: ").values_list("name", flat=True)) == sorted(f"dsar: {n}" for n in jobs.JOBS)
    for name in jobs.JOBS:
        call_command("run_job", name, "--now", "2026-01-01T00:00:00+00:00")
    assert capsys.readouterr().out.count("\n") == len(jobs.JOBS) + 2


# --- audit_head_ship: the chain's newest seal, kept off the database --------------------------------------


def test_the_audit_head_is_shipped_as_one_line_a_run_with_its_mac_and_verify_audit_compares_with_it(settings, audit_heads, capsys):
    from dsar.models import AuditSeal

    settings.DSAR_AUDIT_KEY = "k" * 32
    assert jobs.job_run("audit_head_ship") == "audit_head_ship: the trail is empty; nothing shipped"
    assert not (audit_heads / "heads.jsonl").exists()
    request_make()
    shipped_at = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
    assert jobs.job_run("audit_head_ship", now=shipped_at) == f"audit_head_ship: head seq 1 shipped to {audit_heads / 'heads.jsonl'}"
    request_make()
    jobs.job_run("audit_head_ship", now=shipped_at + dt.timedelta(minutes=15))
    lines = [json.loads(line) for line in (audit_heads / "heads.jsonl").read_text().splitlines()]
    seals = list(AuditSeal.objects.order_by("seq"))
    assert [(line["seq"], line["hash"]) for line in lines] == [(1, seals[0].hash), (2, seals[1].hash)]
    newest = lines[-1]
    assert newest["shipped_at"] == "2026-03-01T09:45:00.000000"
    assert newest["sealed_at"] == seals[1].sealed_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    message = f"head:2:{seals[1].hash}:{newest['sealed_at']}:2026-03-01T09:45:00.000000"
    assert newest["mac"] == hmac.new(b"k" * 32, message.encode(), hashlib.sha256).hexdigest()
    call_command("verify_audit")
    out = capsys.readouterr().out.splitlines()
    assert out == [f"audit trail intact: 2 entries; head {seals[1].hash}",
                   f"compared with the chain holds the head shipped at 2026-03-01T09:45:00.000000 (seq 2, hash {seals[1].hash}), "
                   f"from {audit_heads / 'heads.jsonl'}"]


def test_no_head_is_shipped_once_the_chain_lost_the_head_shipped_last(audit_heads, caplog):
    from ..support.audit import triggers_aside

    request_make()
    jobs.job_run("audit_head_ship")
    with triggers_aside() as cursor:
        cursor.execute("TRUNCATE dsar_auditentry, dsar_auditseal")
    request_make()  # a new chain, begun again from seq 1
    summary = jobs.job_run("audit_head_ship")
    assert summary.startswith("audit_head_ship: nothing shipped: the chain does not hold the head shipped at ")
    assert len((audit_heads / "heads.jsonl").read_text().splitlines()) == 1
    assert any(record.levelname == "ERROR" and "run verify_audit" in record.getMessage() for record in caplog.records)


@pytest.mark.usefixtures("worker")
def test_the_sweeper_revives_a_final_step_whose_worker_was_lost_and_a_worker_completes_its_request():
    from dsar.models import FinalStep

    request = request_make(status="processing", type="deletion", email="step.lost@example.com")
    ConnectorTask.objects.create(request=request, connector="probe", status="succeeded", attempts=1,
                                 receipt={"erased": {"feedback_ratings": 2}, "retained": [], "suppressed_sources": []})
    step = FinalStep.objects.create(request=request, status="running", attempts=1, claimed_by="gone:1",
                                    lease_until=timezone.now() + dt.timedelta(minutes=30))
    run_at("sweeper", step.lease_until + MINUTE)  # its worker died: the lease ran out unrenewed
    completed = wait_until_final(request.pk)
    assert (completed.status, completed.result["erased"]) == ("completed", {"feedback_ratings": 2})
    assert FinalStep.objects.filter(pk=step.pk).values_list("status", "attempts", "sweeps").get() == ("succeeded", 2, 1)
