"""A period (an access request for some days only), applied by each connector that can date its data:
SQL tables by their `collected_at` column in the query (PostgreSQL, MariaDB, SQLite), an HTTP system's
listings by their `collected_at` and declared query parameters, stored files by when they were
stored; what cannot be dated comes whole, and the connector names it."""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from connectors.base import Identity, Period, Record
from connectors.content import ContentStorageConnector
from connectors.sql import BATCH, SqlConnector, dataset_load, with_driver
from estate.content_load import content_load
from estate.stores import estate_database_drop, estate_database_ensure, estate_database_url

from .test_http import ada, billing_connector, stripe  # noqa: F401 (stripe: a fixture)

UTC = dt.UTC
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
# January 2024 where the person is: from 2023-12-31 23:00 UTC up to 2024-01-31 23:00 UTC.
JANUARY = Period.of_days(dt.date(2024, 1, 1), dt.date(2024, 1, 31), BERLIN)


def test_a_period_of_days_runs_from_the_first_days_start_to_the_last_days_end_in_the_persons_zone():
    assert (JANUARY.start, JANUARY.end) == (dt.datetime(2023, 12, 31, 23, tzinfo=UTC), dt.datetime(2024, 1, 31, 23, tzinfo=UTC))
    assert not JANUARY.holds(dt.datetime(2023, 12, 31, 22, 59, 59, tzinfo=UTC))
    assert JANUARY.holds(dt.datetime(2023, 12, 31, 23, tzinfo=UTC))
    assert JANUARY.holds(dt.datetime(2024, 1, 31, 22, 59, 59, tzinfo=UTC))
    assert not JANUARY.holds(dt.datetime(2024, 1, 31, 23, tzinfo=UTC))
    assert JANUARY.holds(dt.date(2024, 1, 31)) and not JANUARY.holds(dt.date(2024, 2, 1))
    assert JANUARY.holds(None)  # what has no date cannot be left out


def test_a_period_open_at_one_end_holds_everything_on_that_side():
    since = Period.of_days(dt.date(2024, 1, 1), None, UTC)
    assert since.holds(dt.datetime(2099, 1, 1, tzinfo=UTC)) and not since.holds(dt.datetime(2023, 12, 31, 23, 59, tzinfo=UTC))
    until = Period.of_days(None, dt.date(2024, 1, 1), UTC)
    assert until.holds(dt.datetime(1970, 1, 1, tzinfo=UTC)) and not until.holds(dt.datetime(2024, 1, 2, tzinfo=UTC))


# --- SQL ------------------------------------------------------------------------------------------------


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dated.sqlite3'}"
    elif request.param == "mariadb":
        yield request.getfixturevalue("mariadb_url")
    else:
        estate_database_drop("dated")
        estate_database_ensure("dated")
        yield estate_database_url("dated")
        estate_database_drop("dated")


DATED = """\
system: shop
tables:
  - name: orders
    identity: {email: email}
    collected_at: placed_at
    columns: {item: interactions.account_history}
  - name: visits
    identity: {email: email}
    collected_at: day
    columns: {page: interactions.browse_history}
  - name: notes
    identity: {email: email}
    columns: {body: other_input}
"""


