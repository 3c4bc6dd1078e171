"""The staff review console: sign-in and the second factor, the queue, a request and its review
actions, the dashboard, the systems, the tasks of systems with no API, and the admins' staff and
settings pages.

Views read through `selectors` and act through `dsar.services`; every workflow rule lives there.
"""

from __future__ import annotations

import csv
import datetime as dt
from base64 import b32encode
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import django_otp
import qrcode
import qrcode.image.svg
from dateutil.relativedelta import relativedelta
from django import forms as django_forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.views import LoginView, LogoutView
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from connectors.taxonomy import category_ids, category_label, category_root

from .. import exports, selectors, services
from ..errors import NotFound, ServiceError
from ..models import Export, Request, RequestType, Status, TaskStatus
from ..staff import (
    SETUP_CODE_REFUSED,
    SETUP_CODE_VALID,
    ROLE_ADMIN,
    staff_active_set,
    staff_actor,
    staff_code_verify,
    staff_has_role,
    staff_member_create,
    staff_role_change,
    staff_second_factor_confirm,
    staff_second_factor_device,
    staff_second_factor_reset,
    staff_setup_code_issue,
    staff_setup_code_valid,
    staff_time_zone,
    staff_time_zone_set,
)
from . import forms
from .access import SESSION_TIME_ZONE, console_access, time_zone_remember

PAGE_SIZE = 50


class _LoginView(LoginView):
    """Sign in; the browser's time zone (sent by a static script) becomes the member's unless they
    chose one on their settings page, and the session's pages give their times in it."""

    template_name = "console/login.html"
    authentication_form = forms.StaffAuthenticationForm

    def form_valid(self, form):
        response = super().form_valid(form)
        user, browser_zone = form.get_user(), form.cleaned_data.get("time_zone", "")
        try:
            zone = staff_time_zone_set(user=user, time_zone=browser_zone, chosen=False)
        except ServiceError:  # no script, or a zone this machine does not know: keep the member's
            zone = staff_time_zone(user)
        time_zone_remember(self.request, zone)
        return response


login = _LoginView.as_view()


class _LogoutView(LogoutView):
    """Sign out (a POST): Django flushes the session; the browser is told to drop what it keeps of
    this site too, its cached pages, cookies and storage (ASVS 14.3.1)."""

    next_page = "console:login"

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        response["Clear-Site-Data"] = '"cache", "cookies", "storage"'
        return response


logout = _LogoutView.as_view()


# --- Presentation helpers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """How a request stands against its due date: `days` left, or overdue by, in whole days."""

    open: bool
    overdue: bool
    days: int


def _deadline(request: Request, now: dt.datetime) -> Deadline:
    return Deadline(
        open=request.status in services.OPEN_STATUSES,
        overdue=selectors.request_overdue(request, now=now),
        days=abs(request.due_at - now).days,
    )


def _counts(counts: dict[str, int] | None) -> list[tuple[str, str, int]]:
    """(id, label, count) rows in the taxonomy's order, which groups related categories."""
    order = {category: index for index, category in enumerate(category_ids())}
    rows = sorted((counts or {}).items(), key=lambda item: (order.get(category_root(item[0]), len(order)), item[0]))
    return [(category, category_label(category), count) for category, count in rows]


def _retention(finding: list[dict] | None) -> list[dict]:
    """A request's retention finding as its page shows it: each entry with its category's label, and
    its times as times."""
    return [{**entry, "label": category_label(entry["category"]),
             **{name: entry[name] and dt.datetime.fromisoformat(entry[name]) for name in ("oldest_collected_at", "retained_until")}}
            for entry in finding or []]


