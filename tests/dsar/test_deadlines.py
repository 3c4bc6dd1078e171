"""dsar/deadlines.py: when a request is due under each law, and how far staff may extend it.

Every expected date is written out from the calendar: GDPR Art. 12(3) gives one month, extendable by
two further months; the CCPA gives 45 days, extendable once by another 45.
"""

from __future__ import annotations

import datetime as dt

import pytest
from dateutil.relativedelta import relativedelta
from django.core.exceptions import ImproperlyConfigured
from django.utils import translation

from dsar.deadlines import DeadlineRule, deadline_rule, due_at_for, extension_limit

UTC = dt.UTC
PACIFIC = dt.timezone(dt.timedelta(hours=-8))


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=tz)


@pytest.mark.parametrize(("received", "due"), [
    (at(2026, 1, 15, 9, 30), at(2026, 2, 15, 9, 30)),
    (at(2026, 1, 31), at(2026, 2, 28)),  # no 31 February: the month's last day
    (at(2028, 1, 31), at(2028, 2, 29)),  # a leap year's February
    (at(2028, 1, 30), at(2028, 2, 29)),
    (at(2026, 3, 31), at(2026, 4, 30)),
    (at(2026, 2, 28), at(2026, 3, 28)),  # the 28th, not the month's end
    (at(2026, 12, 31, 23, 59), at(2027, 1, 31, 23, 59)),  # into the next year
])
def test_under_the_gdpr_a_request_is_due_one_calendar_month_after_its_receipt(received, due):
    assert due_at_for(received, "gdpr") == due


@pytest.mark.parametrize(("due", "limit"), [
    (at(2026, 2, 15), at(2026, 4, 15)),
    (at(2026, 2, 28), at(2026, 4, 28)),
    (at(2028, 2, 29), at(2028, 4, 29)),
    (at(2025, 12, 31), at(2026, 2, 28)),  # into the next year, to February's last day
    (at(2027, 12, 31), at(2028, 2, 29)),  # ... of a leap year
])
def test_under_the_gdpr_staff_may_extend_a_deadline_by_two_further_months(due, limit):
    assert extension_limit(due, "gdpr") == limit


@pytest.mark.parametrize(("received", "due"), [
    (at(2026, 1, 1), at(2026, 2, 15)),
    (at(2026, 2, 1), at(2026, 3, 18)),
    (at(2028, 2, 1), at(2028, 3, 17)),  # 29 days in a leap year's February
    (at(2026, 12, 20, 8, 15), at(2027, 2, 3, 8, 15)),
])
def test_under_the_ccpa_a_request_is_due_45_days_after_its_receipt(received, due):
    assert due_at_for(received, "ccpa") == due


@pytest.mark.parametrize(("due", "limit"), [
    (at(2026, 2, 15), at(2026, 4, 1)),
    (at(2028, 2, 15), at(2028, 3, 31)),
    (at(2026, 11, 30), at(2027, 1, 14)),
])
def test_under_the_ccpa_staff_may_extend_a_deadline_once_by_another_45_days(due, limit):
    assert extension_limit(due, "ccpa") == limit


def test_a_deadline_keeps_the_time_of_day_and_the_zone_of_the_receipt():
    received = at(2026, 1, 31, 23, 30, tz=PACIFIC)  # 07:30 UTC on 1 February
    assert due_at_for(received, "gdpr") == at(2026, 2, 28, 23, 30, tz=PACIFIC)
    assert due_at_for(received, "ccpa") == at(2026, 3, 17, 23, 30, tz=PACIFIC)


@pytest.mark.parametrize(("jurisdiction", "due", "limit"), [
    ("gdpr", at(2026, 2, 1), at(2026, 4, 1)),
    ("ccpa", at(2026, 2, 15), at(2026, 4, 1)),
])
def test_without_a_jurisdiction_the_deployments_own_applies(settings, jurisdiction, due, limit):
    settings.DSAR_JURISDICTION = jurisdiction
    assert due_at_for(at(2026, 1, 1)) == due
    assert extension_limit(due) == limit
    assert deadline_rule().name == jurisdiction


@pytest.mark.parametrize(("name", "respond_within", "extension"), [
    ("gdpr", relativedelta(months=1), relativedelta(months=2)),
    ("ccpa", relativedelta(days=45), relativedelta(days=45)),
])
def test_each_rule_names_its_law_and_its_periods(name, respond_within, extension):
    rule = deadline_rule(name)
    assert (rule.name, rule.respond_within, rule.extension) == (name, respond_within, extension)


@pytest.mark.parametrize(("language", "jurisdiction", "within", "extension"), [
    ("en", "gdpr", "one month", "by up to two further months"),
    ("en", "ccpa", "45 days", "once, by up to 45 more days"),
    ("de", "gdpr", "einen Monat", "um bis zu zwei weitere Monate"),
    ("de", "ccpa", "45 Tage", "einmalig um bis zu 45 weitere Tage"),
])
def test_each_rule_tells_its_periods_in_the_words_of_the_language_it_is_read_in(language, jurisdiction, within, extension):
    with translation.override(language):
        rule = deadline_rule(jurisdiction)
        assert (rule.respond_within_words, rule.extension_words) == (within, extension)


@pytest.mark.parametrize(("language", "within", "extension"), [
    ("en", "1 day", "once, by up to 1 more day"),
    ("de", "1 Tag", "einmalig um bis zu 1 weiteren Tag"),
])
def test_a_period_of_days_is_counted_in_the_singular_when_it_is_one(language, within, extension):
    rule = DeadlineRule("ccpa", relativedelta(days=1), relativedelta(days=1))
    with translation.override(language):
        assert (rule.respond_within_words, rule.extension_words) == (within, extension)


def test_an_unknown_jurisdiction_is_refused_with_the_known_ones_named(settings):
    expected = "DSAR_JURISDICTION must be one of ['ccpa', 'gdpr'], got 'hipaa'"
    with pytest.raises(ImproperlyConfigured) as refused:
        due_at_for(at(2026, 1, 1), "hipaa")
    assert str(refused.value) == expected

    settings.DSAR_JURISDICTION = "hipaa"
    with pytest.raises(ImproperlyConfigured) as refused:
        extension_limit(at(2026, 1, 1))
    assert str(refused.value) == expected