@pytest.fixture
def shop(database, tmp_path):
    time = "timestamptz" if database.startswith("postgresql") else "datetime"
    engine = sa.create_engine(with_driver(database))
    try:
        with engine.begin() as conn:
            for statement in (f"CREATE TABLE orders (id integer PRIMARY KEY, email varchar(200), item varchar(200), placed_at {time})",
                              "CREATE TABLE visits (id integer PRIMARY KEY, email varchar(200), page varchar(200), day date)",
                              "CREATE TABLE notes (id integer PRIMARY KEY, email varchar(200), body varchar(200))"):
                conn.execute(sa.text(statement))
            at = sa.column("placed_at", sa.DateTime(timezone=True))
            conn.execute(sa.table("orders", sa.column("id"), sa.column("email"), sa.column("item"), at).insert(), [
                {"id": 1, "email": "ann@example.com", "item": "before", "placed_at": dt.datetime(2023, 12, 31, 22, 30, tzinfo=UTC)},
                {"id": 2, "email": "ann@example.com", "item": "first hour", "placed_at": dt.datetime(2023, 12, 31, 23, 30, tzinfo=UTC)},
                {"id": 3, "email": "ann@example.com", "item": "last hour", "placed_at": dt.datetime(2024, 1, 31, 22, 30, tzinfo=UTC)},
                {"id": 4, "email": "ann@example.com", "item": "after", "placed_at": dt.datetime(2024, 1, 31, 23, 30, tzinfo=UTC)},
                {"id": 5, "email": "ann@example.com", "item": "undated", "placed_at": None},
            ])
            day = sa.column("day", sa.Date)
            conn.execute(sa.table("visits", sa.column("id"), sa.column("email"), sa.column("page"), day).insert(), [
                {"id": 1, "email": "ann@example.com", "page": "/31-dec", "day": dt.date(2023, 12, 31)},
                {"id": 2, "email": "ann@example.com", "page": "/1-jan", "day": dt.date(2024, 1, 1)},
                {"id": 3, "email": "ann@example.com", "page": "/31-jan", "day": dt.date(2024, 1, 31)},
                {"id": 4, "email": "ann@example.com", "page": "/1-feb", "day": dt.date(2024, 2, 1)},
            ])
            conn.execute(sa.text("INSERT INTO notes VALUES (1, 'ann@example.com', 'a note from 2019')"))
    finally:
        engine.dispose()
    path = tmp_path / "shop.yaml"
    path.write_text(DATED)
    connector = SqlConnector(name="shop", dataset=dataset_load(path), url=database, mask_key="k")
    yield connector
    connector.close()


def _shown(records: list[Record]) -> set[tuple[str, str]]:
    return {(record.system, next(iter(record.fields.values()))) for record in records}


def test_an_sql_system_gives_of_a_dated_table_only_the_rows_of_the_period_and_undated_tables_whole(shop):
    gathered = list(shop.gather_period(Identity("ann@example.com"), JANUARY))

    assert _shown(gathered) == {
        ("shop.orders", "first hour"), ("shop.orders", "last hour"), ("shop.orders", "undated"),
        ("shop.visits", "/1-jan"), ("shop.visits", "/31-jan"),
        ("shop.notes", "a note from 2019"),
    }
    assert shop.period_undated(frozenset({"interactions.account_history", "other_input"})) == ["shop.notes"]
    assert shop.period_undated(frozenset({"interactions.account_history"})) == []


def test_an_sql_system_asked_for_a_period_open_at_one_end_gives_every_row_on_that_side(shop):
    until_january = Period.of_days(None, dt.date(2024, 1, 31), BERLIN)
    since_january = Period.of_days(dt.date(2024, 1, 1), None, BERLIN)

    assert _shown(shop.gather_period(Identity("ann@example.com"), until_january)) == {
        ("shop.orders", "before"), ("shop.orders", "first hour"), ("shop.orders", "last hour"), ("shop.orders", "undated"),
        ("shop.visits", "/31-dec"), ("shop.visits", "/1-jan"), ("shop.visits", "/31-jan"),
        ("shop.notes", "a note from 2019"),
    }
    assert _shown(shop.gather_period(Identity("ann@example.com"), since_january)) == {
        ("shop.orders", "first hour"), ("shop.orders", "last hour"), ("shop.orders", "after"), ("shop.orders", "undated"),
        ("shop.visits", "/1-jan"), ("shop.visits", "/31-jan"), ("shop.visits", "/1-feb"),
        ("shop.notes", "a note from 2019"),
    }


