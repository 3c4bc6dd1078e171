"""The subject's API: filing without enumeration, the code, the token, and bad input."""

from __future__ import annotations

import datetime as dt
import email
import json
import socket

import pytest
from django.utils import timezone

from dsar.models import AuditEntry, OutgoingEmail, Request

from ..conftest import code_from
from ..factories import request_make
from ..support.flows import file_request
from ..support.probe import probe_calls

pytestmark = pytest.mark.django_db(transaction=True)


def _create(api, email, type="access"):
    return api.post("/api/v1/requests", {"type": type, "email": email}, format="json")


def test_filing_answers_the_same_for_known_and_unknown_emails(api, mailoutbox, estate):
    known, unknown = _create(api, "alice@example.com"), _create(api, "nobody-here@example.com")
    assert known.status_code == unknown.status_code == 201
    assert set(known.json()) == set(unknown.json()) == {"id", "type", "status", "created_at", "due_at"}
    assert known.json()["status"] == unknown.json()["status"] == "unverified"
    assert [m.to for m in mailoutbox] == [["alice@example.com"], ["nobody-here@example.com"]]
    assert {m.subject for m in mailoutbox} == {"Example Company: Your verification code"}


def test_a_filing_answers_with_the_request_as_stored(api, mailoutbox):
    body = _create(api, "answer@example.com").json()
    stored = Request.objects.get(pk=body["id"])
    iso = lambda at: at.isoformat().replace("+00:00", "Z")
    assert body == {"id": str(stored.id), "type": "access", "status": "unverified",
                    "created_at": iso(stored.created_at), "due_at": iso(stored.due_at)}


def test_the_code_email_is_text_with_an_html_alternative_both_holding_the_code(api, mailoutbox):
    _create(api, "parts@example.com")
    parsed = email.message_from_bytes(mailoutbox[0].message().as_bytes())
    assert parsed.get_content_type() == "multipart/alternative"
    parts = parsed.get_payload()
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    code = code_from(mailoutbox, "parts@example.com")
    assert all(code in part.get_payload(decode=True).decode() for part in parts)
    assert all(parsed.get_boundary() not in part.get_payload(decode=True).decode() for part in parts)


@pytest.mark.timeout(60)
def test_a_mail_relay_that_never_answers_gives_up_and_the_filing_is_answered_with_its_email_kept(api, settings):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never says a word
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", silent.getsockname()[1], 1
        answer = _create(api, "silent.relay@example.com")
    assert answer.status_code == 201
    kept = OutgoingEmail.objects.get(request_id=answer.json()["id"])
    assert (kept.template, kept.attempts) == ("code", 1) and "timed out" in kept.last_error
    assert kept.not_before > kept.created_at


@pytest.mark.parametrize("accept", ["text/html", "application/zip", "K#>/J:k`", "application/json"])
def test_filing_answers_json_whatever_the_accept_header_asks_for(api, mailoutbox, accept):
    answer = api.post("/api/v1/requests", {"type": "access", "email": "accept@example.com"}, format="json", HTTP_ACCEPT=accept)
    assert answer.status_code == 201
    assert answer["Content-Type"] == "application/json"
    assert Request.objects.filter(pk=answer.json()["id"]).exists()


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "text/html", "application/*"])
@pytest.mark.parametrize("query", ["", "format=json", "format=yaml", "page=2"])
def test_negotiation_answers_as_drfs_own_for_every_accept_and_format(accept, query):
    from django.http import Http404
    from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
    from rest_framework.exceptions import NotAcceptable
    from rest_framework.negotiation import DefaultContentNegotiation
    from rest_framework.renderers import JSONRenderer
    from rest_framework.request import Request as ApiRequest
    from rest_framework.test import APIRequestFactory

    from dsar.api.common import AnswerDespiteAccept

    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    for renderers in ([JSONRenderer()], [OpenApiYamlRenderer(), OpenApiJsonRenderer()]):
        request = ApiRequest(APIRequestFactory().get(f"/api/v1/anything?{query}", **headers))

        def negotiated(negotiation, request=request, renderers=renderers):
            try:
                return negotiation.select_renderer(request, renderers)
            except (NotAcceptable, Http404) as refusal:
                return type(refusal)

        expected, chosen = negotiated(DefaultContentNegotiation()), negotiated(AnswerDespiteAccept())
        # DRF's 406 is answered in the first format (RFC 9110 lets a server disregard Accept); all else is DRF's.
        assert chosen == ((renderers[0], renderers[0].media_type) if expected is NotAcceptable else expected)


