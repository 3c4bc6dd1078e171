"""Scheduled jobs that keep every request moving and every deadline met.

Each job takes the time it runs at (so tests control the clock), does a bounded amount of work,
and returns a one-line summary that is logged. A job holds a PostgreSQL advisory lock while it
runs: a second run started at the same time, on any worker, finds the lock taken and does nothing.
Celery beat rings for them on the schedule stored in the database (django-celery-beat; see
`schedule_ensure`); `python manage.py run_job NAME` runs one by hand.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Callable

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import DurationField, Exists, ExpressionWrapper, F, OuterRef, Q, Value
from django.urls import reverse
from django.utils import timezone

from connectors.base import Identity, TransientError
from connectors.registry import connector_get

from . import exports, locks, processing, recipients
from .lifecycle import FINAL, audit_head_append, audit_head_check, audit_head_newest, audit_record, request_transition
from .models import (ConnectorTask, DeadlineNotice, Export, OutgoingEmail, PurgeTally, RecipientNotification, Request, RequestQuestion,
                     RequestType, Status, TaskStatus)
from .notifications import email_on_commit, emails_sweep, staff_email_on_commit
from .selectors import unanswered_q
from .staff import ROLE_ADMIN, ROLE_REVIEWER, staff_emails

logger = logging.getLogger(__name__)
SYSTEM = "system"
LAPSED = "lapsed"  # the email, and the notice that it was sent, of a request never verified


# --- The jobs -------------------------------------------------------------------------------------------


def deadline_watch(*, now: dt.datetime, limit: int) -> str:
    """Remind reviewers N days before an unanswered request is due (DSAR_REMINDER_DAYS), once per
    threshold, and escalate to admins once one is overdue; the assignees of its systems with no API
    whose tasks still wait for staff are told too. An overdue request keeps the deadline it missed
    (`overdue_since`) whatever happens to it after."""
    sent = 0
    thresholds = [(f"{days}d", now + dt.timedelta(days=days)) for days in sorted(settings.DSAR_REMINDER_DAYS)]
    thresholds.append(("overdue", now))
    for kind, horizon in thresholds:
        # Unanswered (an export waiting for release too), and verified: staff chase nothing the person never confirmed.
        due = (Request.objects.filter(unanswered_q(), due_at__lte=horizon).exclude(status=Status.UNVERIFIED)
               .exclude(deadline_notices__kind=kind))
        if kind != "overdue":
            due = due.filter(due_at__gt=now)
        for request in due.order_by("due_at")[:limit]:
            with transaction.atomic():
                notice, created = DeadlineNotice.objects.get_or_create(request=request, kind=kind, defaults={"sent_at": now})
                if not created:
                    continue
                if kind == "overdue":
                    Request.objects.filter(pk=request.pk, overdue_since__isnull=True).update(overdue_since=F("due_at"))
                role = ROLE_ADMIN if kind == "overdue" else ROLE_REVIEWER
                manual, assignees = _manual_tasks_waiting(request)
                audit_record(request, actor=SYSTEM, action="deadline_overdue" if kind == "overdue" else "deadline_reminder", note=kind)
                staff_email_on_commit(sorted({*staff_emails(role), *assignees}), "staff_deadline", request=request, kind=kind, now=now,
                                      manual_tasks=manual)
            sent += 1
    return f"deadline_watch: {sent} reminders and escalations sent"


def _manual_tasks_waiting(request: Request) -> tuple[list[str], list[str]]:
    """The systems with no API whose tasks of this request wait for staff, and the addresses of
    their assignees (a system without one is every reviewer's, who are reminded anyway)."""
    waiting = sorted(ConnectorTask.objects.filter(request=request, status=TaskStatus.WITH_STAFF).values_list("connector", flat=True))
    usernames = {settings.DSAR_SYSTEMS[name].options.get("assignee") for name in waiting if name in settings.DSAR_SYSTEMS} - {None}
    if not usernames:
        return waiting, []
    users = get_user_model().objects.filter(username__in=usernames, is_active=True, is_staff=True).exclude(email="")
    return waiting, sorted(users.values_list("email", flat=True))


def sweeper(*, now: dt.datetime, limit: int) -> str:
    """Re-enqueue connector tasks and final steps that a lost worker or message left behind, and
    ring for the recipient notifications and the emails that are due."""
    result = processing.tasks_sweep(now=now, limit=limit)
    notices = recipients.recipient_notifications_sweep(now=now, limit=limit)
    emails = emails_sweep(now=now)
    return (f"sweeper: {result['revived']} tasks revived, {result['failed']} failed after too many sweeps, "
            f"{result['final_steps']} final steps requeued, {result['final_steps_failed']} failed after too many sweeps, "
            f"{notices} recipient notifications rung, {emails} emails due")


def export_expiry(*, now: dt.datetime, limit: int) -> str:
    """Warn a day before a released export expires; at expiry delete its file and mark the request
    expired; so too, at once, for the export of a person whose data a deletion erased since it was
    made. An export staff have not released does not expire: the person never had it (it stays on
    the deadline watch, and its download period starts at release)."""
    warned = expired = 0
    soon = Export.objects.filter(deleted_at__isnull=True, warned_at__isnull=True, released_at__isnull=False,
                                 expires_at__gt=now, expires_at__lte=now + dt.timedelta(days=1))
    for export in soon.select_related("request")[:limit]:
        with transaction.atomic():
            if Export.objects.filter(pk=export.pk, warned_at__isnull=True).update(warned_at=now):
                email_on_commit(export.request, "expiring", **exports.download_links(export), expires_at=export.expires_at)
                warned += 1
    live = Export.objects.filter(deleted_at__isnull=True)
    ended = live.filter(released_at__isnull=False, expires_at__lte=now).values_list("request_id", flat=True)[:limit]
    erased = set(live.erased().values_list("request_id", flat=True)[:limit])
    for request_id in [*erased, *ended][:limit]:
        note = "the person's data was erased by a later request" if request_id in erased else "the export's download period ended"
        with transaction.atomic():
            request = locks.request_lock(request_id)
            export = locks.export_lock(request_id)
            if export.deleted_at is not None:
                continue
            export.deleted_at = now
            export.save(update_fields=["deleted_at"])
            if request.status == Status.COMPLETED:
                request_transition(request, "expired", actor=SYSTEM, note=note)
            paths = exports.export_paths(export)
            # An export erased while held for review of other people's data still has its staged work.
            transaction.on_commit(lambda paths=paths, request_id=request_id: ([exports.storage_delete(path) for path in paths],
                                                                              exports.stage_discard(request_id)))
            expired += 1
    return f"export_expiry: {warned} people warned, {expired} exports deleted"


def unverified_purge(*, now: dt.datetime, limit: int) -> str:
    """Tell the person once that a request never verified within DSAR_UNVERIFIED_PURGE_DAYS has
    lapsed, and how to start again; then delete it, keeping only a count per day. Its audit entries
    stay: they hold the request id and what happened, no personal data.

    The lapse email is rendered from the request's row when it is sent, as every email is, and a
    row's emails go with it. So a request is deleted only once its lapse email has left the outbox
    (sent, or given up after DSAR_EMAIL_GIVE_UP_HOURS): with inline delivery that is later in the
    same run, with a mail worker usually the next run. No copy of the address outlives the row."""
    cutoff = now - dt.timedelta(days=settings.DSAR_UNVERIFIED_PURGE_DAYS)
    lapsed = Request.objects.filter(status=Status.UNVERIFIED, created_at__lt=cutoff)
    told = Exists(DeadlineNotice.objects.filter(request=OuterRef("pk"), kind=LAPSED))
    waiting = Exists(OutgoingEmail.objects.filter(request=OuterRef("pk")))
    with transaction.atomic():
        noticed = locks.rows_lock_free(lapsed.filter(~told, anonymized_at__isnull=True), limit=limit)
        for request in noticed:
            DeadlineNotice.objects.create(request=request, kind=LAPSED, sent_at=now)
            audit_record(request, actor=SYSTEM, action="lapsed",
                         note=f"not verified within {settings.DSAR_UNVERIFIED_PURGE_DAYS} days")
            email_on_commit(request, LAPSED, purge_days=str(settings.DSAR_UNVERIFIED_PURGE_DAYS),  # text: see the code email
                            start_url=settings.DSAR_PUBLIC_URL + reverse("portal:request-new"))
    with transaction.atomic():
        # An anonymised request has no one to tell.
        old = locks.rows_lock_free(lapsed.filter(told | Q(anonymized_at__isnull=False), ~waiting), limit=limit)
        deleted = Request.objects.filter(pk__in=[request.pk for request in old]).delete()[1].get("dsar.Request", 0)
        if deleted:
            tally, _ = PurgeTally.objects.get_or_create(day=now.date())
            PurgeTally.objects.filter(pk=tally.pk).update(count=F("count") + deleted)  # an increment, whoever else adds
    return f"unverified_purge: {len(noticed)} lapse emails queued, {deleted} never-verified requests deleted"


def record_retention(*, now: dt.datetime, limit: int) -> str:
    """Past the record-keeping period (DSAR_RECORD_RETENTION_MONTHS after closing), replace the
    personal data in a closed request's record with a keyed hash, and delete what the person sent
    in answer to staff's questions (a proof of identity, often), text and file; the audit trail
    stays whole."""
    cutoff = now - relativedelta(months=settings.DSAR_RECORD_RETENTION_MONTHS)
    done = 0
    with transaction.atomic():
        old = Request.objects.filter(status__in=FINAL, anonymized_at__isnull=True, closed_at__lt=cutoff).order_by("closed_at")
        for request in locks.rows_lock_free(old, limit=limit):
            request.email = f"anon:{_pseudonym(request.email)}"
            request.code_hash = request.token_hash = ""
            request.erasure_check = None
            request.anonymized_at = now
            request.save(update_fields=["email", "code_hash", "token_hash", "erasure_check", "anonymized_at", "updated_at"])
            files = list(request.questions.exclude(answer_file="").values_list("answer_file", flat=True))
            request.questions.update(answer="", answer_file="", answer_content_type="")
            transaction.on_commit(lambda files=files: [exports.storage_delete(path) for path in files])
            RecipientNotification.objects.filter(request=request).update(identities={})  # those never told keep no address either
            audit_record(request, actor=SYSTEM, action="anonymized", note=f"record kept {settings.DSAR_RECORD_RETENTION_MONTHS} months")
            done += 1
    return f"record_retention: {done} closed request records anonymised"


def _pseudonym(email: str) -> str:
    key = hashlib.sha256(f"retention:{settings.SECRET_KEY}".encode()).digest()
    return hmac.new(key, email.encode(), hashlib.sha256).hexdigest()


def erasure_verification(*, now: dt.datetime, limit: int) -> str:
    """A while after a deletion completes, ask every connector again for that identity. Anything
    found beyond what the receipt retained is shown on the request and raised to admins."""
    cutoff = now - dt.timedelta(hours=settings.DSAR_ERASURE_CHECK_HOURS)
    checked = alerts = 0
    due = Request.objects.filter(type=RequestType.DELETION, status=Status.COMPLETED, erasure_check__isnull=True,
                                 anonymized_at__isnull=True, completed_at__lte=cutoff)
    for request in due.order_by("completed_at")[:limit]:
        try:
            found = _still_held(request)
        except TransientError as error:
            logger.warning("request %s: erasure check postponed, a connector is unavailable: %s", request.id, error)
            continue
        with transaction.atomic():
            locked = locks.request_lock(request.pk)
            if locked.erasure_check is not None:
                continue
            locked.erasure_check = {"checked_at": now.isoformat(), "ok": not found, "found": found}
            locked.save(update_fields=["erasure_check", "updated_at"])
            audit_record(locked, actor=SYSTEM, action="erasure_checked", note="clean" if not found else "data found after erasure", data={"found": found})
            if found:
                staff_email_on_commit(staff_emails(ROLE_ADMIN), "staff_erasure_alert", request=locked, found=found)
                alerts += 1
        checked += 1
    return f"erasure_verification: {checked} deletions checked, {alerts} alerts raised"


def _still_held(request: Request) -> dict[str, int]:
    """Records per category the connectors hold now, less what the receipt said was retained. The
    systems and categories staff refused to erase, and the systems referred to the organisation
    managing the account, are not asked about."""
    retained: dict[str, int] = {}
    for item in (request.result or {}).get("retained", []):
        retained[item["category"]] = retained.get(item["category"], 0) + item["count"]
    counts: dict[str, int] = {}
    identity = Identity(email=request.email)
    wanted = set(request.categories)
    for name in processing.systems_answering(request.refusals, request.referred_systems):
        for record in connector_get(name).gather(identity):
            if record.category in wanted:
                counts[record.category] = counts.get(record.category, 0) + 1
    return {c: n - retained.get(c, 0) for c, n in sorted(counts.items()) if n > retained.get(c, 0)}


def audit_head_ship(*, now: dt.datetime, limit: int) -> str:
    """Append the audit chain's newest seal, with a MAC, to the head file off the database
    (DSAR_AUDIT_HEAD_DIR), which verify_audit compares the chain with. Nothing is shipped while the
    chain does not hold the head shipped last: a new head would hide that loss."""
    problem, _ = audit_head_check()
    if problem:
        logger.error("audit trail: %s; run verify_audit", problem)
        return f"audit_head_ship: nothing shipped: {problem}"
    head = audit_head_newest()
    if head is None:
        return "audit_head_ship: the trail is empty; nothing shipped"
    path = audit_head_append(head, now=now)
    return f"audit_head_ship: head seq {head['seq']} shipped to {path}"


def question_reminders(*, now: dt.datetime, limit: int) -> str:
    """Email the person again about a question they have not answered, DSAR_QUESTION_REMINDER_DAYS
    after it was asked and as many days after each reminder, at most DSAR_QUESTION_REMINDERS times.
    Each reminder is counted on the question in the transaction that queues its email, so a rerun
    never sends it again; the request is locked first, so none goes out for a question answered,
    or a request closed, since it was found due."""
    every = dt.timedelta(days=settings.DSAR_QUESTION_REMINDER_DAYS)
    # The next reminder falls due `every` after the question was asked, times the reminders sent plus one.
    next_due = F("asked_at") + ExpressionWrapper(Value(every) * (F("reminders_sent") + 1), output_field=DurationField())
    due = (RequestQuestion.objects.filter(answered_at__isnull=True, request__status=Status.AWAITING_SUBJECT,
                                          reminders_sent__lt=settings.DSAR_QUESTION_REMINDERS)
           .alias(next_due=next_due).filter(next_due__lte=now).order_by("asked_at"))
    sent = 0
    for question in due[:limit]:
        with transaction.atomic():
            request = locks.request_lock(question.request_id)
            unanswered = RequestQuestion.objects.filter(pk=question.pk, answered_at__isnull=True)
            if request.status != Status.AWAITING_SUBJECT or not unanswered.update(reminders_sent=F("reminders_sent") + 1):
                continue
            number = question.reminders_sent + 1
            audit_record(request, actor=SYSTEM, action="question_reminder",
                         note=f"reminder {number} of {settings.DSAR_QUESTION_REMINDERS}")
            email_on_commit(request, "question_reminder", question=question.text, asked_at=question.asked_at)
        sent += 1
    return f"question_reminders: {sent} reminders sent"


JOBS: dict[str, Callable[..., str]] = {
    "deadline_watch": deadline_watch,
    "sweeper": sweeper,
    "export_expiry": export_expiry,
    "unverified_purge": unverified_purge,
    "record_retention": record_retention,
    "erasure_verification": erasure_verification,
    "audit_head_ship": audit_head_ship,
    "question_reminders": question_reminders,
}

# How often beat rings for each job, in seconds; editable by admins afterwards (django-celery-beat).
DEFAULT_EVERY = {
    "deadline_watch": 3600,
    "sweeper": 60,
    "export_expiry": 900,
    "unverified_purge": 3600,
    "record_retention": 86400,
    "erasure_verification": 3600,
    "audit_head_ship": 900,  # the newest entries a rewrite of the database could lose unseen
    "question_reminders": 3600,
}


def job_run(name: str, *, now: dt.datetime | None = None, limit: int | None = None) -> str:
    """Run one job under its lock and log its one-line summary."""
    job = JOBS[name]
    try:
        with locks.job_lock(name):
            summary = job(now=now or timezone.now(), limit=limit or settings.DSAR_JOB_BATCH)
    except locks.JobBusy:
        summary = f"{name}: another run holds the lock; nothing done"
    logger.info("%s", summary)
    return summary


def schedule_ensure() -> None:
    """Create the beat schedule's rows for every job (idempotent; admins' edits are kept)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for name, seconds in DEFAULT_EVERY.items():
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.get_or_create(
            name=f"dsar: {name}",
            defaults={"task": "dsar.tasks.job", "interval": interval, "args": f'["{name}"]'},
        )
