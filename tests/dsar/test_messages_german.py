"""The services' refusals in the language of the person's request: German on the portal's pages and in the
subject API's `detail` when the browser or the client asks for it (Accept-Language: de), English when it does
not; the API's `error` codes the same in both. A reviewer's refusals stay in the console's English."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import time_machine
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone, translation
from rest_framework.test import APIClient

from dsar import services
from dsar.errors import Conflict, InvalidInput
from dsar.models import Request

from ..factories import request_make

CODE, TOKEN = "12345678", "a-bearer-token-for-the-tests"
GERMAN = {"HTTP_ACCEPT_LANGUAGE": "de"}
ENGLISH = {"HTTP_ACCEPT_LANGUAGE": "en"}


# --- The portal's code page -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_code_page_refuses_a_wrong_code_in_german(client):
    request = request_make(code=CODE)
    page = client.post(reverse("portal:request-verify", args=[request.pk]), {"code": "00000000"}, **GERMAN).content.decode()
    assert "Dieser Code ist nicht richtig. Sie haben noch 4 Versuche." in page
    assert "That code is not right" not in page


@pytest.mark.django_db
def test_the_code_page_says_in_german_that_a_code_expired_or_a_request_lapsed(client):
    expired = request_make(code=CODE)
    Request.objects.filter(pk=expired.pk).update(code_expires_at=expired.created_at)
    page = client.post(reverse("portal:request-verify", args=[expired.pk]), {"code": CODE}, **GERMAN).content.decode()
    assert "Dieser Code ist abgelaufen. Fordern Sie einen neuen an." in page

    lapsed = request_make(code=CODE, email="lapsed@example.com")
    Request.objects.filter(pk=lapsed.pk).update(created_at=timezone.now() - dt.timedelta(days=8))
    page = client.post(reverse("portal:request-verify", args=[lapsed.pk]), {"code": CODE}, **GERMAN).content.decode()
    assert ("Diese Anfrage ist verfallen, weil sie nicht innerhalb von 7 Tagen bestätigt wurde. Stellen Sie eine neue Anfrage."
            in page)
    page = client.post(reverse("portal:request-verify", args=[lapsed.pk]), {"code": CODE}).content.decode()
    assert "This request lapsed: it was not confirmed within 7 days. Make a new request." in page


@pytest.mark.django_db
def test_a_new_code_asked_for_too_soon_is_refused_in_german(client, settings):
    settings.DSAR_CODE_RESEND_SECONDS = 60
    with time_machine.travel(dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.UTC), tick=False):
        request = request_make(code_issued=True)
        page = client.post(reverse("portal:request-resend", args=[request.pk]), **GERMAN).content.decode()
    assert "Wir haben Ihnen gerade erst einen Code geschickt. Sie können in 60 Sekunden einen weiteren anfordern." in page


# --- The subject API: German detail, the same error code ------------------------------------------------------


def _awaiting_code() -> Request:
    return request_make(code=CODE)


def _processing() -> Request:
    return request_make(status="processing", email="busy@example.com", token=TOKEN)


def _under_review() -> Request:
    return request_make(status="pending_review", email="review@example.com", token=TOKEN)


def _unknown() -> Request:
    return Request(pk=uuid.uuid4())


def _someone_elses() -> Request:
    """A request whose bearer token is not the one the client holds."""
    return request_make(status="processing", email="other@example.com", token="someone-elses-token")


# (a request to ask about, method, path, body, status, error code, German detail, English detail)
REFUSALS = [
    (_awaiting_code, "post", "/api/v1/requests/{id}/verify", {"code": "00000000"}, 400, "invalid_code",
     "Dieser Code ist nicht richtig. Sie haben noch 4 Versuche.", "That code is not right. 4 attempts left."),
    (_awaiting_code, "post", "/api/v1/requests/{id}/verify", {"code": "12ab"}, 400, "invalid",
     {"code": ["Ein Code besteht aus 6 bis 8 Ziffern."]}, {"code": ["A code is 6 to 8 digits."]}),
    (_unknown, "get", "/api/v1/requests/{id}", None, 404, "not_found", "Diese Anfrage gibt es nicht.", "No such request."),
    (_someone_elses, "get", "/api/v1/requests/{id}", None, 404, "not_found", "Diese Anfrage gibt es nicht.", "No such request."),
    (_processing, "post", "/api/v1/requests/{id}/cancel", None, 409, "illegal_transition",
     "Diese Anfrage kann nicht mehr zurückgezogen werden (Status: in Bearbeitung).",
     "This request is processing; it cannot be canceled."),
    (_under_review, "post", "/api/v1/requests/{id}/answer", {"answer": "Hier ist sie."}, 409, "not_awaiting_answer",
     "Für diese Anfrage wird keine Antwort erwartet.", "This request is not waiting for an answer."),
    (_unknown, "post", "/api/v1/requests", {"type": "deletion", "email": "period@example.com", "date_from": "2024-01-01"}, 400,
     "period_not_allowed",
     "Eine Löschanfrage umfasst alle angefragten Daten und lässt sich nicht auf einen Zeitraum beschränken.",
     "A deletion request covers all the data asked for: it cannot be limited to dates."),
    (_unknown, "get", "/api/v1/nothing-here", None, 404, "not_found", "Diese Ressource gibt es nicht.", "No such resource."),
    (_unknown, "post", "/api/v1/requests", {"type": "access", "email": "typo@example.com", "langauge": "de"}, 400, "invalid",
     {"langauge": ["Unbekanntes Feld."]}, {"langauge": ["Unknown field."]}),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("make", "method", "path", "body", "status", "error", "german", "english"), REFUSALS,
                         ids=[f"{refusal[5]}-{refusal[2]}" for refusal in REFUSALS])
def test_the_api_gives_its_refusals_detail_in_german_when_asked_and_in_english_otherwise(make, method, path, body, status, error,
                                                                                         german, english):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    answers = []
    for headers in (GERMAN, {}, ENGLISH):  # a request of its own each: a wrong code spends an attempt
        url = path.format(id=make().pk)
        sent = {"data": body, "format": "multipart" if url.endswith("/answer") else "json"} if body is not None else {}
        answers.append(getattr(api, method)(url, **sent, **headers))
    assert [(answer.status_code, answer.json()) for answer in answers] == [
        (status, {"error": error, "detail": german}), (status, {"error": error, "detail": english}),
        (status, {"error": error, "detail": english})]


@pytest.mark.django_db
def test_a_body_too_large_is_refused_in_the_language_the_client_asks_for_though_no_view_read_it(settings):
    settings.DSAR_MAX_BODY_BYTES = 1000
    api, body = APIClient(), {"type": "access", "email": "large@example.com", "pad": "x" * 2000}
    german = api.post("/api/v1/requests", body, format="json", **GERMAN)
    # Straight after a German answer on the same thread: the refusal chooses its own language.
    english = api.post("/api/v1/requests", body, format="json")
    assert (german.status_code, german.json()) == (
        413, {"error": "body_too_large", "detail": "Der übermittelte Inhalt darf höchstens 1000 Bytes groß sein."})
    assert (english.status_code, english.json()) == (
        413, {"error": "body_too_large", "detail": "The body may be at most 1000 bytes."})
    assert not Request.objects.exists()


@pytest.fixture
def one_code_attempt_an_hour(settings):
    settings.DSAR_RATE_LIMITS = {**settings.DSAR_RATE_LIMITS, "verify_ip": "1/h"}
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_too_many_code_attempts_are_refused_in_german_with_the_wait_in_german(one_code_attempt_an_hour):
    url = f"/api/v1/requests/{uuid.uuid4()}/verify"
    answers = []
    # 35 minutes before the hour's window ends.
    with time_machine.travel(dt.datetime(2026, 12, 7, 9, 25, tzinfo=dt.UTC), tick=False):
        for address, headers in (("198.51.100.31", GERMAN), ("198.51.100.32", {})):
            APIClient(REMOTE_ADDR=address).post(url, {"code": CODE}, format="json", **headers)  # counted: an unknown request
            answers.append(APIClient(REMOTE_ADDR=address).post(url, {"code": CODE}, format="json", **headers))
    assert [(answer.status_code, answer.json()) for answer in answers] == [
        (429, {"error": "throttled",
               "detail": "Zu viele Code-Versuche aus Ihrem Netzwerk. Versuchen Sie es in 35 Minuten erneut."}),
        (429, {"error": "throttled", "detail": "Too many code attempts from your network. Try again in 35 minutes."}),
    ]


# --- Staff read English -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_reviewers_refusals_stay_in_english_and_name_the_categories_in_english_whatever_the_language():
    child = request_make(status="pending_review", email="child@example.com")
    Request.objects.filter(pk=child.pk).update(minor_age=11, minor_age_source="accounts: users.birth_year")
    denied = request_make(status="denied", email="denied@example.com")
    with translation.override("de"):
        with pytest.raises(InvalidInput) as sensitive:
            services.request_approve(request_id=child.pk, actor="staff:rita", authority="subject")
        with pytest.raises(Conflict) as closed:
            services.request_approve(request_id=denied.pk, actor="staff:rita")
    assert (sensitive.value.code, sensitive.value.detail) == (
        "parent_or_guardian_required",
        "Only a parent or guardian may receive Voice recordings, Pictures, Location, Video recordings at our places and "
        "events of a child under 13: confirm a parent's or guardian's authority, or withhold them.")
    assert (closed.value.code, closed.value.detail) == ("illegal_transition", "This request is denied; it cannot be approved.")
