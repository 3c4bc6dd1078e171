"""Faults on purpose, against the product's real processes: `benchmarks/chaos.py` runs gunicorn,
two Celery workers and beat on a Redis of its own, SIGKILLs workers holding work at random points
of a batch and kills the broker mid-batch. `make chaos` runs the long version; this is the short one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ..conftest import ROOT


def test_workers_killed_at_random_and_a_broker_crash_lose_no_request_and_corrupt_no_export():
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.chaos", "--requests", "30", "--kills", "3", "--broker-restarts", "1", "--seed", "5"],
        cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=600,
    )
    assert run.stdout.strip(), _said(run)
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    # each of the 3 kills hit a process holding a task or a final step
    assert (summary["kills"], summary["kills_on_work"], summary["broker_restarts"]) == (3, 3, 1), _said(run)
    # every request came through, each access request with one intact export (zip test, the
    # manifest's checksums, the row's SHA-256) and each deletion with one receipt matching its parts
    assert (summary["submitted"], summary["completed"], summary["lost"]) == (30, 30, 0), _said(run)
    assert summary["duplicate_exports"] == 0 and summary["corrupt_archives"] == 0, _said(run)
    # the kills cut real work short, which was revived or run again
    assert summary["tasks_revived"] + summary["attempts_repeated"] + summary["final_steps_repeated"] >= 1
    # while the broker was down the web server answered 503 (JSON), never a traceback or a hang
    assert summary["outage_answers"].get("503", 0) >= 1 and summary["unclean_outage_answers"] == 0
    assert run.returncode == 0


def _said(run: subprocess.CompletedProcess) -> str:
    """What the run noted of its own (lines starting "# "), then the end of the processes' output."""
    notes = [line for line in run.stderr.splitlines() if line.startswith("# ")]
    return "\n".join([*notes[-40:], "…", run.stderr[-1500:]])
