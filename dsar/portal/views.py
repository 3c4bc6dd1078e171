"""The public request portal: file a request, prove the email address, follow the request.

Thin views: they read forms, call the services and render. Which requests a browser may see is
kept in its session, granted by a correct code or by the signed link in our emails.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_safe

from .. import exports, notifications, services
from ..errors import Conflict, InvalidInput, Locked, NotFound, ServiceError
from ..models import RequestType, Status
from ..throttle import throttle_filing, throttle_verify
from ..verification import CODE_DIGITS
from . import selectors
from .errors import forms_only
from .forms import AnswerForm, CodeForm, DeletionConfirmForm, PassphraseForm, RequestForm, service_error_add

SEEN = "dsar_requests"  # ids of the requests this browser may see
FILED = "dsar_filed"  # id -> address the code went to, for the code page
PENDING = "dsar_pending_deletion"  # a deletion's answers, held until the warning is confirmed
SEEN_MAX = 20
# How long a deletion's answers wait between the form and its warning. On a shared computer the
# next person must not find them in the form: they are dropped after this, when the person opens a
# fresh form or the start page, and when the deletion is filed.
PENDING_SECONDS = 30 * 60
CHANGE = "change"  # the form's query parameter that brings back the answers held for the warning


# --- Session ---------------------------------------------------------------------------------------


def _remember(http_request: HttpRequest, request_id) -> None:
    """Let this browser see the request from now on."""
    # A new session key on gaining access, as on signing in: a planted session id gains nothing.
    http_request.session.cycle_key()
    seen = [i for i in http_request.session.get(SEEN, []) if i != str(request_id)]
    http_request.session[SEEN] = [*seen, str(request_id)][-SEEN_MAX:]


def _may_see(http_request: HttpRequest, request_id) -> bool:
    return str(request_id) in http_request.session.get(SEEN, [])


def _unknown(http_request: HttpRequest) -> HttpResponse:
    """The same 404 page whether or not the request exists."""
    return render(http_request, "portal/status_unknown.html", status=404)


def _pending_keep(http_request: HttpRequest, answers: dict) -> None:
    http_request.session[PENDING] = {"answers": answers, "at": time.time()}


def _pending(http_request: HttpRequest) -> dict | None:
    """The deletion's answers held for its warning, unless they are too old (then forgotten)."""
    held = http_request.session.get(PENDING)
    if not isinstance(held, dict) or time.time() - held.get("at", 0) > PENDING_SECONDS:
        _pending_forget(http_request)
        return None
    return held["answers"]


def _pending_forget(http_request: HttpRequest) -> None:
    http_request.session.pop(PENDING, None)


def _throttle_resend(http_request: HttpRequest, request_id) -> None:
    """A resend sends mail like a new filing, so the filing limits count it, by the request's
    address; NotFound when there is no such request."""
    request = selectors.request_get(request_id=request_id)
    if request is None:
        raise NotFound("No such request.")
    throttle_filing(http_request, request.email)


# --- Pages -----------------------------------------------------------------------------------------


@require_safe
def start(http_request: HttpRequest) -> HttpResponse:
    """What the two kinds of request do, what happens next, and how long it takes."""
    _pending_forget(http_request)  # a person back at the start has left a deletion they did not send
    return render(http_request, "portal/start.html", {"deadline": selectors.deadline_words()})


def _request_form_page(http_request: HttpRequest, form: RequestForm, *, changing: bool = False) -> HttpResponse:
    ticked, chosen = set(form["groups"].value() or []), set(form["categories"].value() or [])
    # A group is shown unfolded when anything in it is chosen; the rest stay folded, so the list fits a phone.
    groups = [{**group, "ticked": group["id"] in ticked, "open": group["id"] in ticked or any(c["id"] in chosen for c in group["categories"])}
              for group in selectors.category_groups()]
    context = {"form": form, "groups": groups, "changing": changing}
    return render(http_request, "portal/request_form.html", context)


def _file(http_request: HttpRequest, data: dict) -> HttpResponse:
    """File the request (raises ServiceError) and go on to the code page."""
    throttle_filing(http_request, services.email_normalize(data["email"]))
    request = services.request_create(type=data["type"], email=data["email"], categories=data["categories"],
                                      time_zone=data.get("time_zone"), language=translation.get_language(),
                                      date_from=data.get("date_from"), date_to=data.get("date_to"), part_size=data.get("part_size"))
    http_request.session[FILED] = {**http_request.session.get(FILED, {}), str(request.id): request.email}
    return redirect("portal:request-verify", request_id=request.id)


