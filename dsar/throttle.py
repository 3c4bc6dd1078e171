"""Limits that are security controls, shared by the API and the portal: filing per client address
and per email (which also bounds how many codes a stranger can make us send to someone else's
address), and code attempts per address and email.

Each limit is a fixed-window counter in Redis. Both counters of a call are raised by one script,
in one round trip: filing is the hottest path the product has, and a counter per round trip (with an
existence check first, as a cache-based limiter does) cost more than the rest of the request.
Counted values are keyed hashes, so Redis never holds an address or an email.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import time
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from redis import Redis
from redis.commands.core import Script

from .cache import cache_redis
from .config import RATE
from .errors import ServiceError

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Throttled(ServiceError):
    status, code = 429, "throttled"


@lru_cache(maxsize=64)
def rate_parse(rate: str) -> tuple[int, int]:
    """'30/m', '60/10m', '5/h' -> (calls allowed, window in seconds)."""
    match = re.match(RATE, rate)
    if not match:
        raise ValueError(f"a rate is calls/window, such as 30/m, 60/10m or 5/h; got {rate!r}")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * UNIT_SECONDS[unit]


def client_address(http_request) -> str:
    """The caller's address. Behind a proxy, DSAR_TRUSTED_PROXIES says whose X-Forwarded-For to believe."""
    remote = http_request.META.get("REMOTE_ADDR", "")
    forwarded = http_request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded and remote in settings.DSAR_TRUSTED_PROXIES:
        return forwarded.split(",")[-1].strip()
    return remote


# Raise every counter of a call and give each new one its window: one round trip, atomically.
_COUNT = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  if counts[i] == 1 then redis.call('EXPIRE', key, ARGV[i]) end
end
return counts
"""


@lru_cache(maxsize=4)
def _script(client: Redis) -> Script:
    """The counting script on `client`, registered once per client."""
    return client.register_script(_COUNT)


def _counted(limits: list[tuple[str, str, str]]) -> None:
    """Count one call against each (scope, value, message); raise Throttled with the first exceeded."""
    now = time.time()
    keys, windows, allowed = [], [], []
    for scope, value, _message in limits:
        count, seconds = rate_parse(settings.DSAR_RATE_LIMITS[scope])
        digest = hmac.new(settings.SECRET_KEY.encode(), f"{scope}:{value}".encode(), hashlib.sha256).hexdigest()[:32]
        keys.append(cache.make_key(f"rl:{scope}:{digest}:{int(now // seconds)}"))
        windows.append(seconds + 1)
        allowed.append(count)
    counts = _script(cache_redis())(keys=keys, args=windows)
    for (_scope, _value, message), limit, count in zip(limits, allowed, counts, strict=True):
        if count > limit:
            raise Throttled(message)


def mailbox_counted(email: str) -> str:
    """The mailbox an address reaches, as the per-address limits count it: spellings that reach
    one person count together (`Ada+x@Example.com`, `"ada"@example.com` and `ada@EXAMPLE.com`;
    a Unicode domain and its punycode)."""
    local, _, domain = email.rpartition("@")
    local = local.strip('"').partition("+")[0].lower()
    try:
        domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:  # not a domain IDNA can spell: counted as written
        domain = domain.lower()
    return f"{local}@{domain}"


def network_counted(address: str) -> str:
    """The network a client address stands for, as the per-client limits count it: an IPv6
    client's /64 (one subscriber commonly has all of it), an IPv4 address itself."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False))


def throttle_filing(http_request, email: str) -> None:
    """Before filing a request or sending a new code to `email` (already normalised)."""
    _counted([
        ("file_ip", network_counted(client_address(http_request)), "Too many requests from your network. Try again later."),
        ("file_email", mailbox_counted(email), "Too many requests for this email address. Try again in an hour."),
    ])


def throttle_verify(http_request, email: str) -> None:
    """Before checking a code for a request filed with `email`."""
    _counted([
        ("verify_ip", network_counted(client_address(http_request)), "Too many code attempts from your network. Try again later."),
        ("verify_email", mailbox_counted(email), "Too many code attempts for this email address. Try again in an hour."),
    ])
