"""The connectors a deployment runs, built from the DSAR_CONNECTORS setting."""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .base import Connector
from .taxonomy import category_known

_instances: dict[str, Connector] = {}
_lock = threading.Lock()


def connector_names() -> list[str]:
    """Names of the configured connectors, in settings order."""
    return list(settings.DSAR_CONNECTORS)


def connectors_import() -> None:
    """Import every configured connector's code (not its instance, which holds connections).

    Called in a parent before it forks (the Celery worker's, and gunicorn's with --preload), so its
    children share the code instead of each spending a third of a second importing it on first use.
    """
    for config in settings.DSAR_CONNECTORS.values():
        import_string(config["class"])


def connector_get(name: str) -> Connector:
    """The process-wide instance of one configured connector (it keeps its connection pool)."""
    with _lock:
        if name in _instances:
            return _instances[name]
        try:
            config = settings.DSAR_CONNECTORS[name]
        except KeyError:
            raise ImproperlyConfigured(f"no connector named {name!r} in DSAR_CONNECTORS") from None
        connector = import_string(config["class"])(name=name, **config.get("options", {}))
        unknown = sorted(c for c in connector.categories if not category_known(c))
        if unknown:
            raise ImproperlyConfigured(f"connector {name!r} declares unknown categories: {unknown}")
        _instances[name] = connector
        return connector


def connectors_reset() -> None:
    """Close and drop every instance: after a fork, and between tests that change settings."""
    with _lock:
        for connector in _instances.values():
            connector.close()
        _instances.clear()
