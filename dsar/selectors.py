"""Reads behind the staff console and the staff API: the review queue, one request, the dashboard,
the staff list, the deployment's workflow settings and its systems. Nothing here writes."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db.models import (
    Aggregate,
    Avg,
    CharField,
    Count,
    DurationField,
    Exists,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Sum,
    Window,
)
from django.db.models.functions import Cast, Coalesce, RowNumber, TruncDate
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from connectors.base import ConnectorError, ErasureStep, Identity
from connectors.registry import connector_get, connector_names, connector_waits_for, systems
from connectors.systems import System

from . import processing
from .deadlines import deadline_rule
from .errors import NotFound
from .models import (AuditEntry, ConnectorTask, PurgeTally, RecipientNotification, Request, RequestQuestion, RequestType, Status,
                     SystemCheck, TaskStatus)
from .services import OPEN_STATUSES
from .staff import ROLE_ADMIN, ROLES

# Queue orderings by name; the id breaks ties so pages never overlap.
ORDERINGS = {
    "due": ("due_at", "created_at", "id"),
    "-due": ("-due_at", "-created_at", "id"),
    "created": ("created_at", "id"),
    "-created": ("-created_at", "id"),
}
RECENT_DAYS = 30


DUE_SOON = dt.timedelta(days=7)
# Open, and the product's to act on: an unverified request waits for the person's code, not for staff.
OPEN_WORK = tuple(status for status in OPEN_STATUSES if status != Status.UNVERIFIED)
LOCKED, LAPSED = "locked", "lapsed"


def awaiting_release_q() -> Q:
    """Completed, with an export held for staff to release (DSAR_REVIEW_BEFORE_RELEASE, or other
    people's data in it to review), not in the person's hands until then."""
    return Q(status=Status.COMPLETED, export__isnull=False, export__released_at__isnull=True, export__deleted_at__isnull=True)


def unanswered_q() -> Q:
    """Requests the person has no answer to yet, whose deadline runs: open ones, but for those
    whose deadline stands still while the person is asked a question; and completed ones whose
    export waits for staff to release it, not in their hands until then."""
    return Q(status__in=OPEN_STATUSES, deadline_paused_at__isnull=True) | awaiting_release_q()


def needs_action_q(now: dt.datetime) -> Q:
    """What the queue opens on: pending review, an export awaiting release, failed, or open work due
    within DUE_SOON (or overdue). Never a closed request, nor one still unverified."""
    return (Q(status__in=[Status.PENDING_REVIEW, Status.FAILED]) | awaiting_release_q()
            | Q(status__in=OPEN_WORK, due_at__lt=now + DUE_SOON))


def request_unverified_standing(request: Request, *, now: dt.datetime | None = None) -> str | None:
    """Why an unverified request will not go on as it is: LOCKED (too many wrong codes) or LAPSED
    (not verified within DSAR_UNVERIFIED_PURGE_DAYS, to be deleted); None while it may still be."""
    if request.status != Status.UNVERIFIED:
        return None
    if request.code_attempts >= settings.DSAR_CODE_MAX_ATTEMPTS:
        return LOCKED
    if request.created_at < (now or timezone.now()) - dt.timedelta(days=settings.DSAR_UNVERIFIED_PURGE_DAYS):
        return LAPSED
    return None


def overdue_q(now: dt.datetime) -> Q:
    """Unanswered and past its deadline. Answered requests have no deadline left to miss."""
    return unanswered_q() & Q(due_at__lt=now)


def request_overdue(request: Request, *, now: dt.datetime | None = None) -> bool:
    """The same test as `overdue_q`, for one request already loaded (with its export, if any)."""
    if request.due_at >= (now or timezone.now()) or request.deadline_paused_at is not None:
        return False
    if request.status in OPEN_STATUSES:
        return True
    export = getattr(request, "export", None)
    return request.status == Status.COMPLETED and export is not None and export.released_at is None and export.deleted_at is None


def request_list(
    *,
    status: str | None = None,
    type: str | None = None,
    overdue: bool | None = None,
    retention_finding: bool | None = None,
    needs_action: bool = False,
    assignee_id: int | None = None,
    unassigned: bool = False,
    received_from: dt.datetime | None = None,
    received_before: dt.datetime | None = None,
    due_from: dt.datetime | None = None,
    due_before: dt.datetime | None = None,
    search: str = "",
    order: str = "due",
    now: dt.datetime | None = None,
) -> QuerySet[Request]:
    """The review queue, soonest due first unless `order` says otherwise.

    `retention_finding` keeps the requests whose export showed data kept longer than promised (or,
    False, the others). `needs_action` keeps what staff must act on (`needs_action_q`);
    `assignee_id` those assigned to that staff member, `unassigned` those assigned to nobody.
    Received and due times are kept from `*_from` included to `*_before` excluded. `search` matches
    a whole request id, the start of one (as the queue shows them shortened), or part of the email,
    ignoring case.
    """
    now = now or timezone.now()
    # The export says whether a completed one waits for release; the assignee is shown with each row.
    queryset = Request.objects.select_related("export", "assigned_to")
    if needs_action:
        queryset = queryset.filter(needs_action_q(now))
    if assignee_id is not None:
        queryset = queryset.filter(assigned_to_id=assignee_id)
    if unassigned:
        queryset = queryset.filter(assigned_to__isnull=True)
    for lookup, bound in (("created_at__gte", received_from), ("created_at__lt", received_before), ("due_at__gte", due_from),
                          ("due_at__lt", due_before)):
        if bound is not None:
            queryset = queryset.filter(**{lookup: bound})
    if status:
        queryset = queryset.filter(status=status)
    if type:
        queryset = queryset.filter(type=type)
    if overdue is True:
        queryset = queryset.filter(overdue_q(now))
    elif overdue is False:
        queryset = queryset.exclude(overdue_q(now))
    if retention_finding is not None:
        queryset = queryset.filter(retention_finding__isnull=not retention_finding)
    search = search.strip().lower()
    if search:
        try:
            queryset = queryset.filter(pk=uuid.UUID(search))
        except ValueError:
            queryset = queryset.annotate(id_text=Cast("id", CharField())).filter(
                Q(email__icontains=search) | Q(id_text__startswith=search)
            )
    return queryset.order_by(*ORDERINGS[order])


def request_get(*, request_id) -> Request:
    """One request with its export, its connector tasks (by connector), the notifications telling
    its recipients of its erasure (by system, then recipient), its audit trail and the questions
    staff asked the person (each in order)."""
    try:
        return (
            Request.objects.select_related("export", "assigned_to")
            .prefetch_related(
                Prefetch("tasks", queryset=ConnectorTask.objects.order_by("connector")),
                Prefetch("recipient_notifications", queryset=RecipientNotification.objects.order_by("system", "recipient")),
                Prefetch("audit", queryset=AuditEntry.objects.order_by("id")),
                Prefetch("questions", queryset=RequestQuestion.objects.order_by("asked_at", "id")),
            )
            .get(pk=request_id)
        )
    except Request.DoesNotExist:
        raise NotFound("No such request.") from None


def question_file_get(*, request_id, question_id: int) -> RequestQuestion:
    """A question asked about this request whose answer came with a file; NotFound for any other."""
    question = RequestQuestion.objects.filter(pk=question_id, request_id=request_id).exclude(answer_file="").first()
    if question is None:
        raise NotFound("No such file.")
    return question


class Median(Aggregate):
    """PostgreSQL's continuous median; it works on intervals as well as numbers."""

    function = "PERCENTILE_CONT"
    name = "Median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"


@dataclass(frozen=True)
class Dashboard:
    open_by_status: dict[str, int]
    due_this_week: int
    overdue: int
    completed_recently: int
    median_completion: dt.timedelta | None
    failures_by_connector: list[tuple[str, int]]
    retention_findings: int  # of the recent completions, those whose export showed data kept longer than promised


def dashboard_get(*, now: dt.datetime | None = None) -> Dashboard:
    """The figures of the dashboard, in three queries: open work, recent completions, recent failures.

    Open work is open and staff's to act on: an unverified request waits for the person, not staff.
    "Recent" is the last RECENT_DAYS days; "this week" the next seven days from `now`.
    """
    now = now or timezone.now()
    since = now - dt.timedelta(days=RECENT_DAYS)
    open_work = Request.objects.filter(status__in=OPEN_WORK).aggregate(
        **{status: Count("id", filter=Q(status=status)) for status in OPEN_WORK},
        overdue=Count("id", filter=Q(due_at__lt=now)),
        due_this_week=Count("id", filter=Q(due_at__gte=now, due_at__lt=now + dt.timedelta(days=7))),
    )
    completed = Request.objects.filter(completed_at__gte=since).aggregate(
        count=Count("id"),
        median=Median(F("completed_at") - F("created_at"), output_field=DurationField()),
        retention_findings=Count("id", filter=Q(retention_finding__isnull=False)),
    )
    failures = (
        ConnectorTask.objects.filter(status=TaskStatus.FAILED, finished_at__gte=since)
        .values("connector")
        .annotate(count=Count("id"))
        .order_by("-count", "connector")
    )
    return Dashboard(
        open_by_status={status: open_work[status] for status in OPEN_WORK},
        due_this_week=open_work["due_this_week"],
        overdue=open_work["overdue"],
        completed_recently=completed["count"],
        median_completion=completed["median"],
        failures_by_connector=[(row["connector"], row["count"]) for row in failures],
        retention_findings=completed["retention_findings"],
    )


@dataclass(frozen=True)
class StaffMember:
    user: object
    role: str
    totp: bool


def staff_list() -> list[StaffMember]:
    """Every staff user, active or not, with their role and whether a TOTP device is confirmed."""
    users = (
        get_user_model()
        .objects.filter(is_staff=True)
        .annotate(totp=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)))
        .prefetch_related("groups")
        .order_by("username")
    )
    return [StaffMember(user=user, role=staff_role(user), totp=user.totp) for user in users]


