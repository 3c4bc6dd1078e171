"""The last check of each system (`manage.py systems check`, or an admin on the Systems page), and
the rule that follows from it: a system whose last check found a problem is not run."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.utils import timezone

from connectors.base import Connector, ConnectorError, Finding, PermanentError
from connectors.registry import connector_get

from .models import ConnectorTask, SystemCheck


def system_check_run(name: str) -> list[Finding]:
    """Check one system now; what it found, in its file's order."""
    try:
        connector = connector_get(name)
    except (ImportError, ImproperlyConfigured, TypeError, ConnectorError) as error:  # its class cannot be built from the file
        return [Finding("class", f"the connector cannot be built: {error}")]
    try:
        return connector.check()
    except ConnectorError as error:
        return [Finding("connection", str(error))]


def system_check_record(name: str, findings: list[Finding]) -> SystemCheck:
    """Keep a check's findings as the system's last check."""
    check, _ = SystemCheck.objects.update_or_create(system=name, defaults={
        "checked_at": timezone.now(),
        "problems": [f"{f.where}: {f.what}" for f in findings if f.problem],
        "advice": [f"{f.where}: {f.what}" for f in findings if not f.problem],
    })
    return check


def system_refusal(name: str, problems: tuple[dt.datetime, list[str]] | None) -> str | None:
    """Why a worker must not run this system, given its last check's problems (when it was checked,
    and what it found; a claimed task carries them), or None."""
    if problems is None:
        return None
    checked_at, found = problems
    return (f"the last check of {name} ({checked_at:%Y-%m-%d %H:%M} UTC) found {len(found)} problem(s): "
            f"{'; '.join(found)}. Fix the system or its file, then run `manage.py systems check {name}`")


def connector_for_work(task: ConnectorTask) -> Connector:
    """A claimed task's connector, unless its system's last check found a problem (PermanentError
    says which)."""
    if refusal := system_refusal(task.connector, task.system_problems):
        raise PermanentError(refusal)
    return connector_get(task.connector)


def system_check_recorded(name: str, findings: list[Finding]) -> bool:
    """Record a check when the product's database can be reached (the `systems` commands run without
    it too); whether it was recorded."""
    try:
        system_check_record(name, findings)
    except (DatabaseError, ImproperlyConfigured):  # no product database here
        return False
    return True
