"""How the product's processes start: what a parent loads before it forks its children."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
import dsar.wsgi
from django.conf import settings
from connectors import registry
modules = [config["class"].rsplit(".", 1)[0] for config in settings.DSAR_CONNECTORS.values()]
modules += [settings.ROOT_URLCONF, "dsar.api.staff", "django.contrib.admin.sites"]
print(all(module in sys.modules for module in modules), len(registry._instances))
"""


def test_loading_the_web_application_imports_every_connector_and_the_urlconf_but_opens_no_connector():
    """gunicorn --preload loads the application in its parent: the web workers it forks share the
    connectors' code and every view, and no connection (an instance's pool) crosses the fork."""
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "0"]
