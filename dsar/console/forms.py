"""The console's forms. They check the shape of what staff typed; the services decide what is allowed."""

from __future__ import annotations

import datetime as dt
import uuid

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.password_validation import validate_password
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from connectors.registry import connector_names
from connectors.taxonomy import category_label, category_sensitive

from .. import exports
from ..deadlines import extension_limit
from ..models import Authority, DenialGround, QuestionPurpose, Request, RequestType, Status
from ..processing import systems_answering
from ..zones import time_zones
from ..staff import ROLE_ADMIN, ROLE_REVIEWER, staff_has_role

NOTE_MAX = 2000
SHOW_ACTION, SHOW_ALL = "action", "all"
ROLE_CHOICES = [(ROLE_REVIEWER, "Reviewer: acts on requests"), (ROLE_ADMIN, "Admin: also manages staff and settings")]


class StaffAuthenticationForm(AuthenticationForm):
    """Django's sign-in form, for staff only. Anyone else gets the same answer as a wrong password,
    so the form does not tell who has an account."""

    # The browser's time zone, filled in by a static script (dsar/time-zone.js); empty without it.
    time_zone = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not staff_has_role(user, ROLE_REVIEWER):
            raise self.get_invalid_login_error()


# Days a filter takes: any a request could be received or due on, with room on either side of the calendar's ends.
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(9999, 12, 30)


def _day_field(label: str) -> forms.DateField:
    message = _("Choose a day from 1900 to 9999.")
    return forms.DateField(label=label, required=False, widget=forms.DateInput(attrs={"type": "date"}), validators=[
        MinValueValidator(FIRST_DAY, message=message), MaxValueValidator(LAST_DAY, message=message)])


class QueueFilterForm(forms.Form):
    """The queue's filters, read from the query string."""

    q = forms.CharField(label="Search", required=False, max_length=254, help_text="A request id (or its start) or an email.")
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *Status.choices])
    type = forms.ChoiceField(label="Type", required=False, choices=[("", "Any type"), *RequestType.choices])
    overdue = forms.ChoiceField(
        label="Deadline", required=False, choices=[("", "Any"), ("yes", "Overdue only"), ("no", "Not overdue")]
    )
    retention = forms.ChoiceField(
        label="Retention", required=False, choices=[("", "Any"), ("yes", "Data kept longer than promised")]
    )
    sort = forms.ChoiceField(
        label="Sort by",
        required=False,
        choices=[("due", "Due soonest"), ("-due", "Due latest"), ("-created", "Newest"), ("created", "Oldest")],
    )
    show = forms.ChoiceField(
        label=_("Show"), required=False,
        choices=[(SHOW_ACTION, _("Needing action")), (SHOW_ALL, _("All requests, closed and unverified too"))],
        # A search, a status or the retention finding chosen looks through every request (`filters`).
        help_text=_("Needing action: to review, to release, failed, or due within 7 days."),
    )
    assigned = forms.ChoiceField(label=_("Assigned"), required=False,
                                 choices=[("", _("To anyone or nobody")), ("mine", _("To me")), ("nobody", _("To nobody"))])
    received_from = _day_field(_("Received from"))
    received_to = _day_field(_("Received to"))
    due_from = _day_field(_("Due from"))
    due_to = _day_field(_("Due to"))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean(self):
        data = super().clean()
        for name in ("received", "due"):
            start, end = data.get(f"{name}_from"), data.get(f"{name}_to")
            if start and end and end < start:
                self.add_error(f"{name}_to", _("Choose a day on or after the first one."))
        return data

    def filters(self) -> dict:
        """Keyword arguments for `selectors.request_list`; an invalid field filters nothing. Days are
        whole days in the member's time zone (the current one), the last one included."""
        self.is_valid()  # cleaned_data then holds only the fields that are valid
        data = self.cleaned_data
        status = data.get("status") or None
        return {
            "search": data.get("q", ""),
            "status": status,
            "type": data.get("type") or None,
            "overdue": {"yes": True, "no": False}.get(data.get("overdue", "")),
            "retention_finding": {"yes": True}.get(data.get("retention", "")),
            # A search, a status or the retention finding chosen looks through every request: staff looking
            # for those expect to find them, closed or not.
            "needs_action": (status is None and not data.get("q", "").strip() and not data.get("retention")
                             and data.get("show") != SHOW_ALL and "show" in data),
            "assignee_id": self.user.pk if data.get("assigned") == "mine" else None,
            "unassigned": data.get("assigned") == "nobody",
            "received_from": _day_start(data.get("received_from")),
            "received_before": _day_start(data.get("received_to"), after=True),
            "due_from": _day_start(data.get("due_from")),
            "due_before": _day_start(data.get("due_to"), after=True),
            "order": data.get("sort") or "due",
        }


