"""One redis-py client on the cache's Redis, for the two calls on the filing's hot path: the rate
limits' script, which raises several counters in one round trip (dsar/throttle.py; Django's cache
API runs no scripts), and the email doorbell (dsar/notifications.py)."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from redis import Redis


@lru_cache(maxsize=4)
def _client(location: str, options: tuple[tuple[str, object], ...]) -> Redis:
    return Redis.from_url(location, **dict(options))


def cache_redis() -> Redis:
    """The client, built once per process from the cache's location and socket options (so a
    changed CACHES setting is followed). Django's Redis cache builds a client for every call,
    which costs more than the round trip the call makes."""
    configured = settings.CACHES["default"]
    return _client(configured["LOCATION"], tuple(sorted(configured.get("OPTIONS", {}).items())))

