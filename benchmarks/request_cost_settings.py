"""The product's settings for counting the workers' instructions (benchmarks/request_cost.py): the
same, without the work that follows the clock rather than the requests.

Under callgrind the code runs about fifty times slower, so what the product does once a stretch of
wall-clock time fires many times more often than at full speed, and how often follows the machine's
load: the same commit counted 84 M, 92 M and 100 M an access request on a busy machine. Two such
things are left out:

- the lease keeper's renewals (dsar/processing.py), due once a task has been held a third of its
  lease: at full speed a typical task ends long before;
- the database connection's replacement once it is older than CONN_MAX_AGE (60 s), before a task:
  at full speed a worker replaces it once a minute, over many hundreds of requests, but under
  callgrind every few requests, and each new connection starts again without prepared statements.
"""

from dsar.settings import *  # noqa: F403

DSAR_TASK_LEASE_SECONDS = 24 * 3600
DATABASES["default"]["CONN_MAX_AGE"] = None  # noqa: F405
