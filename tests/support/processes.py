"""Stopping the processes tests start: politely first, then for sure."""

from __future__ import annotations

import subprocess


def process_stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
