"""dsar/verification.py: the one-time codes that prove a person owns an address, and the bearer tokens
they unlock.

The expected codes and hashes were derived by hand, once, from the definitions in the module's
docstring (HMAC-SHA256 under a key of SHA-256("<purpose>:<secret>")) for the secret below; they pin
that a code already emailed stays valid across a deployment of the same secret.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid

import pytest

from dsar.models import Request
from dsar.verification import code_for, code_hash, code_issue, code_matches, token_hash, token_matches, token_new

SECRET = "expected-values-secret"
FIRST = uuid.UUID("00000000-0000-4000-8000-000000000001")
SECOND = uuid.UUID("00000000-0000-4000-8000-000000000002")
ISSUED = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
# code_hash("12345678") and token_hash("12345678") under SECRET.
CODE_HASH = "b5bcb894819dbf83b5448f5d9efe2efcb5617df1b48c8786f31ec729e3a22c95"
TOKEN_HASH = "b9c72aa0d7dd0e975354c4f1d803b118bf01370245dd4da70ded14314e67f308"


@pytest.fixture(autouse=True)
def secret(settings):
    settings.SECRET_KEY = SECRET


def issued(request_id: uuid.UUID, at: dt.datetime) -> Request:
    return Request(id=request_id, code_sent_at=at)


@pytest.mark.parametrize(("request_id", "at", "code"), [
    (FIRST, ISSUED, "34567781"),
    (FIRST, ISSUED + dt.timedelta(seconds=1), "39691954"),  # a new moment, a new code
    (FIRST, ISSUED + dt.timedelta(minutes=10), "06528397"),  # leading zeros are kept
    (SECOND, ISSUED, "00637624"),  # another request, another code
])
def test_a_code_is_eight_digits_derived_from_the_request_and_the_moment_it_was_issued(request_id, at, code):
    assert code_for(issued(request_id, at)) == code


def test_the_same_moment_written_in_another_zone_gives_the_same_code():
    paris = dt.timezone(dt.timedelta(hours=1))
    assert code_for(issued(FIRST, dt.datetime(2026, 3, 1, 10, 30, tzinfo=paris))) == "34567781"


def test_a_process_in_another_local_zone_derives_the_same_code(monkeypatch):
    # the web process issues a code and the mail worker derives it again: their clocks' zones may differ
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert code_for(issued(FIRST, ISSUED)) == "34567781"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_without_the_deployments_secret_the_code_cannot_be_derived(settings):
    settings.SECRET_KEY = "another deployment's secret"
    assert code_for(issued(FIRST, ISSUED)) != "34567781"


def test_issuing_a_code_records_its_moment_and_expiry_and_keeps_only_its_hash(settings):
    settings.DSAR_CODE_TTL_MINUTES = 20
    request = Request(id=FIRST)
    code_issue(request, ISSUED)
    assert request.code_sent_at == ISSUED
    assert request.code_expires_at == dt.datetime(2026, 3, 1, 9, 50, tzinfo=dt.UTC)
    assert request.code_hash == "930f59a97b03046b0dd43e30af9df0aece9485911091d0275fbf4fe71e021bfe"
    assert code_matches("34567781", request.code_hash)
    assert "34567781" not in {str(value) for value in vars(request).values()}


def test_codes_and_tokens_are_hashed_under_keys_of_their_own():
    assert code_hash("12345678") == CODE_HASH
    assert token_hash("12345678") == TOKEN_HASH


def test_a_code_matches_its_own_hash_only():
    assert code_matches("12345678", CODE_HASH)
    assert not code_matches("12345679", CODE_HASH)
    assert not code_matches("", CODE_HASH)
    assert not code_matches("12345678", TOKEN_HASH)  # a token's hash is no code's


def test_nothing_matches_a_hash_that_was_cleared():
    # a used or never-issued code leaves an empty hash behind
    assert not code_matches("", "")
    assert not code_matches("12345678", "")
    assert not token_matches("", "")
    assert not token_matches("12345678", "")


def test_a_new_token_is_43_url_safe_characters_and_is_stored_only_as_its_hash():
    token, stored = token_new()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # 32 random bytes in unpadded base64url
    assert re.fullmatch(r"[0-9a-f]{64}", stored) and token not in stored
    assert token_matches(token, stored)


def test_each_new_token_is_another():
    (first, first_stored), (second, second_stored) = token_new(), token_new()
    assert first != second and first_stored != second_stored


def test_a_token_matches_its_own_hash_only():
    assert token_matches("12345678", TOKEN_HASH)
    assert not token_matches("12345679", TOKEN_HASH)
    assert not token_matches("12345678", CODE_HASH)  # a code's hash is no token's
