"""The Celery application. Its configuration is the CELERY_* names in Django's settings, read the
way Celery documents for Django; CELERY_DB_REUSE_MAX among them, which Celery's Django fixup asks
for by its full name."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dsar.settings")

app = Celery("dsar")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
