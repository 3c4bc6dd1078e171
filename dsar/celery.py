"""The Celery application. Configuration lives in settings (CELERY_* names)."""

import os

from celery import Celery
from celery.app.defaults import SETTING_KEYS

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dsar.settings")

app = Celery("dsar")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def _settings_read_once(sender: Celery, **_kwargs) -> None:
    """Hand Celery the CELERY_* settings as a plain dict, read when it first needs them.

    Celery looks its settings up on every task it sends or runs, each under two names, and read
    through Django's settings object every name not set was an exception raised and caught in
    Python: a quarter of sending a task. So the settings are read once. A setting Celery has goes
    under Celery's own name (CELERY_TASK_SERIALIZER is task_serializer: keyed by the prefixed
    names, the dict would read as Celery 3's settings and be warned about as deprecated); any
    other keeps its name (CELERY_DB_REUSE_MAX, which Celery's Django fixup asks for as it is).
    Later changes to them, which nothing makes, would not reach Celery."""
    from django.conf import settings

    named = {}
    for name in dir(settings):
        if name.startswith("CELERY_"):
            celery_name = name.removeprefix("CELERY_").lower()
            named[celery_name if celery_name in SETTING_KEYS else name] = getattr(settings, name)
    sender.config_from_object(named)
