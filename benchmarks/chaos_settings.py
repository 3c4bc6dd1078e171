"""The product's settings for the fault-injection batch: the same, with recovery timings short
enough that a batch with killed workers and a restarted broker ends within minutes."""

from dsar.settings import *  # noqa: F403

DSAR_TASK_LEASE_SECONDS = 3  # a dead worker's task is revived within seconds
DSAR_SWEEP_QUEUED_MINUTES = 0.1  # and a message the broker lost, within 6 s
DSAR_RETRY_BASE_SECONDS = 0.2
DSAR_RETRY_MAX_SECONDS = 2.0
