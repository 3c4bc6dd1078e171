"""The Celery application. Its configuration is the CELERY_* names in Django's settings, read the
way Celery documents for Django; CELERY_DB_REUSE_MAX among them, which Celery's Django fixup asks
for by its full name."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dsar.settings")

app = Celery("dsar")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Publishing gives up fast when the broker is down: the committed row is the job, and the sweeper
# rings again, so a web request never hangs on a dead broker. Set here under Celery's own name:
# as CELERY_TASK_PUBLISH_RETRY_POLICY in Django's settings it is also a Celery 3 name, which every
# worker would warn about at start (celery/celery#6366).
app.conf.task_publish_retry_policy = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
app.autodiscover_tasks()