def _day_start(day: dt.date | None, *, after: bool = False) -> dt.datetime | None:
    """When `day` (or, `after`, the day after it) starts in the current time zone."""
    if day is None:
        return None
    return timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=after), dt.time.min))


class _RequestIdsField(forms.Field):
    """The requests ticked in the queue: their ids, as many as were ticked."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[str]:
        try:
            return [str(uuid.UUID(str(one))) for one in value or []]
        except ValueError:
            raise forms.ValidationError(_("Tick requests in the queue.")) from None


class BulkReviewForm(forms.Form):
    """Approve or deny the requests ticked in the queue, with one reason."""

    requests = _RequestIdsField(error_messages={"required": _("Tick at least one request.")})
    action = forms.ChoiceField(label=_("Do"), choices=[("approve", _("Approve them")), ("deny", _("Deny them"))],
                               widget=forms.RadioSelect, error_messages={"required": _("Choose to approve or deny them.")})
    reason = forms.CharField(label=_("Reason"), required=False, max_length=NOTE_MAX, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text=_("Required to deny: each person is emailed it. Approving keeps it as a note in the audit trail."))

    def clean(self):
        data = super().clean()
        if data.get("action") == "deny" and not data.get("reason", "").strip():
            self.add_error("reason", _("Enter the reason for denying them: each person is emailed it."))
        return data


class AssignForm(forms.Form):
    """Give a request to a staff member, or to nobody."""

    assignee = forms.ChoiceField(label=_("Assign to"), required=False)

    def __init__(self, *args, staff: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices = [("", _("Nobody")), *((member.username, member.username) for member in staff)]


class NoteForm(forms.Form):
    note = forms.CharField(label=_("Internal note"), max_length=NOTE_MAX, widget=forms.Textarea(attrs={"rows": 3}),
                           help_text=_("For staff only: kept in the audit trail, never shown to the person."),
                           error_messages={"required": _("Write the note.")})


class TimeZoneForm(forms.Form):
    time_zone = forms.ChoiceField(label=_("Time zone"), help_text=_("The console gives every time in it."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [(zone, zone) for zone in sorted(time_zones())]


def _note(label: str, *, required: bool, help_text: str = "") -> forms.CharField:
    return forms.CharField(
        label=label,
        required=required,
        max_length=NOTE_MAX,
        help_text=help_text,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": f"Enter a {label.lower()}."},
    )


class ActionForm(forms.Form):
    """A review action on one request; `request` is the one it acts on."""

    def __init__(self, *args, request: Request, **kwargs):
        self.request = request
        super().__init__(*args, **kwargs)


class ApproveForm(ActionForm):
    """Approve, refusing any of the request's categories and the systems that answer it (not those
    referred to the organisation managing the account), each ticked with the reason the person is
    emailed; `cleaned_data["refuse"]` lists them as `services.request_approve` takes them. For a
    request flagged as a child's, whose authority was confirmed, and whether to withhold the
    sensitive categories."""

    note = _note("Note", required=False, help_text="Optional. Kept in the audit trail.")

    def __init__(self, *args, request: Request, **kwargs):
        super().__init__(*args, request=request, **kwargs)
        if request.minor_age is not None:
            self.fields["authority"] = forms.ChoiceField(
                label="Whose authority did you confirm?", choices=Authority.choices, widget=forms.RadioSelect,
                error_messages={"required": "Say whose authority you confirmed: the child's, or a parent's or guardian's."})
            sensitive = [category_label(category) for category in request.categories if category_sensitive(category)]
            if sensitive and request.type == RequestType.ACCESS:  # a deletion releases nothing to withhold
                self.fields["withhold_sensitive"] = forms.BooleanField(
                    label=f"Withhold {', '.join(sensitive)}", required=False,
                    help_text="The person is told it was withheld to protect a child, and how a parent or guardian can obtain it.")
        self.refusable = {"category": [(category, category_label(category)) for category in request.categories],
                          "system": [(name, name) for name in systems_answering((), request.referred_systems)]}
        for kind, parts in self.refusable.items():
            for name, label in parts:
                self.fields[f"refuse_{kind}_{name}"] = forms.BooleanField(label=f"Refuse {label}", required=False)
                self.fields[f"reason_{kind}_{name}"] = forms.CharField(label=f"Why {label} is refused", required=False,
                                                                       max_length=NOTE_MAX)

    def refusal_rows(self) -> dict[str, list[tuple[forms.BoundField, forms.BoundField]]]:
        """Per kind (category, system), each part's tick box and reason, in the request's order."""
        return {kind: [(self[f"refuse_{kind}_{name}"], self[f"reason_{kind}_{name}"]) for name, _ in parts]
                for kind, parts in self.refusable.items()}

    def clean(self):
        data = super().clean()
        data["refuse"] = []
        for kind, parts in self.refusable.items():
            for name, label in parts:
                reason = data.get(f"reason_{kind}_{name}", "")
                if data.get(f"refuse_{kind}_{name}") and not reason:
                    self.add_error(f"reason_{kind}_{name}", f"Enter the reason for refusing {label}: the person is emailed it.")
                elif data.get(f"refuse_{kind}_{name}"):
                    data["refuse"].append({kind: name, "reason": reason})
                elif reason:
                    self.add_error(f"refuse_{kind}_{name}", f"Tick {label} to refuse it, or clear its reason.")
        return data


class DenyForm(ActionForm):
    reason = _note("Reason", required=True, help_text="Required. The person is emailed this reason.")
    ground = forms.ChoiceField(label="Ground", required=False, choices=DenialGround.choices,
                               help_text="When the law's: the reason must show it, and the person's email names it.")


class ExtendForm(ActionForm):
    """Extend the deadline. The form shows the most the law allows; the service enforces it."""

    reason = _note("Reason", required=True, help_text="Required. The person is emailed this reason.")
    days = forms.IntegerField(label="Days to add", min_value=1, max_value=366)

    def __init__(self, *args, request: Request, **kwargs):
        super().__init__(*args, request=request, **kwargs)
        self.limit = extension_limit(request.due_at, request.jurisdiction)
        self.max_days = (self.limit - request.due_at).days
        days = self.fields["days"]
        days.widget.attrs["max"] = self.max_days
        days.help_text = f"At most {self.max_days} days: the law allows extending to {self.limit:%-d %B %Y}."


class RetryForm(ActionForm):
    pass


class ReleaseForm(ActionForm):
    note = _note("Note", required=False, help_text="Optional. Kept in the audit trail.")


class ReviewForm(forms.Form):
    """A decision for each record and file of an export that may be other people's data: release it
    as it is, withhold it, or redact the fields ticked (a record), with the reason for what is
    withheld or redacted; `cleaned_data["decisions"]` lists them as
    `services.request_release_reviewed` takes them, which decides whether they hold together."""

    note = _note("Note", required=False, help_text="Optional. Kept in the audit trail.")

    def __init__(self, *args, items: list[exports.ReviewItem], **kwargs):
        super().__init__(*args, **kwargs)
        self.items = items
        reasons = [("", "—"), *exports.REASONS.items(), (exports.OTHER, "Another reason, in my words")]
        for number, item in enumerate(items):
            actions = [(exports.RELEASE, "Release it as it is"), (exports.WITHHOLD, "Withhold it")]
            if item.file is None:
                actions.append((exports.REDACT, "Redact the fields ticked"))
                self.fields[f"fields_{number}"] = forms.MultipleChoiceField(
                    label="Fields to redact", required=False, choices=[(path, path) for path in item.paths],
                    widget=forms.CheckboxSelectMultiple)
            self.fields[f"action_{number}"] = forms.ChoiceField(label="Decision", choices=actions, widget=forms.RadioSelect,
                                                                error_messages={"required": "Choose what to do with it."})
            self.fields[f"reason_{number}"] = forms.ChoiceField(label="Why it is withheld or redacted", required=False, choices=reasons,
                                                                help_text="The person is told it.")
            self.fields[f"reason_text_{number}"] = forms.CharField(label="The reason in your words", required=False, max_length=NOTE_MAX)

    def rows(self) -> list[tuple[exports.ReviewItem, list[forms.BoundField]]]:
        """Each item with its fields on the form, in order: the decision, what to redact, the reason."""
        names = ("action", "fields", "reason", "reason_text")
        return [(item, [self[f"{name}_{number}"] for name in names if f"{name}_{number}" in self.fields])
                for number, item in enumerate(self.items)]

    def clean(self):
        data = super().clean()
        data["decisions"] = [{"item": item.id, "action": data.get(f"action_{number}"), "fields": data.get(f"fields_{number}", []),
                              "reason": data.get(f"reason_{number}", ""), "reason_text": data.get(f"reason_text_{number}", "")}
                             for number, item in enumerate(self.items)]
        return data


class AskForm(ActionForm):
    """Ask the person a question; they are emailed it and answer on their request's page."""

    purpose = forms.ChoiceField(
        label="About",
        choices=[(QuestionPurpose.IDENTITY, "Who is asking: doubts about the person's identity (GDPR Art. 12(6))"),
                 (QuestionPurpose.SCOPE, "What the request covers (GDPR Recital 63)")],
        widget=forms.RadioSelect,
        error_messages={"required": "Choose what the question is about."},
    )
    question = _note("Question", required=True, help_text="Required. The person is emailed it and answers on their request's page.")