def staff_assignable() -> list:
    """The active staff a request can be assigned to (reviewers and admins), by username: one query."""
    return list(get_user_model().objects.filter(Q(groups__name__in=ROLES) | Q(is_superuser=True), is_active=True, is_staff=True)
                .distinct().order_by("username"))


def request_emails(*, request_ids) -> dict[str, str]:
    """The email of each request named, by its id as text: how a bulk review names them back."""
    return {str(pk): email for pk, email in Request.objects.filter(pk__in=request_ids).values_list("pk", "email")}


def staff_role(user) -> str:
    """The role a staff user holds (superusers count as admins), or "" for none. Unlike
    `staff_has_role` this answers for inactive users too, so the staff page can show it."""
    names = {group.name for group in user.groups.all()}
    if user.is_superuser or ROLE_ADMIN in names:
        return ROLE_ADMIN
    return next((role for role in ROLES if role in names), "")


def workflow_settings() -> dict:
    """The deployment's workflow settings as staff may see them: connector names and classes,
    never their options (which hold URLs and secrets)."""
    rule = deadline_rule()
    return {
        "jurisdiction": rule.name,
        "respond_within": rule.respond_within,
        "extension": rule.extension,
        "auto_approve": settings.DSAR_AUTO_APPROVE,
        "export_ttl_days": settings.DSAR_EXPORT_TTL_DAYS,
        "review_before_release": settings.DSAR_REVIEW_BEFORE_RELEASE,
        "connector_max_attempts": settings.DSAR_CONNECTOR_MAX_ATTEMPTS,
        "connectors": [(name, system.connector_class) for name, system in settings.DSAR_SYSTEMS.items()],
    }


