"""dsar/throttle.py: the rate limits that are security controls, counted in the real Redis."""

from __future__ import annotations

import itertools

import pytest
from django.core.cache import cache
from django.test import RequestFactory

from dsar.cache import cache_redis
from dsar.throttle import Throttled, client_address, mailbox_counted, network_counted, rate_parse, throttle_filing, throttle_verify

from ..support.waiting import wait_for


@pytest.fixture
def limits(settings):
    settings.DSAR_RATE_LIMITS = {"file_ip": "3/m", "file_email": "2/h", "file_email_ip": "1/h", "verify_ip": "4/10m"}
    settings.DSAR_TRUSTED_PROXIES = []
    cache.clear()
    yield settings.DSAR_RATE_LIMITS
    cache.clear()


def _from(address: str, forwarded: str | None = None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    return RequestFactory().post("/api/v1/requests", REMOTE_ADDR=address, **extra)


@pytest.mark.parametrize(("rate", "parsed"), [
    ("30/m", (30, 60)), ("60/10m", (60, 600)), ("5/h", (5, 3600)), ("1/d", (1, 86400)), ("2/s", (2, 1)), ("7/2h", (7, 7200)),
])
def test_a_rate_is_calls_per_window_in_seconds(rate, parsed):
    assert rate_parse(rate) == parsed


@pytest.mark.parametrize("rate", ["often", "30/min", "30", "/m", "-1/m", "30/m "])
def test_a_rate_of_another_form_is_refused(rate):
    with pytest.raises(ValueError, match="calls/window"):
        rate_parse(rate)


def test_the_client_is_the_connecting_address_unless_a_trusted_proxy_forwarded_the_call(settings):
    settings.DSAR_TRUSTED_PROXIES = ["10.0.0.2"]
    assert client_address(_from("198.51.100.7")) == "198.51.100.7"
    assert client_address(_from("198.51.100.7", forwarded="203.0.113.9")) == "198.51.100.7"  # anyone can write the header
    assert client_address(_from("10.0.0.2", forwarded="203.0.113.9")) == "203.0.113.9"
    # The proxy appends the address it saw; what the client wrote before it is not believed.
    assert client_address(_from("10.0.0.2", forwarded="192.0.2.1, 203.0.113.9")) == "203.0.113.9"


def test_filing_is_limited_per_client_address(limits):
    for number in range(3):
        throttle_filing(_from("198.51.100.1"), f"flood.{number}@example.com")
    with pytest.raises(Throttled, match="Too many requests from your network") as refused:
        throttle_filing(_from("198.51.100.1"), "flood.3@example.com")
    assert (refused.value.status, refused.value.code) == (429, "throttled")
    throttle_filing(_from("198.51.100.2"), "flood.4@example.com")  # another address has its own count


def test_filing_is_limited_per_email_across_addresses(limits):
    throttle_filing(_from("198.51.100.1"), "victim@example.com")
    throttle_filing(_from("198.51.100.2"), "victim@example.com")
    with pytest.raises(Throttled, match="Too many requests for this email address"):
        throttle_filing(_from("198.51.100.3"), "victim@example.com")


def test_filing_for_one_email_from_one_network_is_limited_below_the_emails_own_limit(limits):
    throttle_filing(_from("198.51.100.1"), "victim@example.com")
    with pytest.raises(Throttled, match="Too many requests for this email address from your network. Use the code we already emailed"):
        throttle_filing(_from("198.51.100.1"), "Victim+again@example.com")
    throttle_filing(_from("198.51.100.1"), "someone.else@example.com")  # the network may still file for others
    throttle_filing(_from("198.51.100.2"), "victim@example.com")  # and the address's owner, elsewhere, for it


def test_a_refused_call_counts_against_no_limit(limits):
    throttle_filing(_from("198.51.100.1"), "victim@example.com")
    for _ in range(5):  # a stranger hammering past their network's limit for the address
        with pytest.raises(Throttled, match="from your network"):
            throttle_filing(_from("198.51.100.1"), "victim@example.com")
    throttle_filing(_from("198.51.100.2"), "victim@example.com")  # the address's second filing of the hour
    with pytest.raises(Throttled, match="Too many requests for this email address. Try again in"):
        throttle_filing(_from("198.51.100.3"), "victim@example.com")


def test_code_attempts_are_limited_per_network_apart_from_filing_and_from_other_networks(limits):
    throttle_filing(_from("198.51.100.9"), "guess@example.com")  # filing counts do not spend attempts
    for _ in range(4):
        throttle_verify(_from("198.51.100.9"))
    with pytest.raises(Throttled, match="Too many code attempts from your network. Try again in") as refused:
        throttle_verify(_from("198.51.100.9"))
    assert (refused.value.status, refused.value.code) == (429, "throttled")
    throttle_verify(_from("198.51.100.10"))  # the owner's network, whatever the stranger's spent


@pytest.mark.parametrize(("rate", "window"), [("1/10s", 10), ("1/m", 60), ("1/2h", 7200), ("1/d", 86400)])
def test_a_refusal_says_how_long_to_wait_at_most_its_window(limits, settings, rate, window):
    settings.DSAR_RATE_LIMITS = {**limits, "verify_ip": rate}
    throttle_verify(_from("198.51.100.20"))
    with pytest.raises(Throttled) as refused:
        throttle_verify(_from("198.51.100.20"))
    number, unit = refused.value.detail.removeprefix("Too many code attempts from your network. Try again in ").removesuffix(".").split()
    seconds = {"second": 1, "minute": 60, "hour": 3600}[unit.removesuffix("s")]
    assert unit.endswith("s") == (number != "1")
    assert 0 < int(number) * seconds <= window


def test_redis_holds_counts_under_keyed_hashes_that_expire_with_their_window(limits):
    throttle_filing(_from("198.51.100.77"), "private.person@example.com")
    keys = [key.decode() for key in cache_redis().scan_iter(match=cache.make_key("rl:*"))]
    assert len(keys) == 3
    assert not [key for key in keys if "198.51.100.77" in key or "private.person" in key]
    ttls = sorted(cache_redis().ttl(key) for key in keys)
    # a minute's window and two hours' (the email's and the email's from this network), one second more
    assert 0 < ttls[0] <= 61 and 3540 < ttls[1] <= ttls[2] <= 3601


def test_a_count_starts_again_in_the_next_window(settings, limits):
    settings.DSAR_RATE_LIMITS = {**limits, "file_ip": "1/s"}
    throttle_filing(_from("198.51.100.5"), "first@example.com")
    emails = (f"again.{number}@example.com" for number in itertools.count())  # each its own email count

    def allowed_again() -> bool:
        try:
            throttle_filing(_from("198.51.100.5"), next(emails))
        except Throttled:
            return False
        return True

    wait_for(allowed_again, timeout=3, interval=0.1, what="the next one-second window")


@pytest.mark.parametrize(("spelling", "counted"), [
    ("ada@example.com", "ada@example.com"),
    ("Ada+newsletter@Example.COM", "ada@example.com"),
    ('"ada"@example.com', "ada@example.com"),
    ('"ada+x"@example.com', "ada@example.com"),
    ("ada@bücher.example", "ada@xn--bcher-kva.example"),
    ("ada@xn--bcher-kva.example", "ada@xn--bcher-kva.example"),
])
def test_spellings_of_one_mailbox_are_counted_as_one(spelling, counted):
    assert mailbox_counted(spelling) == counted


@pytest.mark.parametrize(("address", "counted"), [
    ("198.51.100.7", "198.51.100.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
])
def test_an_ipv6_client_is_counted_by_its_64_and_an_ipv4_by_its_address(address, counted):
    assert network_counted(address) == counted


def test_the_per_address_filing_limit_is_not_sidestepped_by_tags_quotes_case_or_punycode(limits):
    throttle_filing(_from("198.51.100.11"), "Ada+one@bücher.example")
    throttle_filing(_from("198.51.100.12"), '"ada"@xn--bcher-kva.example')
    with pytest.raises(Throttled, match="Too many requests for this email address"):
        throttle_filing(_from("198.51.100.13"), "ADA+two@BÜCHER.example")


def test_the_per_client_filing_limit_counts_an_ipv6_clients_whole_64(limits):
    for host in range(3):
        throttle_filing(_from(f"2001:db8:7:7::{host + 1}"), f"v6.{host}@example.com")
    with pytest.raises(Throttled, match="Too many requests from your network"):
        throttle_filing(_from("2001:db8:7:7:ffff::9"), "v6.3@example.com")
    throttle_filing(_from("2001:db8:7:8::1"), "v6.4@example.com")  # the next /64 has its own count
