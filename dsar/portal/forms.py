"""The portal's forms. They check the shape of what people type; the services decide the rest."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from connectors.taxonomy import category_ids, taxonomy

from .. import services
from ..errors import ServiceError
from ..models import RequestType

# Which field a service refusal is about, so its detail is shown next to that field.
_FIELD_FOR_CODE = {"invalid_email": "email", "invalid_type": "type", "invalid_category": "categories", "answer_required": "answer",
                   "upload_too_large": "file", "upload_type_refused": "file", "period_not_allowed": "date_from", "invalid_period": "date_from",
                   "period_in_future": "date_from", "part_size_not_allowed": "part_size", "invalid_part_size": "part_size"}


def service_error_add(form: forms.Form, error: ServiceError) -> None:
    """Show a service's refusal on the form, next to the field it concerns when there is one."""
    form.add_error(_FIELD_FOR_CODE.get(error.code), error.detail)


class RequestForm(forms.Form):
    """Step one: what the person wants, for which address, and optionally which data."""

    type = forms.ChoiceField(
        choices=RequestType.choices,
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Choose whether you want a copy of your data or want it deleted."),
            "invalid_choice": _("Choose one of the two options."),
        },
    )
    email = forms.CharField(
        max_length=254,
        error_messages={"required": _("Enter your email address."), "max_length": _("An email address is at most 254 characters.")},
    )
    categories = forms.MultipleChoiceField(
        choices=lambda: [(category, category) for category in category_ids()],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": _("Choose only from the kinds of data listed.")},
    )

    # A whole group of categories at once: the server adds the group's categories, so the group
    # boxes work without JavaScript (dsar/static/dsar/category-groups.js only ticks them on the page).
    groups = forms.MultipleChoiceField(
        choices=lambda: [(group["id"], group["label"]) for group in taxonomy()["groups"]],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": _("Choose only from the groups listed.")},
    )

    # An access request's choices (templates/portal/_date_range.html): a period, and the export in parts.
    date_from = forms.DateField(required=False, error_messages={"invalid": _("Enter the first day as a date, such as 2024-01-31.")})
    date_to = forms.DateField(required=False, error_messages={"invalid": _("Enter the last day as a date, such as 2024-12-31.")})
    part_size = forms.ChoiceField(choices=[("", _("One file")), *((name, f"{size // 10**9} GB") for name, size in services.PART_SIZES.items())],
                                  required=False,
                                  error_messages={"invalid_choice": _("Choose one of the sizes listed.")})

    # Filled in by the page's script from the browser (dsar/static/dsar/time-zone.js); left empty
    # without JavaScript, when times are given in UTC.
    time_zone = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def clean_part_size(self) -> int | None:
        return services.PART_SIZES.get(self.cleaned_data["part_size"])

    def clean_time_zone(self) -> str | None:
        # A zone the service does not know is the browser's oddity, not the person's mistake: UTC then.
        return self.cleaned_data["time_zone"] if self.cleaned_data["time_zone"] in services.time_zones() else None

    def clean(self) -> dict:
        cleaned = super().clean()
        chosen = set(cleaned.get("groups") or [])
        if chosen:
            picked = set(cleaned.get("categories") or [])
            picked |= {category for category, info in taxonomy()["categories"].items() if info["group"] in chosen}
            cleaned["categories"] = [category for category in category_ids() if category in picked]
        # What only the request's kind decides (a period or parts of a deletion), before a deletion's
        # answers wait in the session for its warning page.
        if "type" in cleaned and not self.has_error("date_from") and not self.has_error("date_to"):
            try:
                services.request_choices_check(type=cleaned["type"], date_from=cleaned.get("date_from"), date_to=cleaned.get("date_to"),
                                               part_size=cleaned.get("part_size"), time_zone=cleaned.get("time_zone"))
            except ServiceError as error:
                service_error_add(self, error)
        return cleaned

    def clean_email(self) -> str:
        # The service owns what a valid address is; asking it here catches a typo before the
        # deletion warning rather than after it.
        try:
            return services.email_normalize(self.cleaned_data["email"])
        except ServiceError as error:
            raise forms.ValidationError(error.detail, code=error.code) from None


class DeletionConfirmForm(forms.Form):
    """Step two of a deletion: the person confirms they read what is lost and what is kept."""

    acknowledge = forms.BooleanField(
        error_messages={"required": _("Tick the box to confirm that you understand what will be deleted and what we keep.")},
    )


class CodeForm(forms.Form):
    """The code from the verification email."""

    code = forms.CharField(max_length=32, error_messages={"required": _("Enter the code from the email.")})

    def clean_code(self) -> str:
        # People paste codes with spaces or dashes; only the digits matter.
        code = "".join(self.cleaned_data["code"].replace("-", " ").split())
        if not code.isdigit():
            raise forms.ValidationError(_("Enter the code using only the digits in the email."), code="invalid_code")
        return code


class AnswerForm(forms.Form):
    """The person's answer to the question staff asked, and the document it may need."""

    answer = forms.CharField(
        max_length=services.ANSWER_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 5}),
        error_messages={"required": _("Write your answer."),
                        # Django fills in the limit.
                        "max_length": _("An answer is at most %(limit_value)d characters.")},
    )
    file = forms.FileField(required=False, error_messages={"empty": _("The file you chose is empty.")})


class PassphraseForm(forms.Form):
    """The passphrase a person chooses for the encrypted download; kept only for that response."""

    passphrase = forms.CharField(
        min_length=12,
        max_length=200,
        strip=False,  # spaces are part of a passphrase
        widget=forms.PasswordInput,
        error_messages={"required": _("Choose a passphrase."),
                        "min_length": _("A passphrase is at least 12 characters long."),
                        "max_length": _("A passphrase is at most 200 characters long.")},
    )
