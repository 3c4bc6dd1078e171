"""WSGI entry point for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dsar.settings")
application = get_wsgi_application()

# Loaded once here: under gunicorn --preload, before the web workers fork, so they share it.
from connectors.registry import connectors_import

connectors_import()
