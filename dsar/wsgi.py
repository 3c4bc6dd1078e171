"""WSGI entry point for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dsar.settings")
application = get_wsgi_application()

# Loaded once here: under gunicorn --preload, before the web workers fork, so they share it. Each
# worker would otherwise spend a third of a second on the connectors at its first verification,
# and a fifth on the URLconf (every view, the admin and the API schema) at its first request.
# (The Celery worker's parent imports both before forking its pool: dsar/tasks.py, and Celery's
# Django fixup, whose system checks load the URLconf.)
from django.urls import get_resolver

from connectors.registry import connectors_import

connectors_import()
get_resolver().url_patterns  # noqa: B018 (reading it imports the URLconf)

# Everything loaded so far lives as long as the process: the cyclic garbage collector need never
# look at it again. Left in its oldest generation, a full collection walks all of it (80 ms in a
# web worker, every request in flight stalled), and under --preload it would also write to every
# shared page, so the workers stopped sharing them.
import gc

gc.freeze()