def test_a_format_in_the_query_still_chooses_and_an_unknown_one_is_not_found(api):
    assert api.get("/api/schema/?format=json")["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert api.get("/api/schema/?format=yaml")["Content-Type"].startswith("application/vnd.oai.openapi;")
    assert api.get("/api/schema/?format=xml").status_code == 404


def test_api_answers_let_nothing_load_while_pages_keep_the_site_policy(api, client, mailoutbox):
    answer = _create(api, "policy@example.com")
    assert answer["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    page = client.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]


def test_the_code_is_stored_only_as_a_hash(api, mailoutbox):
    request_id = _create(api, "hash@example.com").json()["id"]
    code = code_from(mailoutbox, "hash@example.com")
    row = Request.objects.filter(pk=request_id).values().get()
    assert code not in json.dumps(row, default=str)
    assert len(row["code_hash"]) == 64


def test_five_wrong_codes_lock_the_request_even_against_the_right_code(api, mailoutbox):
    request_id = _create(api, "lock@example.com").json()["id"]
    right = code_from(mailoutbox, "lock@example.com")
    wrong = "00000000" if right != "00000000" else "11111111"
    answers = [api.post(f"/api/v1/requests/{request_id}/verify", {"code": wrong}, format="json") for _ in range(5)]
    assert [a.status_code for a in answers] == [400, 400, 400, 400, 429]
    assert answers[0].json()["error"] == "invalid_code"
    locked = api.post(f"/api/v1/requests/{request_id}/verify", {"code": right}, format="json")
    assert locked.status_code == 429 and locked.json()["error"] == "locked"
    assert Request.objects.get(pk=request_id).status == "unverified"
    assert AuditEntry.objects.filter(request_id=request_id, action="code_rejected").count() == 5


def test_an_expired_code_is_refused(api, mailoutbox):
    request_id = _create(api, "late@example.com").json()["id"]
    Request.objects.filter(pk=request_id).update(code_expires_at=timezone.now() - dt.timedelta(seconds=1))
    answer = api.post(f"/api/v1/requests/{request_id}/verify", {"code": code_from(mailoutbox, "late@example.com")}, format="json")
    assert answer.status_code == 400 and answer.json()["error"] == "code_expired"


def test_a_code_expires_ten_minutes_after_it_is_sent_as_its_email_says(api, mailoutbox):
    created = _create(api, "ttl@example.com").json()
    request = Request.objects.get(pk=created["id"])
    assert request.code_expires_at - request.code_sent_at == dt.timedelta(minutes=10)
    assert "The code expires in 10 minutes." in mailoutbox[0].body


def test_a_token_reads_only_its_own_request(api, mailoutbox, reviewer):
    first, first_token = file_request(api, mailoutbox, type="access", email="one@example.com")
    second, second_token = file_request(api, mailoutbox, type="access", email="two@example.com")
    assert api.get(f"/api/v1/requests/{first}", HTTP_AUTHORIZATION=f"Bearer {first_token}").status_code == 200
    for token in (second_token, "", "forged-token", first_token + "x"):
        answer = api.get(f"/api/v1/requests/{first}", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert answer.status_code == 404 and answer.json()["error"] == "not_found"
    assert api.get(f"/api/v1/requests/{first}").status_code == 404
    assert api.post(f"/api/v1/requests/{second}/cancel", HTTP_AUTHORIZATION=f"Bearer {first_token}").status_code == 404
    assert Request.objects.get(pk=second).status == "pending_review"


def test_the_subject_can_cancel_before_processing_but_not_after(api, mailoutbox, reviewer):
    request_id, token = file_request(api, mailoutbox, type="access", email="cancel@example.com")
    answer = api.post(f"/api/v1/requests/{request_id}/cancel", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 200 and answer.json()["status"] == "canceled"
    processing = request_make(status="processing", token="tok-processing")
    refused = api.post(f"/api/v1/requests/{processing.pk}/cancel", HTTP_AUTHORIZATION="Bearer tok-processing")
    assert refused.status_code == 409


def test_an_org_managed_account_is_referred_right_after_verification(api, mailoutbox, estate, organisation_systems_only):
    request_id, token = file_request(api, mailoutbox, type="access", email="carol@school.example.org", categories=["name_contact"])
    view = api.get(f"/api/v1/requests/{request_id}", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert view["status"] == "referred"
    assert view["result"] == {"referred_to": "Northside School District", "contact": "privacy@northside-schools.example.org",
                              "systems": [{"system": "accounts", "categories": ["name_contact"]}]}
    referred_mail = [m for m in mailoutbox if "organisation" in m.subject]
    assert referred_mail and "Northside School District at privacy@northside-schools.example.org" in referred_mail[-1].body
    assert not Request.objects.get(pk=request_id).tasks.exists()
    assert probe_calls("carol@school.example.org") == 0  # no connector gathered or erased anything


BAD_BODIES = [
    ("malformed JSON", b'{"type": "access", "email": ', 400),
    ("not an object", b"[]", 400),
    ("unknown field", b'{"type": "access", "email": "x@example.com", "admin": true}', 400),
    ("unknown type", b'{"type": "rectify", "email": "x@example.com"}', 400),
    ("unknown category", b'{"type": "access", "email": "x@example.com", "categories": ["dna"]}', 400),
    ("wrong type of field", b'{"type": "access", "email": ["x@example.com"]}', 400),
    ("invalid email", b'{"type": "access", "email": "not an email"}', 400),
    ("missing email", b'{"type": "access"}', 400),
    ("over 64 KiB", json.dumps({"type": "access", "email": "x@example.com", "pad": "x" * 70000}).encode(), 413),
    ("nested deeper than the parser recurses", b'{"type": "access", "email": "x@example.com", "pad": ' + b"[" * 30000 + b"]" * 30000 + b"}",
     400),
]


@pytest.mark.parametrize(("why", "body", "status"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_input_gets_a_json_4xx_and_changes_nothing(api, mailoutbox, why, body, status):
    answer = api.generic("POST", "/api/v1/requests", body, content_type="application/json")
    assert answer.status_code == status
    assert set(answer.json()) == {"error", "detail"}
    assert Request.objects.count() == 0
    assert mailoutbox == []


def test_a_verify_body_that_is_not_a_code_is_refused_without_counting_an_attempt(api, mailoutbox):
    request_id = _create(api, "shape@example.com").json()["id"]
    for body in ({"code": "12ab"}, {"code": 12345678}, {}, {"code": "1" * 20}):
        assert api.post(f"/api/v1/requests/{request_id}/verify", body, format="json").status_code == 400
    assert Request.objects.get(pk=request_id).code_attempts == 0


def test_a_host_the_server_does_not_serve_is_refused_in_the_apis_shape_and_every_operation_says_it_may_be(api, client):
    refused = api.post("/api/v1/requests", {"type": "access", "email": "host@example.com"}, format="json",
                       HTTP_HOST="attacker.invalid")
    assert (refused.status_code, refused.json()) == (400, {"error": "bad_request", "detail": "The request is malformed."})
    assert not Request.objects.filter(email="host@example.com").exists()
    page = client.get("/", HTTP_HOST="attacker.invalid")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")
    document = api.get("/api/schema/?format=json").json()
    statuses = {(path, method): set(operation["responses"]) for path, operations in document["paths"].items()
                for method, operation in operations.items()}
    assert len(statuses) == 19 and all("400" in answered for answered in statuses.values()), statuses