@require_http_methods(["GET", "POST"])
def request_new(http_request: HttpRequest) -> HttpResponse:
    """Step one. An access request is filed here; a deletion goes to its warning first."""
    if http_request.method == "GET":
        # Only "Change my answers" on the warning brings them back; a fresh form forgets them.
        answers = _pending(http_request) if CHANGE in http_request.GET else None
        if answers is None:
            _pending_forget(http_request)
        return _request_form_page(http_request, RequestForm(initial=answers), changing=answers is not None)
    form = RequestForm(http_request.POST)
    if not form.is_valid():
        return _request_form_page(http_request, form)
    if form.cleaned_data["type"] == RequestType.DELETION:
        _pending_keep(http_request, form.cleaned_data)
        return redirect("portal:request-confirm")
    try:
        return _file(http_request, form.cleaned_data)
    except ServiceError as error:
        service_error_add(form, error)
        return _request_form_page(http_request, form)


@require_http_methods(["GET", "POST"])
def request_confirm(http_request: HttpRequest) -> HttpResponse:
    """A deletion's warning: what is lost, what the law makes us keep; filed only once confirmed."""
    pending = _pending(http_request)
    if not pending:
        return redirect("portal:request-new")
    form = DeletionConfirmForm(http_request.POST) if http_request.method == "POST" else DeletionConfirmForm()
    if form.is_valid():
        try:
            response = _file(http_request, pending)
        except ServiceError as error:
            # Back to step one, with the refusal next to the answer it is about.
            step_one = RequestForm(pending)
            step_one.is_valid()
            service_error_add(step_one, error)
            return _request_form_page(http_request, step_one)
        _pending_forget(http_request)
        return response
    context = {
        "form": form,
        "email": pending["email"],
        "all_categories": not pending["categories"],
        "groups": selectors.category_groups(pending["categories"]),
        "closes_account": selectors.deletion_closes_account(pending["categories"]),
    }
    return render(http_request, "portal/request_confirm.html", context)


def _verify_page(http_request: HttpRequest, request_id, form: CodeForm, *, error: ServiceError | None = None,
                 locked: bool = False) -> HttpResponse:
    context = {
        "request_id": request_id,
        "form": form,
        "email": http_request.session.get(FILED, {}).get(str(request_id)),
        "digits": CODE_DIGITS,
        "ttl_minutes": settings.DSAR_CODE_TTL_MINUTES,
        "locked": locked or isinstance(error, Locked),
        "error": error,
    }
    return render(http_request, "portal/verify.html", context)


def _code_refusal(request_id, error: ServiceError) -> str:
    """A refused code in the person's words: a wrong one with the attempts left, counted in their language."""
    request = selectors.request_get(request_id=request_id) if error.code == "invalid_code" else None
    if request is None:
        return error.detail
    left = selectors.code_attempts_left(request)
    return ngettext("That code is not right. %(left)d attempt left.", "That code is not right. %(left)d attempts left.", left) % {"left": left}


@require_http_methods(["GET", "POST"])
def request_verify(http_request: HttpRequest, request_id) -> HttpResponse:
    """Enter the emailed code. Success lets this browser see the request."""
    if http_request.method == "GET":
        request = selectors.request_get(request_id=request_id)
        if request is not None and request.status != Status.UNVERIFIED and _may_see(http_request, request_id):
            return redirect("portal:request-status", request_id=request_id)
        if request is not None and selectors.code_locked(request):
            # Said on opening, not after one more code the request would refuse anyway.
            return _verify_page(http_request, request_id, CodeForm(), locked=True)
        return _verify_page(http_request, request_id, CodeForm())
    form = CodeForm(http_request.POST)
    if not form.is_valid():
        return _verify_page(http_request, request_id, form)
    try:
        throttle_verify(http_request)
        request, _token = services.request_verify(request_id=request_id, code=form.cleaned_data["code"])
    except NotFound:
        return _unknown(http_request)
    except Conflict as error:
        if error.code == "request_lapsed":  # too old to confirm: the service's words say to make a new one
            form.add_error(None, error.detail)
            return _verify_page(http_request, request_id, form)
        if _may_see(http_request, request_id):
            return redirect("portal:request-status", request_id=request_id)
        form.add_error(None, _("This request is already confirmed. To see it, use the link in the email we sent you."))
        return _verify_page(http_request, request_id, form)
    except Locked as error:
        return _verify_page(http_request, request_id, form, error=error)
    except ServiceError as error:
        # A wrong or expired code belongs next to the input; anything else (a system we must ask is down) does not.
        form.add_error("code" if isinstance(error, InvalidInput) else None, _code_refusal(request_id, error))
        return _verify_page(http_request, request_id, form)
    _remember(http_request, request.id)
    return redirect("portal:request-status", request_id=request.id)


