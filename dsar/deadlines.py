"""Deadlines by jurisdiction: when a request is due, and how far staff may extend it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext, ngettext


@dataclass(frozen=True)
class DeadlineRule:
    name: str
    respond_within: relativedelta
    extension: relativedelta
    # The purposes of a question to the person (models.QuestionPurpose) during which the deadline does not run.
    paused_while_asked: frozenset[str] = frozenset()

    # The same periods in the words the person is told them in (the received email, the request's
    # page), written when read: in the language of whoever reads them.
    @property
    def respond_within_words(self) -> str:
        """How long the law gives to answer: "one month", "45 days"."""
        if self.name == "gdpr":
            # Translators: in "the law gives us one month from when we received it".
            return gettext("one month")
        days = self.respond_within.days
        return ngettext("%(days)d day", "%(days)d days", days) % {"days": days}

    @property
    def extension_words(self) -> str:
        """How far the law lets that be extended: "by up to two further months"."""
        if self.name == "gdpr":
            # Translators: in "the law lets us extend that by up to two further months".
            return gettext("by up to two further months")
        days = self.extension.days
        # Translators: in "the law lets us extend that once, by up to 45 more days".
        return ngettext("once, by up to %(days)d more day", "once, by up to %(days)d more days", days) % {"days": days}


RULES = {
    # GDPR Art. 12(3): one month from receipt, extendable by two further months. While the person is
    # asked to confirm who they are (Art. 12(6), 11(2)), the period does not run (EDPB Guidelines
    # 01/2022, timing); a question about what the request covers (Recital 63) does not stop it.
    "gdpr": DeadlineRule("gdpr", relativedelta(months=1), relativedelta(months=2), paused_while_asked=frozenset({"identity"})),
    # CCPA (Cal. Civ. Code 1798.130): 45 days, extendable once by another 45. The 45 days run from
    # receipt whatever verification takes (regulations §7021(b)): no question stops them.
    "ccpa": DeadlineRule("ccpa", relativedelta(days=45), relativedelta(days=45)),
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


def deadline_paused_while_asked(jurisdiction: str, purpose: str) -> bool:
    """Whether the deadline stops running while the person is asked a question of `purpose`, so
    that their answer moves the due date later by the time it took."""
    return purpose in deadline_rule(jurisdiction).paused_while_asked