class OtpCodeForm(forms.Form):
    code = forms.CharField(
        label="Code from your authenticator app",
        min_length=6,
        max_length=8,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "pattern": "[0-9]*", "size": 8}),
    )

    def clean_code(self) -> str:
        code = self.cleaned_data["code"].replace(" ", "")
        if not code.isdigit():
            raise forms.ValidationError("Enter the digits your app shows.")
        return code


class OtpSetupForm(OtpCodeForm):
    """The code from a new authenticator; for a first one, with the one-time setup code an admin gave."""

    setup_code = forms.CharField(
        label="Setup code from an admin",
        max_length=20,
        help_text="A first authenticator needs the one-time code an admin gave you (XXXX-XXXX-XXXX).",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters", "size": 16}),
    )

    def __init__(self, *args, first: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not first:
            del self.fields["setup_code"]


class StaffCreateForm(forms.Form):
    """A new staff member with a role and an initial password they should change."""

    username = forms.CharField(label="Username", max_length=150)
    email = forms.EmailField(label="Email", required=False)
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES, widget=forms.RadioSelect, initial=ROLE_REVIEWER)
    password = forms.CharField(
        label="Initial password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        get_user_model().username_validator(username)
        return username

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("username"):
            try:
                validate_password(data["password"], get_user_model()(username=data["username"], email=data.get("email", "")))
            except forms.ValidationError as error:
                self.add_error("password", error)
        return data


class StaffRoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES)


