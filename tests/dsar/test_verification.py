"""dsar/verification.py: one-time codes derived from the request and the moment of issue, and
codes and tokens stored only as keyed hashes.

Expected values are known answers, worked out by hand outside the product from the derivation in
the module's docstring (HMAC-SHA256 under a key of SHA-256("<purpose>:<secret>")), under two
deployments' secrets: they pin that a code already emailed stays valid across a deployment of the
same secret."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid

import pytest

from dsar import verification
from dsar.models import Request

SECRET = "vector-secret-not-for-production"
REQUEST_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
ANOTHER_REQUEST_ID = uuid.UUID("00000000-0000-4000-8000-000000000002")
ISSUED = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

# The second deployment's known answers.
SECOND_SECRET = "expected-values-secret"
ISSUED_IN_MARCH = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
# code_hash("12345678") and token_hash("12345678") under SECOND_SECRET.
CODE_HASH = "b5bcb894819dbf83b5448f5d9efe2efcb5617df1b48c8786f31ec729e3a22c95"
TOKEN_HASH = "b9c72aa0d7dd0e975354c4f1d803b118bf01370245dd4da70ded14314e67f308"


@pytest.fixture(autouse=True)
def secret(settings):
    settings.SECRET_KEY = SECRET


@pytest.fixture
def second_secret(settings):
    settings.SECRET_KEY = SECOND_SECRET


def _request(issued: dt.datetime | None = ISSUED, request_id: uuid.UUID = REQUEST_ID) -> Request:
    return Request(pk=request_id, code_sent_at=issued)


# --- Codes ---------------------------------------------------------------------------------------------


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


def test_issuing_a_code_sets_its_moment_its_expiry_ten_minutes_on_and_stores_only_its_hash():
    request = _request(None)
    verification.code_issue(request, ISSUED)
    assert request.code_sent_at == ISSUED
    assert request.code_expires_at == dt.datetime(2026, 1, 2, 3, 14, 5, tzinfo=dt.UTC)
    assert request.code_hash == verification.code_hash("29325714")
    assert "29325714" not in request.code_hash


@pytest.mark.usefixtures("second_secret")
@pytest.mark.parametrize(("request_id", "at", "code"), [
    (REQUEST_ID, ISSUED_IN_MARCH, "34567781"),
    (REQUEST_ID, ISSUED_IN_MARCH + dt.timedelta(seconds=1), "39691954"),  # a new moment, a new code
    (REQUEST_ID, ISSUED_IN_MARCH + dt.timedelta(minutes=10), "06528397"),  # leading zeros are kept
    (ANOTHER_REQUEST_ID, ISSUED_IN_MARCH, "00637624"),  # another request, another code
])
def test_a_code_is_eight_digits_derived_from_the_request_and_the_moment_it_was_issued(request_id, at, code):
    assert verification.code_for(_request(at, request_id)) == code


@pytest.mark.usefixtures("second_secret")
def test_the_same_moment_written_in_another_zone_gives_the_same_code():
    paris = dt.timezone(dt.timedelta(hours=1))
    assert verification.code_for(_request(dt.datetime(2026, 3, 1, 10, 30, tzinfo=paris))) == "34567781"


@pytest.mark.usefixtures("second_secret")
def test_a_process_in_another_local_zone_derives_the_same_code(monkeypatch):
    # the web process issues a code and the mail worker derives it again: their clocks' zones may differ
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert verification.code_for(_request(ISSUED_IN_MARCH)) == "34567781"
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.usefixtures("second_secret")
def test_without_the_deployments_secret_the_code_cannot_be_derived(settings):
    settings.SECRET_KEY = "another deployment's secret"
    assert verification.code_for(_request(ISSUED_IN_MARCH)) != "34567781"


@pytest.mark.usefixtures("second_secret")
def test_issuing_a_code_records_its_moment_and_expiry_and_keeps_only_its_hash(settings):
    settings.DSAR_CODE_TTL_MINUTES = 20
    request = Request(id=REQUEST_ID)
    verification.code_issue(request, ISSUED_IN_MARCH)
    assert request.code_sent_at == ISSUED_IN_MARCH
    assert request.code_expires_at == dt.datetime(2026, 3, 1, 9, 50, tzinfo=dt.UTC)
    assert request.code_hash == "930f59a97b03046b0dd43e30af9df0aece9485911091d0275fbf4fe71e021bfe"
    assert verification.code_matches("34567781", request.code_hash)
    assert "34567781" not in {str(value) for value in vars(request).values()}


# --- Hashes --------------------------------------------------------------------------------------------


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


@pytest.mark.usefixtures("second_secret")
def test_codes_and_tokens_are_hashed_under_keys_of_their_own():
    assert verification.code_hash("12345678") == CODE_HASH
    assert verification.token_hash("12345678") == TOKEN_HASH


@pytest.mark.usefixtures("second_secret")
def test_a_code_matches_its_own_hash_only():
    assert verification.code_matches("12345678", CODE_HASH)
    assert not verification.code_matches("12345679", CODE_HASH)
    assert not verification.code_matches("", CODE_HASH)
    assert not verification.code_matches("12345678", TOKEN_HASH)  # a token's hash is no code's


def test_nothing_matches_a_hash_that_was_cleared():
    # a used or never-issued code leaves an empty hash behind
    assert not verification.code_matches("", "")
    assert not verification.code_matches("12345678", "")
    assert not verification.token_matches("", "")
    assert not verification.token_matches("12345678", "")


# --- Tokens --------------------------------------------------------------------------------------------


def test_a_new_token_comes_with_its_hash_and_matches_it_alone():
    token, stored = verification.token_new()
    assert len(token) == 43  # 32 random bytes, URL-safe base64
    assert verification.token_matches(token, stored) is True
    assert verification.token_matches(token[:-1], stored) is False
    assert verification.token_matches(token, "") is False
    assert verification.token_new()[0] != token


def test_a_new_token_is_43_url_safe_characters_and_is_stored_only_as_its_hash():
    token, stored = verification.token_new()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # 32 random bytes in unpadded base64url
    assert re.fullmatch(r"[0-9a-f]{64}", stored) and token not in stored
    assert verification.token_matches(token, stored)


def test_each_new_token_is_another():
    (first, first_stored), (second, second_stored) = verification.token_new(), verification.token_new()
    assert first != second and first_stored != second_stored


@pytest.mark.usefixtures("second_secret")
def test_a_token_matches_its_own_hash_only():
    assert verification.token_matches("12345678", TOKEN_HASH)
    assert not verification.token_matches("12345679", TOKEN_HASH)
    assert not verification.token_matches("12345678", CODE_HASH)  # a code's hash is no token's
