"""The settings of a test run: the product's, plus the probe connector, limits no test trips by
accident, mail read in the test's own process, and files apart from the demo's.

`python -m devstack test` points DJANGO_SETTINGS_MODULE here, for pytest and for every process the
tests start; the real worker takes tests/worker_settings.py, which builds on this.
"""

from dsar.settings import *  # noqa: F403
from connectors.systems import SystemsDirectory
from dsar.config import BASE_DIR, DEMO_SYSTEMS, systems_environment
from dsar.settings import DATA_DIR, DSAR_RATE_LIMITS, STORAGES, config

# The demo estate's systems (their content files apart from the demo's, by devstack's
# DSAR_ESTATE_CONTENT_DIR) and the probe (tests/systems/probe.yaml).
DSAR_SYSTEMS = SystemsDirectory(BASE_DIR / DEMO_SYSTEMS, BASE_DIR / "tests" / "systems", environ=systems_environment(config))
# The suite files hundreds of requests from one address; the tests of the limits set their own.
DSAR_RATE_LIMITS = dict.fromkeys(DSAR_RATE_LIMITS, "100000/m")
# Each process sends the emails it queues, so a test reads them in its own mailbox; the tests of
# delivery by a worker say so.
DSAR_EMAIL_DELIVERY = "inline"
STORAGES = {**STORAGES, "default": {**STORAGES["default"], "OPTIONS": {"location": str(DATA_DIR / "storage-test")}}}