@dataclass(frozen=True)
class SystemPreview:
    """What a deletion would do in one system: its steps, or why the system cannot say."""

    system: str
    steps: list[ErasureStep]
    error: str | None = None


def request_erasure_preview(*, request: Request) -> list[SystemPreview]:
    """What approving this deletion would do in each system, each connector's dry run; changes nothing."""
    identity, categories = Identity(email=request.email), frozenset(request.categories)
    previews = []
    for name in connector_names():
        try:
            previews.append(SystemPreview(name, connector_get(name).erase_preview(identity, categories).steps))
        except ConnectorError as error:
            previews.append(SystemPreview(name, [], str(error)))
    return previews


# --- The Systems page -------------------------------------------------------------------------------

SYSTEM_RUNS = 5
FAILURE_DAYS = 7


@dataclass(frozen=True)
class SystemStatus:
    """One configured system as staff see it: what its file declares, its last check, its latest
    tasks and its failures of the last FAILURE_DAYS days."""

    name: str
    system: System
    categories: frozenset[str]
    waits_for: list[str]  # the systems that find the identities it needs (`system.needs`) first
    broken: str | None  # why its connector cannot be built, if it cannot
    check: SystemCheck | None
    runs: list[ConnectorTask]
    failures: int
    last_failure: ConnectorTask | None

    @property
    def refused(self) -> bool:
        """Whether workers refuse it now: its last check found a problem (dsar.system_checks.connector_for_work)."""
        return bool(self.check and self.check.problems)


