"""The product across hosts: `benchmarks/cluster.py` runs two web hosts behind a balancer and three
worker hosts in network namespaces, on RabbitMQ, PostgreSQL and S3 reached over the network, and
mid-batch cuts a worker host off, kills another outright, restarts the broker and stops a web host.
`make cluster` runs the long version; this is the short one.

It needs root and iproute2, as CI has here: without them it fails, saying so, rather than skip."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ..conftest import ROOT


# Long enough for a run whose requests do not all finish to wait for them its five minutes, then
# print its summary and the database sessions holding them up, rather than be cut short.
@pytest.mark.timeout(600)
def test_hosts_cut_off_killed_and_stopped_and_a_broker_restart_lose_no_request_and_corrupt_no_export():
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.cluster", "--requests", "20", "--seed", "5"],
        cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=540,
    )
    assert run.stdout.strip(), f"the cluster run printed no summary; it said:\n{_said(run)}"
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    # the doorbells went through RabbitMQ, in the product's three queues
    assert summary["broker_queues"] == ["celery", "dsar.final", "dsar.mail"]
    # a worker host cut off, another killed, a web host stopped; the broker restarted once
    assert (summary["hosts_lost"], summary["kills"], summary["broker_restarts"]) == (3, 1, 1)
    # every request final and come through, each access request with one intact export fetched
    # from S3 (zip test, the manifest's checksums, the row's SHA-256), each deletion with one
    # receipt matching its parts
    assert (summary["submitted"], summary["completed"], summary["lost"]) == (20, 20, 0), _said(run)
    assert summary["duplicate_exports"] == 0 and summary["corrupt_archives"] == 0, _said(run)
    # the faults cut real work short, which was revived or run again
    assert summary["tasks_revived"] + summary["attempts_repeated"] + summary["final_steps_repeated"] >= 1
    # while the broker was down, a filing was taken or refused with a clean 503, never a 500 or a hang
    assert summary["unclean_outage_answers"] == 0 and sum(summary["outage_answers"].values()) >= 2
    assert run.returncode == 0


def _said(run: subprocess.CompletedProcess) -> str:
    """What the run noted of its own (lines starting "# "), then the end of the processes' output."""
    notes = [line for line in run.stderr.splitlines() if line.startswith("# ")]
    return "\n".join([*notes[-40:], "…", run.stderr[-1500:]])