class StaffActiveForm(forms.Form):
    active = forms.TypedChoiceField(choices=[("1", "Active"), ("0", "Inactive")], coerce=lambda value: value == "1")


class _MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class _MultipleFileField(forms.FileField):
    """Several files from one input (as Django's documentation shows): a list, maybe empty."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", _MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, (list, tuple)):
            return [super(_MultipleFileField, self).clean(one, initial) for one in data]
        return [super().clean(data, initial)] if data else []


class ManualUploadForm(forms.Form):
    """What staff found in a system with no API, for an access request: the records, files, or both."""

    file = forms.FileField(
        label="Records file",
        required=False,
        help_text='A CSV whose first row is category, then one column per field (an empty cell is no field); '
                  'or a JSON list of {"category": id, "fields": {...}}.',
    )
    files = _MultipleFileField(label="Files found", required=False, help_text="Scans, letters, documents: exported as they are.")
    files_category = forms.ChoiceField(label="The files are", required=False)

    def __init__(self, *args, categories: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["files_category"].choices = [("", "—"), *categories]


class ManualErasureForm(forms.Form):
    """What staff erased by hand in a system with no API, for a deletion: a count per category, what
    they had to keep and why, and a note."""

    note = _note("Note", required=True, help_text="Required. What you erased and how; kept in the receipt and the audit trail.")
    kept_reason = forms.CharField(label="Why records were kept", required=False, max_length=NOTE_MAX,
                                  help_text="Needed when you kept any; the person's receipt gives it.")

    def __init__(self, *args, categories: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        for category, label in categories:
            self.fields[f"count_{category}"] = forms.IntegerField(label=f"{label}: records erased", min_value=0, initial=0)
        for category, label in categories:
            self.fields[f"kept_{category}"] = forms.IntegerField(label=f"{label}: records kept", min_value=0, initial=0, required=False)
        self.order_fields([*(f"count_{category}" for category, _ in categories), *(f"kept_{category}" for category, _ in categories),
                           "kept_reason", "note"])

    def counts(self) -> dict[str, int]:
        """Records erased per category id."""
        return {name.removeprefix("count_"): count for name, count in self.cleaned_data.items() if name.startswith("count_")}

    def kept(self) -> dict[str, int]:
        """Records kept per category id."""
        return {name.removeprefix("kept_"): count or 0 for name, count in self.cleaned_data.items() if name.startswith("kept_")
                and name != "kept_reason"}


class RecipientToldForm(forms.Form):
    """Staff told a recipient of an erasure by hand, and say how."""

    note = _note("Note", required=True, help_text="Required: how you told them, and who. Kept in the audit trail.")
