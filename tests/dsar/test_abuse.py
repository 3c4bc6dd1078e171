"""Threats at the front door: brute-forcing codes, flooding the form, email-bombing a stranger,
and what a caller sees when a backing service is down."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from dsar.config import RateLimits
from dsar.models import Request

from ..conftest import ROOT, code_from

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def strict(settings):
    settings.DSAR_RATE_LIMITS = {"file_ip": "4/m", "file_email": "2/h", "file_email_ip": "2/h", "verify_ip": "6/10m"}
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def shipped(settings):
    """The limits a deployment gets when it sets none."""
    settings.DSAR_RATE_LIMITS = RateLimits().model_dump()
    cache.clear()
    yield
    cache.clear()


def _file(api, email, ip="198.51.100.1"):
    return api.post("/api/v1/requests", {"type": "access", "email": email}, format="json", REMOTE_ADDR=ip)


def _verify(api, request_id, code, ip):
    return api.post(f"/api/v1/requests/{request_id}/verify", {"code": code}, format="json", REMOTE_ADDR=ip)


def test_a_strangers_filings_and_wrong_codes_for_an_address_do_not_refuse_its_owners_code(api, mailoutbox, shipped, unique_email):
    victim = unique_email("victim")
    # A stranger files four requests for the victim's address, from four networks, and spends every attempt on each.
    ids = [_file(api, victim, ip=f"203.0.113.{n}").json()["id"] for n in range(1, 5)]
    guesses = [_verify(api, request_id, "00000000", ip=f"203.0.113.{n}").status_code for n, request_id in enumerate(ids, 1) for _ in range(5)]
    assert guesses == [400, 400, 400, 400, 429] * 4  # each of the stranger's requests locks on its fifth wrong code
    # The person files from their own network and enters the code we emailed them.
    mine = _file(api, victim, ip="198.51.100.200")
    assert mine.status_code == 201
    answer = _verify(api, mine.json()["id"], code_from(mailoutbox, victim), ip="198.51.100.200")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["status"] == "pending_review"


def test_in_the_portal_a_strangers_wrong_codes_for_an_address_do_not_refuse_its_owners_code(api, client, mailoutbox, shipped, unique_email):
    victim = unique_email("victim")
    client.post(reverse("portal:request-new"), {"type": "access", "email": victim}, REMOTE_ADDR="198.51.100.200")
    mine, code = Request.objects.get(email=victim), code_from(mailoutbox, victim)
    stranger = Client()
    for n in range(1, 5):
        request_id = _file(api, victim, ip=f"203.0.113.{n}").json()["id"]
        for _ in range(5):
            stranger.post(reverse("portal:request-verify", args=[request_id]), {"code": "00000000"}, REMOTE_ADDR=f"203.0.113.{n}")
    assert sorted(Request.objects.filter(email=victim).values_list("code_attempts", flat=True)) == [0, 5, 5, 5, 5]
    answer = client.post(reverse("portal:request-verify", args=[mine.id]), {"code": code}, REMOTE_ADDR="198.51.100.200")
    assert answer.status_code == 302 and answer["Location"] == reverse("portal:request-status", args=[mine.id])


def test_a_stranger_filing_for_an_address_from_one_network_does_not_stop_its_owner_filing(api, mailoutbox, shipped, unique_email):
    victim = unique_email("victim")
    answers = [_file(api, victim, ip="203.0.113.7") for _ in range(10)]
    assert [a.status_code for a in answers] == [201, 201] + [429] * 8
    assert answers[-1].json() == {"error": "throttled", "detail": answers[-1].json()["detail"]}
    assert answers[-1].json()["detail"].startswith("Too many requests for this email address from your network.")
    mine = _file(api, victim, ip="198.51.100.200")
    assert mine.status_code == 201
    assert _verify(api, mine.json()["id"], code_from(mailoutbox, victim), ip="198.51.100.200").status_code == 200
    assert [m.subject for m in mailoutbox if victim in m.to] == ["Example Company: Your verification code"] * 3 + ["Example Company: We have received your request"]


def test_email_bombing_a_stranger_through_the_form_is_bounded(api, mailoutbox, strict, unique_email):
    victim = unique_email("victim")
    answers = [_file(api, victim, ip=f"198.51.100.{n}") for n in range(1, 6)]
    assert [a.status_code for a in answers] == [201, 201, 429, 429, 429]
    assert answers[-1].json()["error"] == "throttled"
    assert len([m for m in mailoutbox if victim in m.to]) == 2
    assert Request.objects.filter(email=victim).count() == 2


def test_filing_is_throttled_per_client_address(api, strict, unique_email):
    answers = [_file(api, unique_email("flood")) for _ in range(6)]
    assert [a.status_code for a in answers] == [201] * 4 + [429] * 2
    assert _file(api, unique_email("elsewhere"), ip="203.0.113.9").status_code == 201


def test_code_guessing_is_throttled_per_address_across_requests(api, mailoutbox, strict, unique_email):
    ids = [_file(api, unique_email("guess"), ip=f"192.0.2.{n}").json()["id"] for n in range(1, 4)]
    statuses = [_verify(api, request_id, "00000000", ip="203.0.113.50").status_code for request_id in ids for _ in range(3)]
    assert statuses[:6] == [400] * 6 and set(statuses[6:]) == {429}


def test_code_guessing_for_one_email_is_bounded_by_its_filings_and_each_requests_lock(api, mailoutbox, strict, unique_email):
    target = unique_email("target")
    filed = [_file(api, target, ip=f"192.0.2.{n}") for n in range(1, 5)]
    assert [a.status_code for a in filed] == [201, 201, 429, 429]
    # Guesses from a fresh network each, so that no network's attempt limit stops them.
    answers = [_verify(api, a.json()["id"], "00000000", ip=f"203.0.113.{n}") for a in filed[:2] for n in range(1, 9)]
    assert [a.status_code for a in answers] == ([400] * 4 + [429] * 4) * 2
    assert {a.json()["error"] for a in answers if a.status_code == 429} == {"locked"}
    assert sorted(Request.objects.filter(email=target).values_list("code_attempts", "status")) == [(5, "unverified"), (5, "unverified")]


def test_a_broker_outage_answers_503_and_creates_nothing(api, settings, mailoutbox):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"socket_connect_timeout": 0.5}}}
    answer = _file(api, "outage@example.com")
    assert answer.status_code == 503
    assert answer.json()["error"] == "unavailable" and answer["Retry-After"] == "30"
    assert Request.objects.count() == 0 and mailoutbox == []


def test_an_outage_logs_the_address_asked_for_on_one_line_whatever_it_holds(rf, caplog):
    import redis

    from dsar.middleware import ServiceUnavailableMiddleware

    request = rf.get("/api/v1/requests/x%0A2026-01-01 INFO forged line")
    answer = ServiceUnavailableMiddleware(lambda request: None).process_exception(request, redis.exceptions.ConnectionError("refused"))
    assert answer.status_code == 503
    [line] = [record.getMessage() for record in caplog.records if "service unavailable" in record.getMessage()]
    assert line == "service unavailable while answering GET /api/v1/requests/x\\n2026-01-01 INFO forged line: refused"


def test_django_deploy_checks_pass_behind_tls():
    deployment = {"DJANGO_SETTINGS_MODULE": "dsar.settings", "DSAR_PUBLIC_URL": "https://privacy.example.com",
                  "DSAR_SECRET_KEY": "k" * 64 + "-deploy-check-Zq9!x", "DSAR_ALLOWED_HOSTS": "privacy.example.com"}
    # The browser tests' process allows async-unsafe calls; a deployment never does.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"} | deployment
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
