"""A connector for tests whose behaviour each test sets in Redis, so the real worker obeys it.

Keyed by the subject's email: `probe:plan:<email>` holds a JSON plan, `probe:calls:<email>` counts
calls. With no plan it holds one feedback record per subject.
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
    sleep=S: take S seconds per call."""
    _redis().set(PLAN.format(email), json.dumps(plan), ex=3600)


def probe_calls(email: str) -> int:
    return int(_redis().get(CALLS.format(email)) or 0)


class ProbeConnector(Connector):
    name = "probe"
    categories = frozenset({"feedback_ratings"})

    def _call(self, email: str) -> None:
        client = _redis()
        calls = client.incr(CALLS.format(email))
        plan = json.loads(client.get(PLAN.format(email)) or "{}")
        if plan.get("sleep"):
            time.sleep(plan["sleep"])
        if plan.get("permanent"):
            raise PermanentError("probe: the system refused the request (planned)")
        if calls <= plan.get("transient_failures", 0):
            raise TransientError(f"probe: timed out (planned failure {calls})")

    def gather(self, identity, categories=None):
        self._call(identity.email)
        yield Record(category="feedback_ratings", fields={"rating": 5, "text": "probe feedback"}, system="probe")

    def erase(self, identity, categories=None):
        self._call(identity.email)
        receipt = ErasureReceipt()
        receipt.add_erased("feedback_ratings", 1)
        return receipt
