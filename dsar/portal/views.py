"""The public request portal: file a request, prove the email address, follow the request.

Thin views: they read forms, call the services and render. Which requests a browser may see is
kept in its session, granted by a correct code or by the signed link in our emails.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from .. import notifications, services
from ..errors import Conflict, InvalidInput, Locked, NotFound, ServiceError
from ..models import RequestType, Status
from ..throttle import throttle_filing, throttle_verify
from ..verification import CODE_DIGITS
from . import selectors
from .forms import AnswerForm, CodeForm, DeletionConfirmForm, RequestForm, service_error_add

SEEN = "dsar_requests"  # ids of the requests this browser may see
FILED = "dsar_filed"  # id -> address the code went to, for the code page
PENDING = "dsar_pending_deletion"  # a deletion's answers, held until the warning is confirmed
SEEN_MAX = 20


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
    return render(http_request, "portal/start.html", {"deadline": selectors.deadline_words()})


def _request_form_page(http_request: HttpRequest, form: RequestForm) -> HttpResponse:
    return render(http_request, "portal/request_form.html", {"form": form, "groups": selectors.category_groups()})


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
        return _request_form_page(http_request, RequestForm(initial=http_request.session.get(PENDING)))
    form = RequestForm(http_request.POST)
    if not form.is_valid():
        return _request_form_page(http_request, form)
    if form.cleaned_data["type"] == RequestType.DELETION:
        http_request.session[PENDING] = form.cleaned_data
        return redirect("portal:request-confirm")
    try:
        return _file(http_request, form.cleaned_data)
    except ServiceError as error:
        service_error_add(form, error)
        return _request_form_page(http_request, form)


@require_http_methods(["GET", "POST"])
def request_confirm(http_request: HttpRequest) -> HttpResponse:
    """A deletion's warning: what is lost, what the law makes us keep; filed only once confirmed."""
    pending = http_request.session.get(PENDING)
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
        del http_request.session[PENDING]
        return response
    context = {
        "form": form,
        "email": pending["email"],
        "all_categories": not pending["categories"],
        "groups": selectors.category_groups(pending["categories"]),
        "closes_account": selectors.deletion_closes_account(pending["categories"]),
    }
    return render(http_request, "portal/request_confirm.html", context)


def _verify_page(http_request: HttpRequest, request_id, form: CodeForm, *, error: ServiceError | None = None) -> HttpResponse:
    context = {
        "request_id": request_id,
        "form": form,
        "email": http_request.session.get(FILED, {}).get(str(request_id)),
        "digits": CODE_DIGITS,
        "ttl_minutes": settings.DSAR_CODE_TTL_MINUTES,
        "locked": isinstance(error, Locked),
        "error": error,
    }
    return render(http_request, "portal/verify.html", context)


@require_http_methods(["GET", "POST"])
def request_verify(http_request: HttpRequest, request_id) -> HttpResponse:
    """Enter the emailed code. Success lets this browser see the request."""
    if http_request.method == "GET":
        if _may_see(http_request, request_id):
            request = selectors.request_get(request_id=request_id)
            if request is not None and request.status != Status.UNVERIFIED:
                return redirect("portal:request-status", request_id=request_id)
        return _verify_page(http_request, request_id, CodeForm())
    form = CodeForm(http_request.POST)
    if not form.is_valid():
        return _verify_page(http_request, request_id, form)
    try:
        throttle_verify(http_request)
        request, _token = services.request_verify(request_id=request_id, code=form.cleaned_data["code"])
    except NotFound:
        return _unknown(http_request)
    except Conflict:
        if _may_see(http_request, request_id):
            return redirect("portal:request-status", request_id=request_id)
        form.add_error(None, "This request is already confirmed. To see it, use the link in the email we sent you.")
        return _verify_page(http_request, request_id, form)
    except Locked as error:
        return _verify_page(http_request, request_id, form, error=error)
    except ServiceError as error:
        # A wrong or expired code belongs next to the input; anything else (a system we must ask is down) does not.
        form.add_error("code" if isinstance(error, InvalidInput) else None, error.detail)
        return _verify_page(http_request, request_id, form)
    _remember(http_request, request.id)
    return redirect("portal:request-status", request_id=request.id)


@require_POST
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
    messages.success(http_request, "We sent you a new code. Use the newest one: it replaces the code we sent before.")
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


def _status_page(http_request: HttpRequest, request_id, form: AnswerForm) -> HttpResponse:
    """The request's page, with `form` to answer a question staff asked, if they asked one."""
    request = selectors.request_get(request_id=request_id)
    if request is None:
        return _unknown(http_request)
    return render(http_request, "portal/status.html", {**selectors.request_page(request), "form": form})


@require_POST
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
        messages.success(http_request, "You canceled your request. We will not do anything more with it.")
    return redirect("portal:request-status", request_id=request_id)


@require_POST
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
        messages.success(http_request, "Thank you: we have your answer. Our privacy team will now look at your request again.")
    return redirect("portal:request-status", request_id=request_id)
