"""Limits that are security controls, shared by the API and the portal: filing per client network,
per mailbox (which bounds how many codes a stranger can make us send to someone else's address) and
per mailbox from one network, and code attempts per client network.

Each limit is a fixed-window counter in Redis. All counters of a call are checked and raised by one
script, in one round trip: filing is the hottest path the product has, and a counter per round trip
(with an existence check first, as a cache-based limiter does) cost more than the rest of the
request. Counted values are keyed hashes, so Redis never holds an address or an email.

**The limits refuse the stranger's traffic, not the person's.** Anyone can file for any address and
try codes on any request whose id they hold, so a limit that counts what anyone does for an address
and then refuses everyone for it is one a stranger can spend to lock the owner out. So:

- A refused call raises no counter. A stranger hammering past their own network's limit does not
  use up the address's count, which is left for whoever else files for it.
- A network may file for one mailbox only `file_email_ip` times in the window (2 an hour), below the
  mailbox's own limit `file_email` (5 an hour): a stranger on one network cannot use up the codes an
  address may be sent; the owner, filing from another network, still gets one. A stranger on three
  or more networks still can: the mailbox's limit has to hold against them, as it bounds the mail a
  stranger makes us send to a third party.
- Code attempts are counted per client network only, never per address: wrong codes on the
  stranger's requests do not refuse the owner's right code on the owner's request.

**Guessing stays bounded without a per-address attempt limit.** A stranger can try codes only on a
request whose id they hold: one they filed (the id of the owner's request is in the owner's browser
and the owner's mail). A request takes at most DSAR_CODE_MAX_ATTEMPTS (5) wrong codes in its life,
new codes or not, then locks; each of its codes lives DSAR_CODE_TTL_MINUTES. Every code issued for a
mailbox, filed or resent, counts against `file_email`. So the codes sent to one mailbox in an hour
take at most 5 x 5 = 25 guesses, from any number of networks (10 from one network), each a 1 in 10^8
chance at an 8-digit code: 2.5 x 10^-7 an hour, 6 x 10^-6 a day, about 0.2% (219,000 guesses) for a
year of guessing without a pause. (The per-address attempt limit this replaced allowed 20 an hour:
0.18% a year.) A fixed window lets a burst straddle its boundary, so a sliding hour may see twice
the rate; the daily and yearly figures do not change.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
import time
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext_lazy, ngettext
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


# One round trip, atomically: the position (from 1) of the first counter at its limit, raising none;
# or 0, having raised every counter and given each new one its window. ARGV holds, for each key, its
# limit and then its window in seconds.
_COUNT = """
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[2 * i - 1]) then return i end
end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[2 * i]) end
end
return 0
"""


@lru_cache(maxsize=4)
def _script(client: Redis) -> Script:
    """The counting script on `client`, registered once per client."""
    return client.register_script(_COUNT)


def _wait_words(seconds: float) -> str:
    """'40 seconds', '1 minute', '35 minutes', '2 hours': a wait, rounded up, in the active language."""
    if seconds > 3600:
        count = math.ceil(seconds / 3600)
        return ngettext("%(count)d hour", "%(count)d hours", count) % {"count": count}
    if seconds > 60:
        count = math.ceil(seconds / 60)
        return ngettext("%(count)d minute", "%(count)d minutes", count) % {"count": count}
    count = max(1, math.ceil(seconds))
    return ngettext("%(count)d second", "%(count)d seconds", count) % {"count": count}


# What a refused caller reads, in the language of their request: only a refusal translates one.
# Translators: %(wait)s is a wait such as "35 minutes".
_FILE_IP = gettext_lazy("Too many requests from your network. Try again in %(wait)s.")
_FILE_EMAIL_IP = gettext_lazy("Too many requests for this email address from your network. Use the code we already emailed, "
                              "or try again in %(wait)s.")
_FILE_EMAIL = gettext_lazy("Too many requests for this email address. Try again in %(wait)s.")
_VERIFY_IP = gettext_lazy("Too many code attempts from your network. Try again in %(wait)s.")


def _counted(limits: list[tuple[str, str, str]]) -> None:
    """Count one call against each (scope, value, message) if none is at its limit; otherwise count
    nothing and raise Throttled with the first one's message, its `%(wait)s` the time left in its window."""
    now = time.time()
    keys, args, windows = [], [], []
    for scope, value, _message in limits:
        count, seconds = rate_parse(settings.DSAR_RATE_LIMITS[scope])
        digest = hmac.new(settings.SECRET_KEY.encode(), f"{scope}:{value}".encode(), hashlib.sha256).hexdigest()[:32]
        keys.append(cache.make_key(f"rl:{scope}:{digest}:{int(now // seconds)}"))
        args += [count, seconds + 1]
        windows.append(seconds)
    refused = _script(cache_redis())(keys=keys, args=args)
    if refused:
        seconds = windows[refused - 1]
        raise Throttled(limits[refused - 1][2] % {"wait": _wait_words(seconds - now % seconds)})


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
    network, mailbox = network_counted(client_address(http_request)), mailbox_counted(email)
    _counted([
        ("file_ip", network, _FILE_IP),
        ("file_email_ip", f"{mailbox} {network}", _FILE_EMAIL_IP),
        ("file_email", mailbox, _FILE_EMAIL),
    ])


def throttle_verify(http_request) -> None:
    """Before checking a code. Counted per client network alone: see the module's docstring."""
    _counted([
        ("verify_ip", network_counted(client_address(http_request)), _VERIFY_IP),
    ])
