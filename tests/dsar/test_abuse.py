"""Threats at the front door: brute-forcing codes, flooding the form, email-bombing a stranger,
and what a caller sees when a backing service is down."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.cache import cache

from dsar.models import Request

from ..conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def strict(settings):
    settings.DSAR_RATE_LIMITS = {"file_ip": "4/m", "file_email": "2/h", "verify_ip": "6/10m", "verify_email": "3/h"}
    cache.clear()
    yield
    cache.clear()


def _file(api, email, ip="198.51.100.1"):
    return api.post("/api/v1/requests", {"type": "access", "email": email}, format="json", REMOTE_ADDR=ip)


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
    statuses = [
        api.post(f"/api/v1/requests/{request_id}/verify", {"code": "00000000"}, format="json", REMOTE_ADDR="203.0.113.50").status_code
        for request_id in ids for _ in range(3)
    ]
    assert statuses[:6] == [400] * 6 and set(statuses[6:]) == {429}


def test_code_guessing_is_throttled_per_email_across_addresses(api, mailoutbox, strict, unique_email):
    email = unique_email("target")
    request_id = _file(api, email).json()["id"]
    statuses = [
        api.post(f"/api/v1/requests/{request_id}/verify", {"code": "00000000"}, format="json", REMOTE_ADDR=f"203.0.113.{n}").status_code
        for n in range(1, 6)
    ]
    assert statuses == [400, 400, 400, 429, 429]
    assert Request.objects.get(pk=request_id).code_attempts == 3


def test_a_broker_outage_answers_503_and_creates_nothing(api, settings, mailoutbox):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"socket_connect_timeout": 0.5}}}
    answer = _file(api, "outage@example.com")
    assert answer.status_code == 503
    assert answer.json()["error"] == "unavailable" and answer["Retry-After"] == "30"
    assert Request.objects.count() == 0 and mailoutbox == []


def test_django_deploy_checks_pass_behind_tls():
    deployment = {"DJANGO_SETTINGS_MODULE": "dsar.settings", "DSAR_PUBLIC_URL": "https://privacy.example.com",
                  "DSAR_SECRET_KEY": "k" * 64 + "-deploy-check-Zq9!x", "DSAR_ALLOWED_HOSTS": "privacy.example.com"}
    # The browser tests' process allows async-unsafe calls; a deployment never does.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"} | deployment
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
