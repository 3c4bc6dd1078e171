"""Deadlines by jurisdiction: when a request is due, and how far staff may extend it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class DeadlineRule:
    name: str
    respond_within: relativedelta
    extension: relativedelta
    # The same periods in the words the person is told them in (the received email).
    respond_within_words: str
    extension_words: str


RULES = {
    # GDPR Art. 12(3): one month from receipt, extendable by two further months.
    "gdpr": DeadlineRule("gdpr", relativedelta(months=1), relativedelta(months=2), "one month", "by up to two further months"),
    # CCPA (Cal. Civ. Code 1798.130): 45 days, extendable once by another 45.
    "ccpa": DeadlineRule("ccpa", relativedelta(days=45), relativedelta(days=45), "45 days", "once, by up to 45 more days"),
}


def deadline_rule(jurisdiction: str | None = None) -> DeadlineRule:
    """The rule of `jurisdiction`, or of the deployment's (DSAR_JURISDICTION) when None."""
    name = jurisdiction or settings.DSAR_JURISDICTION
    try:
        return RULES[name]
    except KeyError:
        raise ImproperlyConfigured(f"DSAR_JURISDICTION must be one of {sorted(RULES)}, got {name!r}") from None


def due_at_for(received_at: dt.datetime, jurisdiction: str | None = None) -> dt.datetime:
    """The legal deadline for a request received at `received_at` (calendar months clamp to month end)."""
    return received_at + deadline_rule(jurisdiction).respond_within


def extension_limit(due_at: dt.datetime, jurisdiction: str | None = None) -> dt.datetime:
    """The latest date an extension may move `due_at` to."""
    return due_at + deadline_rule(jurisdiction).extension
