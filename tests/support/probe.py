"""A connector for tests whose behaviour each test sets in Redis, so the real worker obeys it.

Keyed by the subject's email: `probe:plan:<email>` holds a JSON plan, `probe:calls:<email>` counts
calls. It holds `records` feedback records for a subject (none unless planned).
"""

from __future__ import annotations

import json
import os
import time

import redis

from connectors.base import Connector, ErasureReceipt, PermanentError, Record, TransientError

PLAN = "probe:plan:{}"
CALLS = "probe:calls:{}"


def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_URL"])


def probe_plan(email: str, **plan) -> None:
    """transient_failures=N: fail N calls with TransientError; permanent=True: always fail;
    sleep=S: take S seconds per call (slow_calls=N: only the first N calls); records=N: hold N feedback records; malformed="category" or
    "fields": yield one record of that malformed kind; text_bytes=N: each record's text is N random
    characters (so an export of it does not compress away); failures="TFT...": a transient failure on
    each call marked T, in order (a fixed "random" pattern)."""
    _redis().set(PLAN.format(email), json.dumps(plan), ex=3600)


def probe_calls(email: str) -> int:
    return int(_redis().get(CALLS.format(email)) or 0)


class ProbeConnector(Connector):
    name = "probe"
    categories = frozenset({"feedback_ratings"})

    def _call(self, email: str) -> dict:
        client = _redis()
        try:
            calls = client.incr(CALLS.format(email))
            plan = json.loads(client.get(PLAN.format(email)) or "{}")
        except redis.ConnectionError as error:  # the probe keeps its plan in the broker's Redis, down in the chaos test
            raise TransientError(f"probe: its Redis is unreachable: {error}") from None
        if plan.get("sleep") and calls <= plan.get("slow_calls", calls):
            time.sleep(plan["sleep"])
        if plan.get("permanent"):
            raise PermanentError("probe: the system refused the request (planned)")
        if calls <= plan.get("transient_failures", 0):
            raise TransientError(f"probe: timed out (planned failure {calls})")
        pattern = plan.get("failures", "")
        if calls <= len(pattern) and pattern[calls - 1] == "T":
            raise TransientError(f"probe: 503 from the system (call {calls})")
        return plan

    def gather(self, identity, categories=None):
        plan = self._call(identity.email)
        for number in range(plan.get("records", 0)):
            text = os.urandom(plan["text_bytes"] // 2).hex() if plan.get("text_bytes") else f"probe feedback {number}"
            yield Record(category="feedback_ratings", fields={"rating": 5, "text": text}, system="probe")
        if plan.get("malformed") == "category":
            yield Record(category="dna_sequences", fields={"x": 1}, system="probe")
        elif plan.get("malformed") == "fields":
            yield Record(category="feedback_ratings", fields=["not", "a", "mapping"], system="probe")

    def erase(self, identity, categories=None):
        plan = self._call(identity.email)
        receipt = ErasureReceipt()
        receipt.add_erased("feedback_ratings", plan.get("records", 0))
        return receipt
