"""The connectors a deployment runs, one per system of the DSAR_SYSTEMS setting (connectors/systems.py)."""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .base import Connector
from .systems import System, SystemsError
from .taxonomy import category_known

_instances: dict[str, Connector] = {}
_lock = threading.Lock()


def systems() -> dict[str, System]:
    """The configured systems by name, in their files' order; ImproperlyConfigured lists every
    problem of a bad system file."""
    try:
        return dict(settings.DSAR_SYSTEMS)
    except SystemsError as error:
        raise ImproperlyConfigured(f"the system files are wrong:\n{error}") from None


def connector_names() -> list[str]:
    """Names of the configured connectors, in the systems' order."""
    return list(settings.DSAR_SYSTEMS)


def connectors_import() -> None:
    """Import every configured connector's code (not its instance, which holds connections).

    Called in a parent before it forks (the Celery worker's, and gunicorn's with --preload), so its
    children share the code instead of each spending a third of a second importing it on first use.
    """
    for system in systems().values():
        import_string(system.connector_class)


def connector_time_limit(name: str) -> int | None:
    """Seconds one attempt of this connector may run, when its system sets a limit of its own."""
    system = settings.DSAR_SYSTEMS.get(name)
    return system.time_limit if system else None


def connector_waits_for(name: str) -> frozenset[str]:
    """The other systems that find identities this one is found by: they run first, and it runs once
    they have all succeeded, with what they found."""
    needs = settings.DSAR_SYSTEMS[name].needs
    if not needs:  # most systems: found by the request's email alone
        return frozenset()
    return frozenset(other for other, system in settings.DSAR_SYSTEMS.items() if other != name and system.provides & needs)


def connector_provides(name: str) -> bool:
    """Whether this system finds identities for others."""
    return bool(settings.DSAR_SYSTEMS[name].provides)


def connector_worked_by_staff(name: str) -> bool:
    """Whether this system has no API, so that staff work its tasks by hand (kind `manual`)."""
    return settings.DSAR_SYSTEMS[name].kind == "manual"


def connector_get(name: str) -> Connector:
    """The process-wide instance of one configured connector (it keeps its connection pool)."""
    with _lock:
        if name in _instances:
            return _instances[name]
        try:
            system = settings.DSAR_SYSTEMS[name]
        except KeyError:
            raise ImproperlyConfigured(f"no system named {name!r} in DSAR_SYSTEMS") from None
        connector = system.connector()
        unknown = sorted(c for c in connector.categories if not category_known(c))
        if unknown:
            raise ImproperlyConfigured(f"system {name!r} declares unknown categories: {unknown}")
        _instances[name] = connector
        return connector


def connectors_reset() -> None:
    """Close and drop every instance: after a fork, and between tests that change settings."""
    with _lock:
        for connector in _instances.values():
            connector.close()
        _instances.clear()
