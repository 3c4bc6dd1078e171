"""How the product's processes start: what a parent loads before it forks its children."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc
import sys
import dsar.wsgi
from django.conf import settings
from connectors.base import Connector
modules = [system.connector_class.rsplit(".", 1)[0] for system in settings.DSAR_SYSTEMS.values()]
modules += [settings.ROOT_URLCONF, "dsar.api.staff", "django.contrib.admin.sites"]
print(all(module in sys.modules for module in modules), sum(isinstance(o, Connector) for o in gc.get_objects()))
"""


def test_loading_the_web_application_imports_every_connector_and_the_urlconf_but_opens_no_connector():
    """gunicorn --preload loads the application in its parent: the web workers it forks share the
    connectors' code and every view, and no connection (an instance's pool) crosses the fork."""
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "0"]


FROZEN_PROBE = """
import gc
{load}
print(gc.get_freeze_count(), len(gc.get_objects()))
"""
WEB = "import dsar.wsgi"
WORKER = """
import django
django.setup()
from celery.signals import worker_init, worker_process_init
import dsar.tasks
worker_init.send(sender=None)  # what Celery sends in a worker's parent, then in each child it forks
worker_process_init.send(sender=None)
"""


def _frozen_and_left(load: str) -> tuple[int, int]:
    result = subprocess.run([sys.executable, "-c", FROZEN_PROBE.format(load=load)], cwd=ROOT, env=os.environ.copy(),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    frozen, left = (int(x) for x in result.stdout.split())
    return frozen, left


def test_what_the_web_application_loaded_is_out_of_the_garbage_collectors_reach():
    """A full collection walks every object it tracks: in a web worker, 80 ms with every request in
    flight stalled. What loading made (settings, the URLconf, the connectors) is frozen instead."""
    frozen, left = _frozen_and_left(WEB)
    assert frozen > 50_000
    assert left < frozen / 20


def test_what_a_worker_loaded_is_out_of_the_garbage_collectors_reach_in_its_parent_and_its_children():
    frozen, left = _frozen_and_left(WORKER)
    assert frozen > 50_000
    assert left < frozen / 20


def test_celery_runs_with_the_settings_the_product_relies_on():
    from celery.fixups.django import DjangoWorkerFixup
    from django.conf import settings

    from dsar.celery import app

    assert (app.conf.task_serializer, list(app.conf.accept_content), app.conf.worker_prefetch_multiplier) == ("json", ["json"], 1)
    assert (app.conf.task_acks_late, app.conf.task_reject_on_worker_lost, app.conf.task_ignore_result) == (True, True, True)
    assert app.conf.task_routes["dsar.tasks.request_finalize"] == {"queue": "dsar.final"}
    assert app.conf.task_routes["dsar.tasks.emails_send"] == {"queue": "dsar.mail"}
    assert DjangoWorkerFixup(app).db_reuse_max == settings.CELERY_DB_REUSE_MAX > 1  # else it closes the connection after every task
    assert not app.conf.deprecated_settings  # no name is taken for one of Celery 3's


PREPARED_PROBE = """
import sys
import django
django.setup()
from celery.signals import worker_init
from django.conf import settings
import dsar.tasks
from dsar import exports
before = settings.ROOT_URLCONF in sys.modules, exports.report.terms_html.cache_info().currsize
worker_init.send(sender=None)  # what Celery sends in a worker's parent before it forks its pool
print(*before, settings.ROOT_URLCONF in sys.modules, exports.report.terms_html.cache_info().currsize)
"""


def test_a_workers_parent_prepares_the_report_and_loads_the_urlconf_before_it_forks():
    result = subprocess.run([sys.executable, "-c", PREPARED_PROBE], cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "0", "True", "2"]  # the terms, in English and in German