def system_list(*, now: dt.datetime | None = None) -> list[SystemStatus]:
    """Every configured system in DSAR_SYSTEMS' order, with its last check, its SYSTEM_RUNS most
    recently active tasks and its failed tasks of the last FAILURE_DAYS days: three queries, whatever
    the number of systems, requests or tasks. Building a connector opens no connection."""
    now = now or timezone.now()
    configured = systems()
    names = list(configured)
    checks = {check.system: check for check in SystemCheck.objects.filter(system__in=names)}
    runs: dict[str, list[ConnectorTask]] = {}
    latest = (
        ConnectorTask.objects.filter(connector__in=names)
        .annotate(place=Window(RowNumber(), partition_by=F("connector"), order_by=[F("updated_at").desc(), F("id").desc()]))
        .filter(place__lte=SYSTEM_RUNS)
        .only("request_id", "connector", "status", "finished_at", "updated_at")
        .order_by("connector", "place")
    )
    for task in latest:
        runs.setdefault(task.connector, []).append(task)
    # Each system's most recent failure, with how many there were: DISTINCT ON keeps the first row of
    # each connector, and the count over the connector's rows is taken before it does.
    failed = (
        ConnectorTask.objects.filter(connector__in=names, status=TaskStatus.FAILED, finished_at__gte=now - dt.timedelta(days=FAILURE_DAYS))
        .annotate(failures=Window(Count("id"), partition_by=F("connector")))
        .only("request_id", "connector", "last_error", "finished_at")
        .order_by("connector", "-finished_at", "-id")
        .distinct("connector")
    )
    failures = {task.connector: task for task in failed}
    statuses = []
    for name, system in configured.items():
        categories, broken = frozenset(), None
        try:
            categories = connector_get(name).categories
        except (ImproperlyConfigured, ImportError, ConnectorError) as error:
            broken = str(error)
        waits_for, last_failure = connector_waits_for(name), failures.get(name)
        statuses.append(SystemStatus(
            name=name,
            system=system,
            categories=categories,
            waits_for=[other for other in names if other in waits_for],
            broken=broken,
            check=checks.get(name),
            runs=runs.get(name, []),
            failures=last_failure.failures if last_failure else 0,
            last_failure=last_failure,
        ))
    return statuses


# --- Manual tasks --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManualTask:
    """A request's task for a system with no API, as staff work it: the task (with its request),
    the system's file, and (for one task's page) who the request is about."""

    task: ConnectorTask
    system: System
    identity: Identity | None = None

    @property
    def instructions(self) -> str:
        return self.system.options["instructions"]

    @property
    def categories(self) -> list[str]:
        return self.system.options["categories"]

    @property
    def assignee(self) -> str | None:
        return self.system.options["assignee"]


def _manual_systems() -> dict[str, System]:
    return {name: system for name, system in systems().items() if system.kind == "manual"}


def manual_task_list() -> list[ManualTask]:
    """The tasks waiting for staff, of the configured systems with no API, soonest due first: one query."""
    manual = _manual_systems()
    tasks = (ConnectorTask.objects.filter(status=TaskStatus.WITH_STAFF, connector__in=list(manual)).select_related("request")
             .order_by("request__due_at", "id"))
    return [ManualTask(task, manual[task.connector]) for task in tasks]


def manual_task_get(*, task_id: int) -> ManualTask:
    """One task of a system with no API, with its request and the identities the systems it waits
    for found; NotFound for any other task."""
    task = ConnectorTask.objects.select_related("request").filter(pk=task_id).first()
    system = _manual_systems().get(task.connector) if task is not None else None
    if system is None:
        raise NotFound("No such manual task.")
    return ManualTask(task, system, processing.task_identity(task.request, task.connector))


# --- The yearly metrics (CCPA regulations, 11 CCR §7102) ----------------------------------------------------

METRICS_FIRST_YEAR = 2018  # the GDPR's first year in force: no request this product answers is older
METRICS_SCOPES = {"access": Q(type=RequestType.ACCESS), "deletion": Q(type=RequestType.DELETION), "all": Q()}
# Each figure with its label, in the order the command, the console page and its CSV show them.
METRICS_LINES = {
    "received": "Received",
    "complied_in_whole": "Complied with in whole",
    "complied_in_part": "Complied with in part",
    "denied": "Denied",
    "never_verified": "Closed: never verified (not a denial)",
    "canceled": "Closed: canceled by the person (not a denial)",
    "referred": "Closed: referred to the managing organisation (not a denial)",
    "still_open": "Still open",
    "responded": "Responded to: completed or denied",
    "median_days": "Days to respond, median",
    "mean_days": "Days to respond, mean",
}
_COMPLIED = Q(status__in=[Status.COMPLETED, Status.EXPIRED])  # expired: completed, and its export's time is up since
_WHOLE = Q(refusals=[])  # staff refused no part of it at approval
_RESPONDED = _COMPLIED | Q(status=Status.DENIED)