def _orders_add(database: str, *rows: tuple[int, str, dt.datetime]) -> None:
    engine = sa.create_engine(with_driver(database))
    try:
        with engine.begin() as conn:
            conn.execute(sa.table("orders", sa.column("id"), sa.column("email"), sa.column("item"),
                                  sa.column("placed_at", sa.DateTime(timezone=True))).insert(),
                         [{"id": id_, "email": "ann@example.com", "item": item, "placed_at": at} for id_, item, at in rows])
    finally:
        engine.dispose()


def test_an_sql_period_holds_a_row_at_its_first_moment_and_not_one_at_the_moment_it_ends(shop, database):
    _orders_add(database, (6, "at the start", dt.datetime(2023, 12, 31, 23, tzinfo=UTC)), (7, "at the end", dt.datetime(2024, 1, 31, 23, tzinfo=UTC)))
    orders = {field for system, field in _shown(shop.gather_period(Identity("ann@example.com"), JANUARY)) if system == "shop.orders"}
    assert orders == {"at the start", "first hour", "last hour", "undated"}


def test_an_sql_period_applies_to_the_rows_past_a_tables_first_batch(shop, database):
    _orders_add(database, *((100 + n, f"january {n}", dt.datetime(2024, 1, 15, 12, tzinfo=UTC)) for n in range(BATCH + 5)),
                (99, "february", dt.datetime(2024, 2, 15, 12, tzinfo=UTC)))
    orders = [record.fields["item"] for record in shop.gather_period(Identity("ann@example.com"), JANUARY) if record.system == "shop.orders"]
    assert len(orders) == BATCH + 5 + 3 and "february" not in orders and "after" not in orders  # and first hour, last hour, undated


def test_an_sql_system_asked_without_a_period_gives_every_row(shop):
    assert len(list(shop.gather(Identity("ann@example.com")))) == 10


# --- HTTP -----------------------------------------------------------------------------------------------


def test_an_http_system_asks_by_its_period_parameters_and_keeps_only_the_items_dated_within(stripe):  # noqa: F811
    ada(stripe, "ada-period@example.com")
    connector = billing_connector(stripe.base_url)
    may_2_only = Period.of_days(dt.date(2024, 5, 2), dt.date(2024, 5, 31), UTC)
    stripe.calls.clear()
    try:
        gathered = list(connector.gather_period(Identity("ada-period@example.com"), may_2_only))
    finally:
        connector.close()

    # The customer (created 1 May) and the charge of 2 June are left out; the charge of 2 May stays.
    assert {(record.system, record.collected_at) for record in gathered} == {("billing.charges", dt.datetime(2024, 5, 2, 10, tzinfo=UTC))}
    charges = [unquote(call) for call in stripe.calls if call.startswith("GET /v1/charges")]
    assert charges and all("created[gte]=1714608000" in call and "created[lt]=1717200000" in call for call in charges)
    assert connector.period_undated(frozenset({"payment"})) == []


# --- Stored files ---------------------------------------------------------------------------------------


def test_stored_files_are_kept_by_when_they_were_stored(tmp_path):
    connector = ContentStorageConnector(name="docs", backend="django.core.files.storage.FileSystemStorage",
                                        storage_options={"location": str(tmp_path)})
    content_load(storage=connector.storage, subject_email="cleo@example.com", files=[
        {"path": "old.txt", "base64": "b2xk", "category": "content"}, {"path": "new.txt", "base64": "bmV3", "category": "content"}])
    for item in connector.gather(Identity("cleo@example.com")):
        stamp = dt.datetime(2023, 6, 1, tzinfo=UTC) if item.path == "old.txt" else dt.datetime(2024, 1, 15, tzinfo=UTC)
        os.utime(tmp_path / item.ref, (stamp.timestamp(), stamp.timestamp()))

    assert [item.path for item in connector.gather_period(Identity("cleo@example.com"), JANUARY)] == ["new.txt"]
    assert connector.period_undated(frozenset({"content"})) == []
