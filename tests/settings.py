"""The settings of a test run: the product's, plus the probe connector, limits no test trips by
accident, mail read in the test's own process, and files apart from the demo's.

`python -m devstack test` points DJANGO_SETTINGS_MODULE here, for pytest and for every process the
tests start; the real worker takes tests/worker_settings.py, which builds on this.
"""

from dsar.settings import *  # noqa: F403
from dsar.settings import DATA_DIR, DSAR_CONNECTORS, DSAR_RATE_LIMITS, STORAGES

# The probe obeys a plan each test sets in Redis; its attempts are cut at 5 s, so a test can make
# it time out.
DSAR_CONNECTORS = {
    **DSAR_CONNECTORS,
    "content": {**DSAR_CONNECTORS["content"], "options": {**DSAR_CONNECTORS["content"]["options"],
                                                          "storage_options": {"location": str(DATA_DIR / "estate" / "content-test")}}},
    "probe": {"class": "tests.support.probe.ProbeConnector", "options": {}, "time_limit": 5},
}
# The suite files hundreds of requests from one address; the tests of the limits set their own.
DSAR_RATE_LIMITS = dict.fromkeys(DSAR_RATE_LIMITS, "100000/m")
# Each process sends the emails it queues, so a test reads them in its own mailbox; the tests of
# delivery by a worker say so.
DSAR_EMAIL_DELIVERY = "inline"
STORAGES = {**STORAGES, "default": {**STORAGES["default"], "OPTIONS": {"location": str(DATA_DIR / "storage-test")}}}
