"""The cache's Redis, for the calls on hot paths."""

from __future__ import annotations

from functools import lru_cache

from django.core.cache import cache
from redis import Redis


@lru_cache(maxsize=16)
def _client(pool) -> Redis:
    return Redis(connection_pool=pool)


def cache_redis() -> Redis:
    """A redis-py client on the cache's own connection pool, built once per pool. Django's Redis
    cache builds a new client for every call, which costs more than the round trip the call makes."""
    return _client(cache._cache._get_connection_pool(write=True))  # the cache's own pool; no public accessor exists