def _duration(delta: dt.timedelta | None) -> str:
    if delta is None:
        return ""
    minutes = int(delta.total_seconds() // 60)
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    parts = [(days, "day"), (hours, "hour")] if days else [(hours, "hour"), (minutes, "minute")]
    text = " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n)
    return text or "under a minute"


def _period(period: relativedelta) -> str:
    parts = [(period.years, "year"), (period.months, "month"), (period.days, "day")]
    return ", ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n)


def _next_url(request) -> str:
    """Where to go after a second-factor step: the page asked for, if it is on this site."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("console:queue")


def _with_next(url_name: str, request) -> str:
    return f"{reverse(url_name)}?{urlencode({'next': _next_url(request)})}"


# Read-only pages answer GET and HEAD alone, pages with a form POST too: any other method (TRACE among
# them) is refused with 405 rather than answered as a GET (ASVS 13.4.4).
require_page_or_form = require_http_methods(["GET", "HEAD", "POST"])


# --- The queue --------------------------------------------------------------------------------------


def _status_label(request: Request, now: dt.datetime) -> str:
    """A request's status in words; an unverified one that will not go on says why."""
    standing = selectors.request_unverified_standing(request, now=now)
    if standing == selectors.LOCKED:
        return gettext("Locked: too many wrong codes")
    if standing == selectors.LAPSED:
        return gettext("Lapsed: never verified")
    return request.get_status_display()


@console_access
@require_safe
def queue(request):
    """What needs action unless the filters say otherwise, soonest due first, fifty to a page; the
    requests ticked can be approved or denied together."""
    form = forms.QueueFilterForm(request.GET, user=request.user)
    page = Paginator(selectors.request_list(**form.filters()), PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    for row in page:
        row.deadline = _deadline(row, now)
        row.status_label = _status_label(row, now)
    bulk = forms.BulkReviewForm(auto_id="bulk_%s")
    return render(request, "console/queue.html", {"form": form, "page": page, "bulk": bulk})


def _queue_url(request) -> str:
    """The queue as it was shown (its filters and page), to go back to after a bulk review."""
    target = request.POST.get("next", "")
    on_site = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
    if on_site and target.startswith(reverse("console:queue")):
        return target
    return reverse("console:queue")


@console_access
@require_POST
def queue_bulk(http_request):
    """Approve or deny the requests ticked in the queue with one reason, each as if one at a time;
    say which were done, and which were refused and why. A form error changes nothing."""
    form = forms.BulkReviewForm(http_request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(http_request, error)
        return redirect(_queue_url(http_request))
    data = form.cleaned_data
    try:
        outcomes = services.request_review_bulk(request_ids=data["requests"], action=data["action"],
                                                actor=staff_actor(http_request.user), reason=data["reason"])
    except ServiceError as error:
        messages.error(http_request, error.detail)
        return redirect(_queue_url(http_request))
    emails = selectors.request_emails(request_ids=[outcome.request_id for outcome in outcomes])
    done = [emails.get(outcome.request_id, outcome.request_id) for outcome in outcomes if outcome.done]
    if done:
        said = ngettext("Approved %(count)d request: %(people)s.", "Approved %(count)d requests: %(people)s.", len(done)) \
            if data["action"] == "approve" else \
            ngettext("Denied %(count)d request: %(people)s. Each person is emailed the reason.",
                     "Denied %(count)d requests: %(people)s. Each person is emailed the reason.", len(done))
        messages.success(http_request, said % {"count": len(done), "people": ", ".join(done)})
    for outcome in outcomes:
        if not outcome.done:
            messages.error(http_request, gettext("Not done for %(person)s: %(reason)s") % {
                "person": emails.get(outcome.request_id, gettext("a request no longer there")), "reason": outcome.reason})
    return redirect(_queue_url(http_request))


# --- One request and its review actions ----------------------------------------------------------------


def _export(request: Request) -> Export | None:
    return getattr(request, "export", None)


@dataclass(frozen=True)
class Action:
    """A review action: its form, the service it calls, what it says after. Whether the page
    offers it is the services' call (`services.request_actions_allowed`)."""

    form: type[forms.ActionForm]
    perform: Callable[[Request, str, dict], object]
    done: str


ACTIONS: dict[str, Action] = {
    "approve": Action(
        forms.ApproveForm,
        lambda request, actor, data: services.request_approve(request_id=request.pk, actor=actor, note=data["note"],
                                                              refuse=data["refuse"], authority=data.get("authority", ""),
                                                              withhold_sensitive=data.get("withhold_sensitive", False)),
        "Approved. The connectors are gathering the data now.",
    ),
    "deny": Action(
        forms.DenyForm,
        lambda request, actor, data: services.request_deny(request_id=request.pk, actor=actor, reason=data["reason"],
                                                           ground=data["ground"]),
        "Denied. The person has been emailed the reason.",
    ),
    "extend": Action(
        forms.ExtendForm,
        lambda request, actor, data: services.request_extend(
            request_id=request.pk, actor=actor, reason=data["reason"], days=data["days"]
        ),
        "Deadline extended. The person has been emailed the reason and the new date.",
    ),
    "retry": Action(
        forms.RetryForm,
        lambda request, actor, data: services.request_retry(request_id=request.pk, actor=actor),
        "Retrying what failed.",
    ),
    "release": Action(
        forms.ReleaseForm,
        lambda request, actor, data: services.request_release(request_id=request.pk, actor=actor, note=data["note"]),
        "Released. The person has been emailed the download link.",
    ),
    "ask": Action(
        forms.AskForm,
        lambda request, actor, data: services.request_ask(request_id=request.pk, actor=actor, question=data["question"],
                                                          purpose=data["purpose"]),
        "Question sent. The person has been emailed it; the request waits for their answer.",
    ),
}


def _request_or_404(request_id) -> Request:
    try:
        return selectors.request_get(request_id=request_id)
    except NotFound:
        raise Http404("No such request.") from None


def _request_page(http_request, request: Request, *, bound: dict[str, forms.ActionForm] | None = None,
                  note: forms.NoteForm | None = None):
    bound = bound or {}
    result = request.result or {}
    allowed = services.request_actions_allowed(request=request)
    now = timezone.now()
    context = {
        "req": request,
        "status_label": _status_label(request, now),
        "deadline": _deadline(request, now),
        "notes": [entry for entry in request.audit.all() if entry.action == services.NOTED],
        "note_form": note or forms.NoteForm(auto_id="note_%s"),
        "assign_form": forms.AssignForm(initial={"assignee": request.assigned_to.username if request.assigned_to else ""},
                                        staff=selectors.staff_assignable(), auto_id="assign_%s"),
        "mine": request.assigned_to_id == http_request.user.pk,
        "categories": [category_label(category) for category in request.categories],
        "all_categories": set(request.categories) >= set(category_ids()),
        "export": _export(request),
        "exported": _counts(result.get("categories")),
        "exported_total": sum((result.get("categories") or {}).values()),
        "erased": _counts(result.get("erased")),
        "retained": [{**item, "label": category_label(item.get("category", ""))} for item in result.get("retained", [])],
        "retention": _retention(request.retention_finding),
        "tasks": [(task, _counts(task.counts)) for task in request.tasks.all()],
        "can_review": "review" in allowed,
        "reviewed": _reviewed(_export(request)),
        # Each form's ids carry its action's name: several forms on the page have a "reason".
        "actions": {
            name: bound.get(name) or action.form(request=request, auto_id=f"{name}_%s")
            for name, action in ACTIONS.items()
            if name in allowed
        },
    }
    return render(http_request, "console/request.html", context)


def _reviewed(export: Export | None) -> dict[str, int] | None:
    """How many items of other people's data a review released, withheld and redacted; None before one."""
    if export is None or export.review is None:
        return None
    decided = Counter(decision["action"] for decision in export.review["decisions"])
    return {action: decided[action] for action in (exports.RELEASE, exports.WITHHOLD, exports.REDACT)}


@console_access
@require_safe
def request_detail(http_request, request_id):
    """A request: who, what, when, its connector tasks, its audit trail and the actions its status allows."""
    return _request_page(http_request, _request_or_404(request_id))


@console_access
@require_safe
def request_preview(http_request, request_id):
    """What approving a deletion would do in each system (deleted, cleared, kept and why), changing nothing."""
    request = _request_or_404(request_id)
    if request.type != RequestType.DELETION:
        raise Http404("only a deletion has a preview")
    previews = selectors.request_erasure_preview(request=request)
    labelled = [(preview, [(step, category_label(step.category)) for step in preview.steps]) for preview in previews]
    return render(http_request, "console/preview.html", {"req": request, "previews": labelled})


@console_access
@require_page_or_form
def request_review(http_request, request_id):
    """The records and files of a held export that may be other people's data, each with its fields
    or its file, and the form that decides for each and releases the export as decided. Decisions
    the service refuses are a form error, and change nothing."""
    request = _request_or_404(request_id)
    try:
        items = services.request_review_items(request_id=request.pk)
    except ServiceError as error:
        messages.error(http_request, error.detail)
        return redirect("console:request", request_id=request.pk)
    form = forms.ReviewForm(http_request.POST or None, items=items)
    if http_request.method == "POST" and form.is_valid():
        try:
            services.request_release_reviewed(request_id=request.pk, actor=staff_actor(http_request.user),
                                              decisions=form.cleaned_data["decisions"], note=form.cleaned_data["note"])
        except ServiceError as error:
            form.add_error(None, error.detail)
        else:
            messages.success(http_request, "Released as decided. The person has been emailed the download link and what was left out, and why.")
            return redirect("console:request", request_id=request.pk)
    rows = [(item, category_label(item.category), list(exports.field_leaves(item.fields)), bound) for item, bound in form.rows()]
    return render(http_request, "console/review.html", {"req": request, "form": form, "rows": rows})


@console_access
@require_safe
def request_status(http_request, request_id):
    """The status alone, polled by the request page while connectors run."""
    request = get_object_or_404(Request.objects.only("status"), pk=request_id)
    return JsonResponse({"status": request.status, "label": request.get_status_display()})


@console_access
@require_POST
def request_act(http_request, request_id, action: str):
    """Run one review action through its service; a refusal is shown as a message and changes nothing."""
    spec = ACTIONS[action]
    request = _request_or_404(request_id)
    form = spec.form(http_request.POST, request=request, auto_id=f"{action}_%s")
    if form.is_valid():
        try:
            spec.perform(request, staff_actor(http_request.user), form.cleaned_data)
        except ServiceError as error:
            messages.error(http_request, error.detail)
        else:
            messages.success(http_request, spec.done)
    elif action in services.request_actions_allowed(request=request):
        return _request_page(http_request, request, bound={action: form})
    else:
        messages.error(http_request, f"That action is not available while the request is {request.get_status_display().lower()}.")
    return redirect("console:request", request_id=request.pk)


@console_access
@require_POST
def request_assign(http_request, request_id):
    """Give the request to a staff member, to oneself (`me`), or to nobody; audited."""
    request = _request_or_404(request_id)
    form = forms.AssignForm(http_request.POST, staff=selectors.staff_assignable())
    me = http_request.POST.get("me") == "1"
    if not me and not form.is_valid():
        messages.error(http_request, gettext("Choose a reviewer or admin to assign it to."))
        return redirect("console:request", request_id=request.pk)
    assignee = http_request.user.get_username() if me else form.cleaned_data["assignee"] or None
    try:
        services.request_assign(request_id=request.pk, actor=staff_actor(http_request.user), assignee=assignee)
    except ServiceError as error:
        messages.error(http_request, error.detail)
    else:
        messages.success(http_request, gettext("Assigned to you.") if me else
                         gettext("Assigned to %(name)s.") % {"name": assignee} if assignee else gettext("Assigned to nobody."))
    return redirect("console:request", request_id=request.pk)


@console_access
@require_POST
def request_note(http_request, request_id):
    """Add an internal note, for staff only, to the request's audit trail."""
    request = _request_or_404(request_id)
    form = forms.NoteForm(http_request.POST, auto_id="note_%s")
    if not form.is_valid():
        return _request_page(http_request, request, note=form)
    try:
        services.request_note_add(request_id=request.pk, actor=staff_actor(http_request.user), note=form.cleaned_data["note"])
    except ServiceError as error:
        form.add_error("note", error.detail)
        return _request_page(http_request, request, note=form)
    messages.success(http_request, gettext("Note added. Only staff see it."))
    return redirect("console:request", request_id=request.pk)


@console_access
@require_safe
def question_file(http_request, request_id, question_id: int):
    """The file a person sent with their answer, as a download, to staff only: never shown inline."""
    try:
        question = selectors.question_file_get(request_id=request_id, question_id=question_id)
    except NotFound:
        raise Http404("No such file.") from None
    extension = Path(question.answer_file).suffix
    return FileResponse(exports.default_storage.open(question.answer_file, "rb"), as_attachment=True,
                        filename=f"answer-{question.request_id}-{question.pk}{extension}",
                        content_type=question.answer_content_type)


# --- Dashboard ----------------------------------------------------------------------------------------


@console_access
@require_safe
def dashboard(request):
    """Open work by status, what is due soon or late, recent completion time and connector failures."""
    figures = selectors.dashboard_get()
    context = {
        "figures": figures,
        "open_rows": [(status, Status(status).label, count) for status, count in figures.open_by_status.items()],
        "open_total": sum(figures.open_by_status.values()),
        "median": _duration(figures.median_completion),
        "recent_days": selectors.RECENT_DAYS,
    }
    return render(request, "console/dashboard.html", context)


@console_access
@require_safe
def metrics(request):
    """The yearly figures CCPA regulations §7102 ask for, as `manage.py metrics` prints them, for the
    year chosen in the form (last calendar year unless one is chosen); `format=csv` downloads the table."""
    years = selectors.metrics_years()
    chosen = request.GET.get("year", "").strip() or str(years[-1] - 1)
    try:
        year = django_forms.IntegerField(min_value=years[0], max_value=years[-1]).clean(chosen)
    except ValidationError:
        messages.error(request, f"Choose a year from {years[0]} to {years[-1]}.")
        return render(request, "console/metrics.html", {"years": years[::-1], "chosen": chosen})
    table = selectors.yearly_metrics_table(selectors.yearly_metrics_get(year=year))
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="dsar-metrics-{year}.csv"'
        csv.writer(response).writerows([["figure", *table[0][1:]], *table[1:]])
        return response
    context = {"years": years[::-1], "chosen": str(year), "year": year, "scopes": table[0][1:], "rows": table[1:]}
    return render(request, "console/metrics.html", context)


# --- Second factor -------------------------------------------------------------------------------------


def _qr_svg(uri: str) -> str:
    svg = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage).to_string(encoding="unicode")
    # The markup is qrcode's own (the URI is drawn as modules, never written as text): safe to inline.
    return mark_safe(svg.replace("<svg ", '<svg class="qr" role="img" aria-labelledby="qr-label" ', 1))


@console_access(second_factor_step=True)
@require_page_or_form
def otp_setup(request):
    """Set up a TOTP device: show its secret as a QR code and as text, and confirm it with a code.

    A confirmed device replaces any earlier one. Replacing needs a session verified with the
    current device, or a stolen password alone would be enough to take over the second factor.
    """
    user = request.user
    has_device = django_otp.user_has_device(user)
    if has_device and not user.is_verified():
        return redirect(_with_next("console:otp-verify", request))
    device = staff_second_factor_device(user=user)
    # A first authenticator needs the one-time setup code an admin gave: a password alone enrols none.
    form = forms.OtpSetupForm(request.POST or None, first=not has_device)
    if request.method == "POST" and form.is_valid():
        setup_code = form.cleaned_data.get("setup_code")
        # The setup code first: a code from the app is good once, and a typo in the other should not spend it.
        if setup_code is not None and not staff_setup_code_valid(user=user, code=setup_code):
            form.add_error("setup_code", SETUP_CODE_REFUSED)
        else:
            try:
                staff_code_verify(user=user, devices=[device], code=form.cleaned_data["code"])
            except ServiceError as error:
                form.add_error("code", error.detail)
            else:
                try:
                    staff_second_factor_confirm(user=user, device=device, setup_code=setup_code)
                except ServiceError as error:  # it expired, or was replaced, in between
                    form.add_error("setup_code", error.detail)
                else:
                    django_otp.login(request, device)
                    messages.success(request, "Two-factor sign-in is set up. You will be asked for a code each time you sign in.")
                    return redirect(_next_url(request))
    secret = b32encode(device.bin_key).decode()
    context = {
        "form": form,
        "next": _next_url(request),
        "replacing": has_device,
        "uri": device.config_url,
        "qr": _qr_svg(device.config_url),
        "secret_groups": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
    }
    return render(request, "console/otp_setup.html", context)


@console_access(second_factor_step=True)
@require_page_or_form
def otp_verify(request):
    """Ask for a code from the staff member's device once per session."""
    user = request.user
    if user.is_verified():
        return redirect(_next_url(request))
    devices = list(django_otp.devices_for_user(user))
    if not devices:
        return redirect(_with_next("console:otp-setup", request))
    form = forms.OtpCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = staff_code_verify(user=user, devices=devices, code=form.cleaned_data["code"])
        except ServiceError as error:
            form.add_error("code", error.detail)
        else:
            django_otp.login(request, device)
            return redirect(_next_url(request))
    return render(request, "console/otp_verify.html", {"form": form, "next": _next_url(request)})


# --- Admins: staff and settings ---------------------------------------------------------------------------


@console_access(role=ROLE_ADMIN)
@require_page_or_form
def staff(request):
    """Staff members with their role and second factor; add one."""
    form = forms.StaffCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = staff_member_create(username=data["username"], email=data["email"], role=data["role"],
                                                      password=data["password"], by=request.user)
        except ServiceError as error:
            form.add_error("username", error.detail)
        else:
            code = staff_setup_code_issue(user_id=user.pk, by=request.user)
            messages.success(request, f"{user.username} can now sign in as {data['role']}. Give them their password safely. "
                                      f"{_setup_code_said(user, code)}")
            return redirect("console:staff")
    return render(request, "console/staff.html", {"members": selectors.staff_list(), "form": form, "roles": forms.ROLE_CHOICES})


def _staff_change(request, change: Callable[[], object], done: Callable[[object], str]) -> None:
    """Run a staff-management service on a member; show what it did, or why it refused."""
    try:
        member = change()
    except NotFound:
        raise Http404("No such staff member.") from None
    except ServiceError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, done(member))


@console_access(role=ROLE_ADMIN)
@require_POST
def staff_role(request, user_id):
    """Give a staff member a different role."""
    form = forms.StaffRoleForm(request.POST)
    if form.is_valid():
        role = form.cleaned_data["role"]
        _staff_change(request, lambda: staff_role_change(user_id=user_id, role=role, by=request.user),
                      lambda member: f"{member.username} is now {role}.")
    else:
        messages.error(request, "Choose a role.")
    return redirect("console:staff")


@console_access(role=ROLE_ADMIN)
@require_POST
def staff_active(request, user_id):
    """Deactivate a staff member (their sessions and API tokens stop working at once), or reactivate."""
    form = forms.StaffActiveForm(request.POST)
    if form.is_valid():
        active = form.cleaned_data["active"]
        _staff_change(request, lambda: staff_active_set(user_id=user_id, active=active, by=request.user),
                      lambda member: f"{member.username} is {'active again' if active else 'deactivated'}.")
    return redirect("console:staff")


@console_access(role=ROLE_ADMIN)
@require_POST
def staff_otp_reset(request, user_id):
    """Remove a staff member's TOTP devices (a lost phone); they set one up at their next sign-in."""
    def reset():
        member = staff_second_factor_reset(user_id=user_id, by=request.user)
        return member, staff_setup_code_issue(user_id=user_id, by=request.user)

    _staff_change(request, reset, lambda done: f"{done[0].username}'s two-factor sign-in is reset. {_setup_code_said(*done)}")
    return redirect("console:staff")


@console_access(role=ROLE_ADMIN)
@require_POST
def staff_setup_code(request, user_id):
    """A new one-time code for a staff member to set up their first authenticator with."""
    def issue():
        code = staff_setup_code_issue(user_id=user_id, by=request.user)
        return get_user_model().objects.get(pk=user_id), code

    _staff_change(request, issue, lambda done: _setup_code_said(*done))
    return redirect("console:staff")


def _setup_code_said(member, code: str) -> str:
    return (f"Give {member.username} this one-time setup code for their authenticator, apart from their password: {code} "
            f"(valid for {SETUP_CODE_VALID.total_seconds() / 3600:.0f} hours).")


@console_access
@require_page_or_form
def preferences(request):
    """The member's own settings: the time zone the console gives times in."""
    form = forms.TimeZoneForm(request.POST or None, initial={"time_zone": request.session[SESSION_TIME_ZONE]})
    if request.method == "POST" and form.is_valid():
        zone = staff_time_zone_set(user=request.user, time_zone=form.cleaned_data["time_zone"], chosen=True)
        time_zone_remember(request, zone)
        messages.success(request, gettext("Times are now given in %(zone)s.") % {"zone": zone})
        return redirect("console:preferences")
    return render(request, "console/preferences.html", {"form": form})


@console_access(role=ROLE_ADMIN)
@require_safe
def workflow_settings(request):
    """The deployment's workflow settings, read-only: they come from its environment."""
    values = selectors.workflow_settings()
    context = {"values": values, "respond_within": _period(values["respond_within"]), "extension": _period(values["extension"])}
    return render(request, "console/settings.html", context)


# --- Systems -------------------------------------------------------------------------------------------


def _repo_path(path: Path | None) -> str:
    """Where a system's file is, relative to the product's directory when it lies inside it."""
    if path is None:
        return ""
    path = path.resolve()
    return str(path.relative_to(settings.BASE_DIR)) if path.is_relative_to(settings.BASE_DIR) else str(path)


@console_access
@require_safe
def systems(request):
    """Each configured system: what its file declares, its last check and whether workers refuse it,
    its latest tasks and recent failures; admins can check a system from here."""
    rows = [
        {
            "status": status,
            "file": _repo_path(status.system.file),
            "needs": sorted(status.system.needs),
            "provides": sorted(status.system.provides),
            # The taxonomy's order, which groups related categories (as `_counts` sorts them).
            "categories": [(category, label) for category, label, _ in _counts(dict.fromkeys(status.categories, 0))],
            "last_error": status.last_failure.last_error.partition("\n")[0] if status.last_failure else "",
        }
        for status in selectors.system_list()
    ]
    context = {
        "systems": rows,
        "runs": selectors.SYSTEM_RUNS,
        "failure_days": selectors.FAILURE_DAYS,
        "can_check": staff_has_role(request.user, ROLE_ADMIN),
    }
    return render(request, "console/systems.html", context)


@console_access(role=ROLE_ADMIN)
@require_POST
def system_check(request, name: str):
    """Check one system now, as `manage.py systems check NAME` does, and say what the check found."""
    try:
        check = services.system_check(name=name, actor=staff_actor(request.user))
    except NotFound:
        raise Http404("No such system.") from None
    if problems := len(check.problems):
        messages.error(request, f"{name}: {problems} problem{'s' if problems != 1 else ''}. Workers refuse it until a check finds none.")
    else:
        messages.success(request, f"{name} fits its file.")
    return redirect("console:systems")


# --- Systems with no API ---------------------------------------------------------------------------------


@console_access
@require_safe
def manual_tasks(request):
    """The tasks of systems with no API waiting for staff, soonest due first."""
    now = timezone.now()
    rows = [(item, _deadline(item.task.request, now)) for item in selectors.manual_task_list()]
    return render(request, "console/manual_tasks.html", {"rows": rows})


@console_access
@require_page_or_form
def manual_task(http_request, task_id: int):
    """One task of a system with no API: who the request is about, what to do, and the form that
    completes it (the records found, for an access request; what was erased, for a deletion)."""
    try:
        item = selectors.manual_task_get(task_id=task_id)
    except NotFound:
        raise Http404("No such manual task.") from None
    request = item.task.request
    data = http_request.POST if http_request.method == "POST" else None
    if request.type == RequestType.ACCESS:
        held = [(category, category_label(category)) for category in item.categories]
        form = forms.ManualUploadForm(data, http_request.FILES or None, categories=held)
    else:
        # Only what the request asked to erase, of what the system holds.
        wanted = [(category, category_label(category)) for category in item.categories if category in request.categories]
        form = forms.ManualErasureForm(data, categories=wanted)
    if data is not None and form.is_valid():
        actor = staff_actor(http_request.user)
        try:
            if request.type == RequestType.ACCESS:
                # One byte past the limit is enough for the service to refuse a file too large.
                limit = services.MANUAL_UPLOAD_MAX_BYTES + 1
                upload = form.cleaned_data["file"]
                services.manual_task_gather(
                    task_id=item.task.pk, actor=actor, filename=upload.name if upload else None, content=upload.read(limit) if upload else None,
                    files=[(found.name, found.read(limit)) for found in form.cleaned_data["files"]],
                    files_category=form.cleaned_data["files_category"] or None)
            else:
                services.manual_task_erase(task_id=item.task.pk, actor=actor, counts=form.counts(), note=form.cleaned_data["note"],
                                           kept=form.kept(), kept_reason=form.cleaned_data["kept_reason"])
        except ServiceError as error:
            messages.error(http_request, error.detail)
        else:
            messages.success(http_request, f"{item.system.name}: done. The request goes on once every system has finished.")
            return redirect("console:request", request_id=request.pk)
    context = {
        "item": item,
        "req": request,
        "open": item.task.status == TaskStatus.WITH_STAFF,
        "deadline": _deadline(request, timezone.now()),
        "held": [category_label(category) for category in item.categories],
        "form": form,
    }
    return render(http_request, "console/manual_task.html", context)
