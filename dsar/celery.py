"""The Celery application. Configuration lives in settings (CELERY_* names)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dsar.settings")

app = Celery("dsar")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def _settings_read_once(sender: Celery, **_kwargs) -> None:
    """Hand Celery the CELERY_* settings as a plain dict, read when it first needs them.

    Celery looks its settings up on every task it sends or runs, each under two names, and read
    through Django's settings object every name not set was an exception raised and caught in
    Python: a quarter of sending a task. So the settings are read once, under Celery's own names
    (CELERY_TASK_SERIALIZER is task_serializer: a dict keyed by the prefixed names would read as
    Celery 3's and be warned about as deprecated), but for the one Celery's Django fixup asks for
    by its prefixed name. Later changes to them, which nothing makes, would not reach Celery."""
    from django.conf import settings

    named = {name.removeprefix("CELERY_").lower(): getattr(settings, name) for name in dir(settings) if name.startswith("CELERY_")}
    # Without it the fixup closes the database connection after every task.
    named["CELERY_DB_REUSE_MAX"] = named.pop("db_reuse_max", None)
    sender.config_from_object(named)
