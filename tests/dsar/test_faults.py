"""Faults in the systems connectors reach: errors at random, malformed data. A request ends
completed with every category, or failed with the reason; never completed with a gap."""

from __future__ import annotations

import random

import pytest

from dsar.models import ConnectorTask

from ..support.flows import approve, file_request, wait_until_final
from ..support.probe import probe_plan

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]


def test_errors_at_random_on_thirty_percent_of_calls_are_retried_and_every_request_completes(api, reviewer, mailoutbox, unique_email):
    rng = random.Random(7)
    ids = []
    for _ in range(8):
        email = unique_email("flaky")
        # 30% of calls fail, as a fixed pattern; four in a row is the most the bound allows
        pattern = "".join("T" if rng.random() < 0.3 else "F" for _ in range(4)) + "F"
        probe_plan(email, failures=pattern, records=2)
        request_id, _ = file_request(api, mailoutbox, type="access", email=email)
        approve(reviewer, request_id)
        ids.append((request_id, pattern))
    for request_id, pattern in ids:
        request = wait_until_final(request_id)
        assert request.status == "completed", pattern
        assert request.result["categories"]["feedback_ratings"] == 2
        probe = ConnectorTask.objects.get(request_id=request_id, connector="probe")
        assert probe.attempts == pattern.index("F") + 1


@pytest.mark.parametrize("malformed", ["category", "fields"])
def test_malformed_data_fails_the_request_with_the_reason_and_no_export(api, reviewer, mailoutbox, unique_email, malformed):
    email = unique_email("malformed")
    probe_plan(email, records=1, malformed=malformed)
    request_id, _ = file_request(api, mailoutbox, type="access", email=email)
    approve(reviewer, request_id)
    request = wait_until_final(request_id)
    assert request.status == "failed"
    assert request.failure_reason.startswith("probe: PermanentError")
    assert ("not a category" if malformed == "category" else "not a mapping") in request.failure_reason
    assert not hasattr(request, "export") or request.export is None