def metrics_years(*, now: dt.datetime | None = None) -> range:
    """The years the metrics can be asked for: METRICS_FIRST_YEAR to the current one (UTC), which
    counts what was received so far."""
    return range(METRICS_FIRST_YEAR, (now or timezone.now()).astimezone(dt.UTC).year + 1)


def yearly_metrics_get(*, year: int) -> dict:
    """The figures CCPA regulations §7102 ask for, of the requests received in calendar `year`
    (UTC), per request type and for all: two queries, whatever the number of requests.

    - received: filed that year, still open ones included;
    - complied with in whole: completed (or completed and its export since expired), nothing of it
      refused. A deletion whose receipt `retained` what a legal duty keeps counts here, as the law
      keeping data is no refusal of the request;
    - complied with in part: completed, some categories or systems of it refused at approval
      (`refusals`);
    - denied: by staff, with a reason;
    - closed without a denial, each apart: never verified, canceled by the person, referred to the
      organisation managing the account. A never-verified request is deleted, keeping only a count
      per day (jobs.unverified_purge), so its type is lost: those are counted under "all" alone (None
      under a type), by the day they were deleted, DSAR_UNVERIFIED_PURGE_DAYS after filing;
    - still open: not yet answered at the time of asking (a never-verified one not yet deleted too);
    - days to respond, median and mean, over the requests completed or denied: calendar days (UTC)
      from filing to completion or denial, as the regulations' clock runs from receipt whatever
      verification takes (§7021(b)); the median and the mean to one decimal, None when none was
      answered.
    """
    start, end = dt.datetime(year, 1, 1, tzinfo=dt.UTC), dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)
    days = (TruncDate(Coalesce("completed_at", "closed_at"), tzinfo=dt.UTC)
            - TruncDate("created_at", tzinfo=dt.UTC))
    counts = {
        "received": Q(),
        "complied_in_whole": _COMPLIED & _WHOLE,
        "complied_in_part": _COMPLIED & ~_WHOLE,
        "denied": Q(status=Status.DENIED),
        "canceled": Q(status=Status.CANCELED),
        "referred": Q(status=Status.REFERRED),
        "still_open": Q(status__in=OPEN_STATUSES),
        "responded": _RESPONDED,
    }
    aggregates = {}
    for scope, of_scope in METRICS_SCOPES.items():
        aggregates |= {f"{scope}_{name}": Count("id", filter=(of_scope & where) or None) for name, where in counts.items()}
        aggregates[f"{scope}_median"] = Median(days, filter=of_scope & _RESPONDED, output_field=DurationField())
        aggregates[f"{scope}_mean"] = Avg(days, filter=of_scope & _RESPONDED)
    found = Request.objects.filter(created_at__gte=start, created_at__lt=end).aggregate(**aggregates)
    never_verified = PurgeTally.objects.filter(day__year=year).aggregate(count=Sum("count", default=0))["count"]
    metrics: dict = {"year": year}
    for scope in METRICS_SCOPES:
        figures = {name: found[f"{scope}_{name}"] for name in counts}
        figures["never_verified"] = None
        if scope == "all":
            figures["never_verified"] = never_verified
            figures["received"] += never_verified
        figures["median_days"] = _days(found[f"{scope}_median"])
        figures["mean_days"] = _days(found[f"{scope}_mean"])
        metrics[scope] = {name: figures[name] for name in METRICS_LINES}
    return metrics


def _days(span: dt.timedelta | None) -> float | None:
    """A span in days to one decimal, half up as people round (Python's round() goes to even)."""
    if span is None:
        return None
    return float(Decimal(str(span / dt.timedelta(days=1))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def yearly_metrics_table(metrics: dict) -> list[list[str]]:
    """The metrics as rows of text, a header first: one row a figure, one column a scope."""
    rows = [["", *METRICS_SCOPES]]
    for name, label in METRICS_LINES.items():
        rows.append([label, *("" if metrics[scope][name] is None else str(metrics[scope][name]) for scope in METRICS_SCOPES)])
    return rows
