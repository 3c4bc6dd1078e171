"""The dataset file's retention rule, counted in calendar years (the file's parsing is in test_parsers)."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.sql_dataset import Retention

TEN_YEARS = Retention(years=10, basis="legal_obligation", reason="tax law", date_column="at")


@pytest.mark.parametrize(("now", "kept_from"), [
    (dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC), dt.datetime(2016, 6, 15, 12, 0, tzinfo=dt.UTC)),
    (dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.UTC), dt.datetime(2016, 1, 1, 0, 0, tzinfo=dt.UTC)),
    (dt.datetime(2028, 2, 29, 9, 30, tzinfo=dt.UTC), dt.datetime(2018, 2, 28, 9, 30, tzinfo=dt.UTC)),  # no 29 February in 2018
])
def test_rows_are_kept_from_the_same_day_and_time_ten_years_back(now, kept_from):
    assert TEN_YEARS.kept_from(now) == kept_from


@pytest.mark.parametrize(("dated", "until"), [
    (dt.date(2016, 6, 14), dt.date(2026, 6, 14)),
    (dt.date(2016, 2, 29), dt.date(2026, 2, 28)),
    (dt.datetime(2010, 1, 1, tzinfo=dt.UTC), dt.datetime(2020, 1, 1, tzinfo=dt.UTC)),
])
def test_a_row_is_kept_until_ten_years_after_its_date(dated, until):
    assert TEN_YEARS.until(dated) == until