@forms_only("portal:request-status")
def request_resend(http_request: HttpRequest, request_id) -> HttpResponse:
    """Email a fresh code; the service decides whether it is too soon."""
    try:
        _throttle_resend(http_request, request_id)
        services.request_code_resend(request_id=request_id)
    except NotFound:
        return _unknown(http_request)
    except ServiceError as error:
        if isinstance(error, Conflict) and _may_see(http_request, request_id):
            return redirect("portal:request-status", request_id=request_id)
        return _verify_page(http_request, request_id, CodeForm(), error=error)
    messages.success(http_request, _("We sent you a new code. Use the newest one: it replaces the code we sent before."))
    return redirect("portal:request-verify", request_id=request_id)


@require_safe
def request_status(http_request: HttpRequest, request_id) -> HttpResponse:
    """Where the request stands. Opened by the emailed link (?key=) or from this browser's session."""
    key = http_request.GET.get("key")
    if key is not None:
        if not notifications.status_key_valid(request_id, key):
            return _unknown(http_request)
        _remember(http_request, request_id)
        # The clean address, so the key does not linger in history, bookmarks or referrers.
        return redirect("portal:request-status", request_id=request_id)
    if not _may_see(http_request, request_id):
        return _unknown(http_request)
    return _status_page(http_request, request_id, AnswerForm())


def _status_page(http_request: HttpRequest, request_id, form: AnswerForm, passphrase_form: PassphraseForm | None = None) -> HttpResponse:
    """The request's page, with `form` to answer a question staff asked, if they asked one, and
    `passphrase_form` for the encrypted download."""
    request = selectors.request_get(request_id=request_id)
    if request is None:
        return _unknown(http_request)
    context = {**selectors.request_page(request), "form": form, "passphrase_form": passphrase_form or PassphraseForm()}
    return render(http_request, "portal/status.html", context)


@forms_only("portal:request-status")
def request_cancel(http_request: HttpRequest, request_id) -> HttpResponse:
    """The person withdraws the request while it has not started."""
    if not _may_see(http_request, request_id):
        return _unknown(http_request)
    try:
        services.request_cancel(request_id=request_id)
    except NotFound:
        return _unknown(http_request)
    except ServiceError as error:
        messages.error(http_request, error.detail)
    else:
        messages.success(http_request, _("You canceled your request. We will not do anything more with it."))
    return redirect("portal:request-status", request_id=request_id)


@forms_only("portal:request-status")
def request_answer(http_request: HttpRequest, request_id) -> HttpResponse:
    """The person answers the question staff asked, with text and perhaps a file; a refusal is shown
    with the form, or as a message when the request no longer waits for an answer, and changes nothing."""
    if not _may_see(http_request, request_id):
        return _unknown(http_request)
    form = AnswerForm(http_request.POST, http_request.FILES)
    if not form.is_valid():
        return _status_page(http_request, request_id, form)
    upload = form.cleaned_data["file"]
    try:
        # One byte past the limit is enough for the service to refuse a file too large.
        services.request_answer(request_id=request_id, answer=form.cleaned_data["answer"],
                                file=upload.read(settings.DSAR_ANSWER_FILE_MAX_BYTES + 1) if upload else None)
    except NotFound:
        return _unknown(http_request)
    except InvalidInput as error:
        service_error_add(form, error)
        return _status_page(http_request, request_id, form)
    except ServiceError as error:
        messages.error(http_request, error.detail)
    else:
        messages.success(http_request, _("Thank you: we have your answer. Our privacy team will now look at your request again."))
    return redirect("portal:request-status", request_id=request_id)


@forms_only("portal:request-status")
def request_download_encrypted(http_request: HttpRequest, request_id) -> HttpResponse:
    """The export, encrypted with the passphrase the person chose on the request's page (the API's
    request_download_encrypted, for a browser)."""
    if not _may_see(http_request, request_id):
        return _unknown(http_request)
    form = PassphraseForm(http_request.POST)
    if not form.is_valid():
        return _status_page(http_request, request_id, AnswerForm(), form)
    request = selectors.request_get(request_id=request_id)
    export = selectors.export_downloadable(request) if request is not None else None
    if export is None:
        return redirect("portal:download-unavailable", request_id=request_id)
    response = StreamingHttpResponse(exports.archive_encrypted(export, form.cleaned_data["passphrase"]), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="data-{request_id}-encrypted.zip"'
    return response


@require_safe
def download_unavailable(http_request: HttpRequest, request_id) -> HttpResponse:
    """Where a download link that expired or was damaged leads a browser: what happened, and how to
    ask again. The request's page is offered only to a browser that may see it."""
    context = {"request_id": request_id if _may_see(http_request, request_id) else None}
    return render(http_request, "portal/download_unavailable.html", context, status=404)
