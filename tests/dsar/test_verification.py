"""dsar/verification.py: one-time codes derived from the request and the moment of issue, and
codes and tokens stored only as keyed hashes. Expected values are known answers, worked out
outside the product from the documented derivation."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from dsar import verification
from dsar.models import Request

SECRET = "vector-secret-not-for-production"
REQUEST_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
ISSUED = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def secret(settings):
    settings.SECRET_KEY = SECRET


def _request(issued: dt.datetime | None = ISSUED) -> Request:
    return Request(pk=REQUEST_ID, code_sent_at=issued)


def test_a_code_is_eight_digits_derived_from_the_request_and_its_moment_of_issue():
    assert verification.code_for(_request()) == "29325714"


def test_a_code_issued_a_second_later_is_another_code():
    assert verification.code_for(_request(ISSUED + dt.timedelta(seconds=1))) == "41745111"


def test_the_moment_counts_whatever_time_zone_it_is_given_in():
    in_paris = ISSUED.astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert verification.code_for(_request(in_paris)) == "29325714"


def test_the_code_depends_on_the_deployments_secret(settings):
    settings.SECRET_KEY = "another-secret"
    assert verification.code_for(_request()) != "29325714"


def test_issuing_a_code_sets_its_moment_its_expiry_thirty_minutes_on_and_stores_only_its_hash():
    request = _request(None)
    verification.code_issue(request, ISSUED)
    assert request.code_sent_at == ISSUED
    assert request.code_expires_at == dt.datetime(2026, 1, 2, 3, 34, 5, tzinfo=dt.UTC)
    assert request.code_hash == verification.code_hash("29325714")
    assert "29325714" not in request.code_hash


def test_a_code_is_stored_as_a_keyed_hash():
    assert verification.code_hash("12345678") == "90d50743e478da48088ba98507bce355ef61b40601cacbd9fb299c60c18cd24f"


@pytest.mark.parametrize(("code", "stored", "matches"), [
    ("12345678", "90d50743e478da48088ba98507bce355ef61b40601cacbd9fb299c60c18cd24f", True),
    ("12345679", "90d50743e478da48088ba98507bce355ef61b40601cacbd9fb299c60c18cd24f", False),
    ("12345678", "", False),  # a request with no code accepts none
])
def test_a_code_matches_only_its_own_hash(code, stored, matches):
    assert verification.code_matches(code, stored) is matches


def test_a_token_is_stored_as_a_keyed_hash_of_another_purpose_than_codes():
    assert verification.token_hash("a-token") == "05df638adf30598d9a71988b8a650b5ea31b9fcd207afdefba6954ce431b56fc"
    assert verification.token_hash("12345678") != verification.code_hash("12345678")


def test_a_new_token_comes_with_its_hash_and_matches_it_alone():
    token, stored = verification.token_new()
    assert len(token) == 43  # 32 random bytes, URL-safe base64
    assert verification.token_matches(token, stored) is True
    assert verification.token_matches(token[:-1], stored) is False
    assert verification.token_matches(token, "") is False
    assert verification.token_new()[0] != token
