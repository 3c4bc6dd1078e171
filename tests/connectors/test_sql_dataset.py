"""The dataset file's retention rule, counted in calendar years (the file's parsing is in test_parsers)."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.sql_dataset import DatasetError, Retention, dataset_load

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


# --- A file's mistakes, each named by where it is --------------------------------------------------------


def _refusal(tmp_path, text: str) -> tuple[str, str]:
    """The file `text` written as shop.yaml: its path, and the message dataset_load refuses it with."""
    path = tmp_path / "shop.yaml"
    path.write_text(text)
    with pytest.raises(DatasetError) as refused:
        dataset_load(path)
    return str(path), str(refused.value)


def test_a_file_that_is_not_yaml_is_refused_naming_the_file_and_where_the_yaml_breaks(tmp_path):
    path, message = _refusal(tmp_path, "system: shop\ntables: [customer\n")
    assert message.split("\n")[:2] == [f"{path}: not YAML: while parsing a flow sequence", '  in "<unicode string>", line 2, column 9:']


def test_each_mistake_of_a_file_is_on_a_line_of_its_own_named_by_its_path_from_the_top_of_the_file(tmp_path):
    path, message = _refusal(tmp_path, "system: shop\ntables:\n  - name: customer\n    identity: {email: email}\n"
                                       "    columns: {email: no_such_category}\n    erase: shred\n")
    assert message.split("\n") == [
        f"{path}: tables[0].columns.email.category: 'no_such_category' is not a category of the taxonomy",
        f"{path}: tables[0].erase: Input should be 'delete', 'null', 'mask' or 'keep'",
    ]


def test_a_setting_the_file_does_not_know_is_named_as_it_is_written(tmp_path):
    path, message = _refusal(tmp_path, "system: shop\nX-owner: data team\ntables:\n  - name: customer\n    identity: {email: email}\n"
                                       "    columns: {email: name_contact}\n")
    assert message == f"{path}: X-owner: is not a known setting"
