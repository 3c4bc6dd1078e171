"""The settings of the real Celery worker the tests start: the test run's, with timings short
enough for a test to wait for them."""

from .settings import *  # noqa: F403

DSAR_RETRY_BASE_SECONDS = 0.05
DSAR_RETRY_MAX_SECONDS = 0.5
# Leases run out 3 s after a worker dies, so tests of killed workers revive work quickly.
DSAR_TASK_LEASE_SECONDS = 3
DSAR_PUBLIC_URL = "http://testserver"
