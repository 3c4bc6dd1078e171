"""connectors/sql.py on each database it is tested on: one shop schema on PostgreSQL, MariaDB and
SQLite, one system file over it, and the same records, receipts and masked values from each."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time

import pytest
import sqlalchemy as sa

from connectors.base import INFERRED, OBSERVED, PROVIDED, ErasureStep, Identity, Record, Source
from connectors.sql import BATCH, SqlConnector, dataset_load, with_driver
from estate.stores import estate_database_drop, estate_database_ensure, estate_database_url

UTC = dt.UTC


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def database(request, tmp_path):
    """An empty database of each kind; its URL. MariaDB's is spelt `mariadb://` here (the check's
    tests spell it `mysql://`), so that both of SQLAlchemy's names for it are tested."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    elif request.param == "mariadb":
        yield request.getfixturevalue("mariadb_url").replace("mysql://", "mariadb://", 1)
    else:
        estate_database_drop("dialects")
        estate_database_ensure("dialects")
        yield estate_database_url("dialects")
        estate_database_drop("dialects")


def _times(url: str) -> str:
    """The type of a time column: PostgreSQL's with a zone; the others have none, and hold UTC."""
    return "timestamptz" if url.startswith("postgresql") else "datetime"


def _run(url: str, *statements: str) -> None:
    engine = sa.create_engine(with_driver(url))
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _rows(url: str, **tables: list[dict]) -> None:
    """Rows inserted, their times (given in UTC) bound as times."""
    engine = sa.create_engine(with_driver(url))
    try:
        with engine.begin() as conn:
            for name, rows in tables.items():
                columns = [sa.column(c, sa.DateTime(timezone=True) if isinstance(v, dt.datetime) else None) for c, v in rows[0].items()]
                conn.execute(sa.table(name, *columns).insert(), rows)
    finally:
        engine.dispose()


def _select(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(with_driver(url))
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


class _OnMidsummer(SqlConnector):
    """The connector on 15 June 2026 at noon, UTC: retention counts back from then."""

    def now(self) -> dt.datetime:
        return dt.datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def connect(tmp_path):
    """A connector over `url` with the dataset `text`, the mask key `k`, whose clock is `at`'s
    (midsummer noon unless told); closed after the test."""
    made: list[SqlConnector] = []

    def make(url: str, text: str, at: type[SqlConnector] = _OnMidsummer) -> SqlConnector:
        path = tmp_path / "shop.yaml"
        path.write_text(text)
        made.append(at(name="shop", dataset=dataset_load(path), url=url, mask_key="k"))
        return made[-1]

    yield make
    for connector in made:
        connector.close()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- The shop -------------------------------------------------------------------------------------------

SCHEMA = [
    "CREATE TABLE customer (id integer PRIMARY KEY, email varchar(200) NOT NULL, full_name varchar(200) NOT NULL, phone varchar(40), "
    "card varchar(40), support_pin varchar(20), password_hash varchar(200), password_changed_at {time}, joined {time})",
    "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customer (id), total integer, placed_at {time} NOT NULL)",
    "CREATE TABLE order_line (order_id integer NOT NULL REFERENCES orders (id), line_no integer NOT NULL, item varchar(200), "
    "PRIMARY KEY (order_id, line_no))",
    "CREATE TABLE line_note (id integer PRIMARY KEY, order_id integer NOT NULL, line_no integer NOT NULL, note varchar(200), "
    "FOREIGN KEY (order_id, line_no) REFERENCES order_line (order_id, line_no))",
    "CREATE TABLE review (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customer (id), body varchar(200))",
]
SHOP = """\
system: shop
tables:
  - name: customer
    identity: {email: email}
    collected_at: joined
    erase: null
    columns:
      email: {category: name_contact, erase: mask}
      full_name: {category: name_contact, erase: mask}
      phone: name_contact
      card: {category: payment, transform: last4}
      support_pin: {category: other_input, erase: keep, reason: "Fraud checks need it"}
    secrets:
      password: {column: password_hash, category: credentials, changed_at: password_changed_at}
  - name: orders
    parent: {table: customer, column: customer_id}
    collected_at: placed_at
    columns: {total: payment}
    retain: {years: 6, basis: legal_obligation, reason: "Commercial law keeps orders", date_column: placed_at}
  - name: order_line
    primary_key: [order_id, line_no]
    parent: {table: orders, column: order_id}
    columns: {item: interactions.account_history}
  - name: line_note
    parent: {table: order_line, column: [order_id, line_no]}
    columns: {note: other_input}
  - name: review
    parent: {table: customer, column: customer_id}
    erase: keep
    reason: "Published reviews stay"
    columns: {body: feedback_ratings}
"""
JOINED = dt.datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
RECENT = dt.datetime(2025, 3, 1, 9, 30, tzinfo=UTC)  # inside the six years
OLD = dt.datetime(2018, 5, 20, 8, 0, tzinfo=UTC)  # past them


@pytest.fixture
def shop(database, connect):
    """The shop on each database: Ada (found by " Ada@Example.com", trimmed and folded), and Adá,
    whose email differs by an accent only and is not hers; a connector over it."""
    _run(database, *(statement.format(time=_times(database)) for statement in SCHEMA))
    _rows(database,
          customer=[{"id": 1, "email": " Ada@Example.com", "full_name": "Ada Lovelace", "phone": "+44 20 7946 0000", "card": "4111111111111111",
                     "support_pin": "4411", "password_hash": "pbkdf2$s3cret", "password_changed_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                     "joined": JOINED},
                    {"id": 2, "email": "adá@example.com", "full_name": "Adá Twin", "phone": "+44 1", "card": "5555555555554444",
                     "support_pin": "9", "password_hash": "pbkdf2$other", "password_changed_at": JOINED, "joined": JOINED}],
          orders=[{"id": 10, "customer_id": 1, "total": 120, "placed_at": RECENT}, {"id": 11, "customer_id": 1, "total": 80, "placed_at": OLD},
                  {"id": 20, "customer_id": 2, "total": 5, "placed_at": OLD}],
          order_line=[{"order_id": 11, "line_no": 2, "item": "cups"}, {"order_id": 11, "line_no": 1, "item": "tea"},
                      {"order_id": 10, "line_no": 1, "item": "kettle"}, {"order_id": 20, "line_no": 1, "item": "twin's"}],
          line_note=[{"id": 1, "order_id": 11, "line_no": 2, "note": "gift wrap"}, {"id": 2, "order_id": 10, "line_no": 1, "note": "fragile"},
                     {"id": 3, "order_id": 20, "line_no": 1, "note": "twin's"}],
          review=[{"id": 5, "customer_id": 1, "body": "Lovely tea"}, {"id": 6, "customer_id": 2, "body": "twin's"}])
    return database, connect(database, SHOP)


def test_gather_gives_the_same_records_on_each_database(shop):
    _, connector = shop
    assert list(connector.gather(Identity(email="ada@example.com"))) == [
        Record("name_contact", {"email": " Ada@Example.com", "full_name": "Ada Lovelace", "phone": "+44 20 7946 0000"}, "shop.customer", PROVIDED, JOINED),
        Record("payment", {"card": "**** 1111"}, "shop.customer", PROVIDED, JOINED),
        Record("other_input", {"support_pin": "4411"}, "shop.customer", PROVIDED, JOINED),
        Record("credentials", {"password": "set (never exported)", "password_last_changed": "2026-01-02T03:04:05+00:00"}, "shop.customer",
               PROVIDED, JOINED),
        Record("payment", {"total": 120, "retained_until": "2031-03-01T09:30:00+00:00", "retained_because": "Commercial law keeps orders"},
               "shop.orders", PROVIDED, RECENT, retained_until=dt.datetime(2031, 3, 1, 9, 30, tzinfo=UTC)),
        Record("payment", {"total": 80, "retained_until": "2024-05-20T08:00:00+00:00", "retained_because": "Commercial law keeps orders"},
               "shop.orders", PROVIDED, OLD, retained_until=dt.datetime(2024, 5, 20, 8, tzinfo=UTC)),
        Record("interactions.account_history", {"item": "kettle"}, "shop.order_line", PROVIDED, None),
        Record("interactions.account_history", {"item": "tea"}, "shop.order_line", PROVIDED, None),
        Record("interactions.account_history", {"item": "cups"}, "shop.order_line", PROVIDED, None),
        Record("other_input", {"note": "gift wrap"}, "shop.line_note", PROVIDED, None),
        Record("other_input", {"note": "fragile"}, "shop.line_note", PROVIDED, None),
        Record("feedback_ratings", {"body": "Lovely tea"}, "shop.review", PROVIDED, None),
    ]


def test_times_come_out_in_utc(shop):
    _, connector = shop
    times = [r.collected_at for r in connector.gather(Identity(email="ada@example.com")) if r.collected_at]
    assert {t.utcoffset() for t in times} == {dt.timedelta(0)}


def test_secrets_never_leave_the_database(shop):
    _, connector = shop
    everything = repr(list(connector.gather(Identity(email="ada@example.com"))))
    assert "s3cret" not in everything and "pbkdf2" not in everything and "4111111111111111" not in everything


# Children before parents: the review is kept; the notes and lines deleted; the recent order kept for
# six years, the old one deleted; the customer's columns masked, nulled and kept.
ERASED = [
    ErasureStep("shop.review", "kept", "feedback_ratings", 1, "Published reviews stay"),
    ErasureStep("shop.line_note", "deleted", "other_input", 2),
    ErasureStep("shop.order_line", "deleted", "interactions.account_history", 3),
    ErasureStep("shop.orders", "kept", "payment", 1, "Commercial law keeps orders (legal_obligation)", dt.date(2031, 3, 1)),
    ErasureStep("shop.orders", "deleted", "payment", 1),
    ErasureStep("shop.customer", "kept", "other_input", 1, "Fraud checks need it"),
    ErasureStep("shop.customer", "nulled", "credentials", 1),
    ErasureStep("shop.customer", "masked", "name_contact", 1),
    ErasureStep("shop.customer", "nulled", "name_contact", 1),
    ErasureStep("shop.customer", "nulled", "payment", 1),
]
BEFORE = {
    "SELECT email, full_name, phone, card, support_pin, password_hash FROM customer ORDER BY id": [
        (" Ada@Example.com", "Ada Lovelace", "+44 20 7946 0000", "4111111111111111", "4411", "pbkdf2$s3cret"),
        ("adá@example.com", "Adá Twin", "+44 1", "5555555555554444", "9", "pbkdf2$other")],
    "SELECT id FROM orders ORDER BY id": [(10,), (11,), (20,)],
    "SELECT order_id, line_no FROM order_line ORDER BY order_id, line_no": [(10, 1), (11, 1), (11, 2), (20, 1)],
    "SELECT id FROM line_note ORDER BY id": [(1,), (2,), (3,)],
    "SELECT id FROM review ORDER BY id": [(5,), (6,)],
}


def test_erase_preview_gives_the_steps_of_the_erasure_and_changes_nothing(shop):
    database, connector = shop
    assert connector.erase_preview(Identity(email="ada@example.com")).steps == ERASED
    assert {sql: _select(database, sql) for sql in BEFORE} == BEFORE


def test_erase_deletes_nulls_masks_and_keeps_the_same_on_each_database_and_leaves_the_twin_alone(shop):
    database, connector = shop
    assert connector.erase(Identity(email="ada@example.com")).steps == ERASED
    assert {sql: _select(database, sql) for sql in BEFORE} == {
        "SELECT email, full_name, phone, card, support_pin, password_hash FROM customer ORDER BY id": [
            (_sha256("k Ada@Example.com"), _sha256("kAda Lovelace"), None, None, "4411", None),
            ("adá@example.com", "Adá Twin", "+44 1", "5555555555554444", "9", "pbkdf2$other")],
        "SELECT id FROM orders ORDER BY id": [(10,), (20,)],
        "SELECT order_id, line_no FROM order_line ORDER BY order_id, line_no": [(20, 1)],
        "SELECT id FROM line_note ORDER BY id": [(3,)],
        "SELECT id FROM review ORDER BY id": [(5,), (6,)],
    }


def test_a_row_whose_children_stay_is_kept_when_its_table_is_deleted(shop, connect):
    database, _ = shop
    customer = SHOP[SHOP.index("  - name: customer"):SHOP.index("  - name: orders")]
    deleted = SHOP.replace(customer, "  - name: customer\n    identity: {email: email}\n"
                                     "    columns: {email: name_contact, card: {category: payment, transform: last4}}\n")
    # The customer's review is kept by the file and its recent order by the retention rule.
    assert connect(database, deleted).erase(Identity(email="ada@example.com")).steps == [
        *ERASED[:5],
        ErasureStep("shop.customer", "kept", "name_contact", 1, "kept while records under it are kept"),
        ErasureStep("shop.customer", "kept", "payment", 1, "kept while records under it are kept"),
    ]
    assert _select(database, "SELECT id, email FROM customer ORDER BY id") == [(1, " Ada@Example.com"), (2, "adá@example.com")]


def test_rows_with_a_composite_key_are_read_on_past_a_batch_in_key_order(shop):
    database, connector = shop
    # After 10/1, 11/1 and 11/2: lines 10/2 to 10/503 and 11/3 to 11/503, inserted last first.
    lines = [{"order_id": order, "line_no": line, "item": f"{order}/{line}"} for order, first in ((10, 2), (11, 3)) for line in range(first, 504)]
    _rows(database, order_line=lines[::-1])
    items = [r.fields["item"] for r in connector.gather(Identity(email="ada@example.com")) if r.system == "shop.order_line"]
    # kettle is 10/1 and tea 11/1; past the first batch the rest is streamed on from the last key read.
    assert len(items) == BATCH + 6
    assert items[:3] == ["kettle", "10/2", "10/3"]
    assert items[BATCH // 2 + 2: BATCH // 2 + 5] == ["10/503", "tea", "cups"]
    assert items[-2:] == ["11/502", "11/503"]


# --- Masking: the same digits on every database ----------------------------------------------------------

UPPER_HEX = "0123456789ABCDEF" * 4  # looks like a mask, but a mask is lower case: it is masked
LOWER_HEX = "0123456789abcdef" * 4  # a mask already: left alone


def test_a_masked_value_is_the_same_keyed_sha256_on_each_database_and_a_mask_is_not_masked_again(database, connect):
    _run(database, "CREATE TABLE person (id integer PRIMARY KEY, email varchar(200) NOT NULL, name varchar(200), note varchar(200))")
    _rows(database, person=[{"id": 1, "email": "zoe@example.com", "name": "Zoë Ådå", "note": None},
                            {"id": 2, "email": "zoe@example.com", "name": UPPER_HEX, "note": LOWER_HEX},
                            {"id": 3, "email": "zoe@example.com", "name": LOWER_HEX, "note": None}])
    connector = connect(database, "system: shop\ntables:\n  - name: person\n    identity: {email: email}\n    erase: mask\n"
                                  "    columns: {name: name_contact, note: other_input}\n")
    assert connector.erase(Identity(email="zoe@example.com")).erased == {"name_contact": 2, "other_input": 2}
    assert _select(database, "SELECT name, note FROM person ORDER BY id") == [
        (hashlib.sha256("kZoë Ådå".encode()).hexdigest(), None),
        (hashlib.sha256(f"k{UPPER_HEX}".encode()).hexdigest(), hashlib.sha256(f"k{LOWER_HEX}".encode()).hexdigest()),
        (LOWER_HEX, None),
    ]
    assert connector.erase(Identity(email="zoe@example.com")).erased == {}


# --- Exact identities, and times a MariaDB session gives in its own zone ---------------------------------


def test_an_exact_identity_matches_byte_for_byte_whatever_the_columns_collation(database, connect):
    # MariaDB's default collation takes "L-7" for "l-7" and "Jose" for "José"; the lookup does not.
    _run(database, "CREATE TABLE loyalty (id integer PRIMARY KEY, card varchar(20), points integer)")
    _rows(database, loyalty=[{"id": 1, "card": "L-7", "points": 1}, {"id": 2, "card": "l-7", "points": 2},
                             {"id": 3, "card": "José", "points": 3}, {"id": 4, "card": "Jose", "points": 4}])
    connector = connect(database, "system: shop\ntables:\n  - name: loyalty\n    identity: {loyalty_card: card}\n"
                                  "    columns: {points: subscription}\n")
    found = connector.gather(Identity(email="nobody@example.com", ids={"loyalty_card": ["l-7", "José"]}))
    assert [r.fields for r in found] == [{"points": 2}, {"points": 3}]


def test_mariadb_timestamps_come_out_in_utc_whatever_the_sessions_zone(mariadb_url, connect):
    """A TIMESTAMP is given in the session's zone: here +05:00 from the start, as on a server in
    that zone, for the writer and for the connector alike."""
    zoned = sa.engine.make_url(mariadb_url).update_query_dict({"init_command": "SET time_zone = '+05:00'"}).render_as_string(hide_password=False)
    _run(zoned, "CREATE TABLE visit (id integer PRIMARY KEY, email varchar(200) NOT NULL, seen timestamp NULL)",
         "INSERT INTO visit VALUES (1, 'kim@example.com', '2026-01-15 15:00:00')")
    connector = connect(zoned, "system: shop\ntables:\n  - name: visit\n    identity: {email: email}\n    collected_at: seen\n"
                                     "    columns: {seen: interests}\n")
    assert list(connector.gather(Identity(email="kim@example.com"))) == [
        Record("interests", {"seen": "2026-01-15T10:00:00+00:00"}, "shop.visit", PROVIDED, dt.datetime(2026, 1, 15, 10, 0, tzinfo=UTC))]


def test_a_url_naming_only_its_database_is_reached_through_the_driver_the_product_ships():
    assert with_driver("postgresql://u:p@db/shop") == "postgresql+psycopg://u:p@db/shop"
    assert with_driver("mysql://u:p@db/shop") == "mysql+pymysql://u:p@db/shop"
    assert with_driver("mariadb://u:p@db/shop") == "mariadb+pymysql://u:p@db/shop"
    assert with_driver("mysql+mysqldb://u:p@db/shop") == "mysql+mysqldb://u:p@db/shop"
    assert with_driver("sqlite:///shop.sqlite3") == "sqlite:///shop.sqlite3"


# --- Identities a system provides, partial previews, days, cleared times and clocks in other zones ----------


def test_identities_a_system_provides_are_distinct_in_order_and_leave_out_empty_values(database, connect):
    _run(database, "CREATE TABLE card (id integer PRIMARY KEY, email varchar(200) NOT NULL, card_no varchar(20))")
    _rows(database, card=[{"id": 1, "email": "ada@example.com", "card_no": "L-30"}, {"id": 2, "email": "ada@example.com", "card_no": None},
                          {"id": 3, "email": "ada@example.com", "card_no": "L-4"}, {"id": 4, "email": "ada@example.com", "card_no": "L-30"},
                          {"id": 5, "email": "ada@example.com", "card_no": "L-12"}, {"id": 6, "email": "bob@example.com", "card_no": "L-1"}])
    connector = connect(database, "system: shop\ntables:\n  - name: card\n    identity: {email: email}\n    provides: {loyalty_card: card_no}\n"
                                  "    columns: {card_no: subscription}\n")
    assert connector.identities_found(Identity(email="ada@example.com")) == {"loyalty_card": ["L-12", "L-30", "L-4"]}


def test_a_preview_of_a_partial_erasure_gives_only_the_requested_categories_steps_and_changes_nothing(shop):
    database, connector = shop
    assert connector.erase_preview(Identity(email="ada@example.com"), frozenset({"other_input"})).steps == [
        ErasureStep("shop.line_note", "deleted", "other_input", 2),
        ErasureStep("shop.customer", "kept", "other_input", 1, "Fraud checks need it"),
    ]
    assert {sql: _select(database, sql) for sql in BEFORE} == BEFORE


def test_a_retention_rule_dated_by_a_day_keeps_a_row_until_that_day_years_on(database, connect):
    _run(database, "CREATE TABLE invoice (id integer PRIMARY KEY, email varchar(200) NOT NULL, issued date NOT NULL, total integer)")
    _rows(database, invoice=[{"id": 1, "email": "ada@example.com", "issued": dt.date(2021, 3, 1), "total": 120},
                             {"id": 2, "email": "ada@example.com", "issued": dt.date(2019, 1, 1), "total": 80}])
    connector = connect(database, "system: shop\ntables:\n  - name: invoice\n    identity: {email: email}\n    columns: {total: payment}\n"
                                  "    retain: {years: 6, basis: legal_obligation, reason: Tax law, date_column: issued}\n")
    assert connector.erase(Identity(email="ada@example.com")).steps == [
        ErasureStep("shop.invoice", "kept", "payment", 1, "Tax law (legal_obligation)", dt.date(2027, 3, 1)),
        ErasureStep("shop.invoice", "deleted", "payment", 1),
    ]
    assert _select(database, "SELECT id FROM invoice ORDER BY id") == [(1,)]


def test_a_time_column_the_file_clears_is_nulled_on_each_database(database, connect):
    _run(database, f"CREATE TABLE visit (id integer PRIMARY KEY, email varchar(200) NOT NULL, seen {_times(database)}, page varchar(200))")
    _rows(database, visit=[{"id": 1, "email": "ada@example.com", "seen": JOINED, "page": "/tea"}])
    connector = connect(database, "system: shop\ntables:\n  - name: visit\n    identity: {email: email}\n    erase: null\n"
                                  "    columns: {seen: interactions.browse_history, page: interactions.browse_history}\n")
    assert connector.erase(Identity(email="ada@example.com")).erased == {"interactions.browse_history": 1}
    assert _select(database, "SELECT email, seen, page FROM visit") == [("ada@example.com", None, None)]


class _OnMidsummerInKarachi(SqlConnector):
    """The connector on 15 June 2026 at noon UTC, its clock giving the time in Karachi's zone (UTC+05:00)."""

    def now(self) -> dt.datetime:
        return dt.datetime(2026, 6, 15, 17, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))


@pytest.fixture
def host_in_kolkata():
    """The test process's own time zone Kolkata's (UTC+05:30), as a worker host's may be; as it was after."""
    was = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    yield
    if was is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = was
    time.tzset()


def test_retention_counts_back_the_same_whatever_zone_the_clock_and_the_host_give_times_in(database, connect, host_in_kolkata):
    _run(database, f"CREATE TABLE visit (id integer PRIMARY KEY, email varchar(200) NOT NULL, seen {_times(database)} NOT NULL)")
    # Six years before noon UTC on 15 June 2026: the 14:00 visit is inside them, the 11:00 one past them.
    _rows(database, visit=[{"id": 1, "email": "ada@example.com", "seen": dt.datetime(2020, 6, 15, 14, 0, tzinfo=UTC)},
                           {"id": 2, "email": "ada@example.com", "seen": dt.datetime(2020, 6, 15, 11, 0, tzinfo=UTC)}])
    connector = connect(database, "system: shop\ntables:\n  - name: visit\n    identity: {email: email}\n    columns: {seen: interests}\n"
                                  "    retain: {years: 6, basis: legitimate_interests, reason: Fraud checks, date_column: seen}\n",
                        at=_OnMidsummerInKarachi)
    assert connector.erase(Identity(email="ada@example.com")).steps == [
        ErasureStep("shop.visit", "kept", "interests", 1, "Fraud checks (legitimate_interests)", dt.date(2026, 6, 15)),
        ErasureStep("shop.visit", "deleted", "interests", 1),
    ]
    assert _select(database, "SELECT id FROM visit") == [(1,)]


def test_rows_that_name_their_own_source_are_recorded_under_it(database, connect):
    _run(database, "CREATE TABLE interest (id integer PRIMARY KEY, email varchar(200) NOT NULL, topic varchar(200), origin varchar(20))",
         "CREATE TABLE bought (id integer PRIMARY KEY, email varchar(200) NOT NULL, segment varchar(200), vendor varchar(200))")
    _rows(database, interest=[{"id": 1, "email": "ada@example.com", "topic": "jazz", "origin": "observed"},
                              {"id": 2, "email": "ada@example.com", "topic": "tea", "origin": "inferred"}],
          bought=[{"id": 1, "email": "ada@example.com", "segment": "urban", "vendor": "Northwind Insights"}])
    connector = connect(database, "system: shop\ntables:\n  - name: interest\n    identity: {email: email}\n    source_column: origin\n"
                                  "    columns: {topic: interests}\n  - name: bought\n    identity: {email: email}\n    source: third_party\n"
                                  "    source_name_column: vendor\n    columns: {segment: demographic}\n")
    assert list(connector.gather(Identity(email="ada@example.com"))) == [
        Record("interests", {"topic": "jazz"}, "shop.interest", OBSERVED, None),
        Record("interests", {"topic": "tea"}, "shop.interest", INFERRED, None),
        Record("demographic", {"segment": "urban"}, "shop.bought", Source("third_party", "Northwind Insights"), None),
    ]


# --- What a partial erasure deletes, and what it only clears ----------------------------------------------


def test_a_partial_erasure_of_a_table_holding_other_categories_too_clears_only_the_requested_columns(database, connect):
    _run(database, "CREATE TABLE person (id integer PRIMARY KEY, email varchar(200) NOT NULL, name varchar(200), card varchar(40))")
    _rows(database, person=[{"id": 1, "email": "ada@example.com", "name": "Ada Lovelace", "card": "4111111111111111"}])
    connector = connect(database, "system: shop\ntables:\n  - name: person\n    identity: {email: email}\n"
                                  "    columns: {name: name_contact, card: payment}\n")
    assert connector.erase(Identity(email="ada@example.com"), frozenset({"payment"})).steps == [ErasureStep("shop.person", "nulled", "payment", 1)]
    assert _select(database, "SELECT id, email, name, card FROM person") == [(1, "ada@example.com", "Ada Lovelace", None)]


def test_a_row_whose_own_categories_are_all_requested_is_cleared_not_deleted_while_its_children_hold_others(database, connect):
    _run(database, "CREATE TABLE person (id integer PRIMARY KEY, email varchar(200) NOT NULL, name varchar(200))",
         "CREATE TABLE note (id integer PRIMARY KEY, person_id integer NOT NULL REFERENCES person (id), body varchar(200))")
    _rows(database, person=[{"id": 1, "email": "ada@example.com", "name": "Ada Lovelace"}], note=[{"id": 7, "person_id": 1, "body": "call back"}])
    connector = connect(database, "system: shop\ntables:\n  - name: person\n    identity: {email: email}\n    columns: {name: name_contact}\n"
                                  "  - name: note\n    parent: {table: person, column: person_id}\n    columns: {body: other_input}\n")
    assert connector.erase(Identity(email="ada@example.com"), frozenset({"name_contact"})).steps == [
        ErasureStep("shop.person", "nulled", "name_contact", 1)]
    assert _select(database, "SELECT id, email, name FROM person") == [(1, "ada@example.com", None)]
    assert _select(database, "SELECT id, person_id, body FROM note") == [(7, 1, "call back")]


def test_a_row_stays_while_a_child_is_kept_by_a_retention_rule_to_the_second(database, connect):
    _run(database, "CREATE TABLE person (id integer PRIMARY KEY, email varchar(200) NOT NULL, name varchar(200))",
         f"CREATE TABLE orders (id integer PRIMARY KEY, person_id integer NOT NULL REFERENCES person (id), total integer, "
         f"placed_at {_times(database)})")
    # Six years to the second before midsummer noon: the order is still kept, and so is the person it hangs from.
    _rows(database, person=[{"id": 1, "email": "ada@example.com", "name": "Ada Lovelace"}],
          orders=[{"id": 10, "person_id": 1, "total": 120, "placed_at": dt.datetime(2020, 6, 15, 12, 0, tzinfo=UTC)}])
    connector = connect(database, "system: shop\ntables:\n  - name: person\n    identity: {email: email}\n    columns: {name: name_contact}\n"
                                  "  - name: orders\n    parent: {table: person, column: person_id}\n    columns: {total: payment}\n"
                                  "    retain: {years: 6, basis: legal_obligation, reason: Commercial law keeps orders, date_column: placed_at}\n")
    assert connector.erase(Identity(email="ada@example.com")).steps == [
        ErasureStep("shop.orders", "kept", "payment", 1, "Commercial law keeps orders (legal_obligation)", dt.date(2026, 6, 15)),
        ErasureStep("shop.person", "kept", "name_contact", 1, "kept while records under it are kept"),
    ]
    assert [_select(database, f"SELECT id FROM {table}") for table in ("orders", "person")] == [[(10,)], [(1,)]]


def test_a_row_stays_while_a_grandchild_the_file_keeps_hangs_from_a_child_past_its_retention(database, connect):
    _run(database, "CREATE TABLE person (id integer PRIMARY KEY, email varchar(200) NOT NULL, name varchar(200))",
         f"CREATE TABLE orders (id integer PRIMARY KEY, person_id integer NOT NULL REFERENCES person (id), total integer, "
         f"placed_at {_times(database)})",
         "CREATE TABLE complaint (id integer PRIMARY KEY, order_id integer NOT NULL REFERENCES orders (id), body varchar(200))")
    _rows(database, person=[{"id": 1, "email": "ada@example.com", "name": "Ada Lovelace"}],
          orders=[{"id": 10, "person_id": 1, "total": 80, "placed_at": OLD}], complaint=[{"id": 20, "order_id": 10, "body": "cold tea"}])
    connector = connect(database, "system: shop\ntables:\n  - name: person\n    identity: {email: email}\n    columns: {name: name_contact}\n"
                                  "  - name: orders\n    parent: {table: person, column: person_id}\n    columns: {total: payment}\n"
                                  "    retain: {years: 6, basis: legal_obligation, reason: Commercial law keeps orders, date_column: placed_at}\n"
                                  "  - name: complaint\n    parent: {table: orders, column: order_id}\n    erase: keep\n    reason: Complaints stay\n"
                                  "    columns: {body: feedback_ratings}\n")
    assert connector.erase(Identity(email="ada@example.com")).steps == [
        ErasureStep("shop.complaint", "kept", "feedback_ratings", 1, "Complaints stay"),
        ErasureStep("shop.orders", "kept", "payment", 1, "kept while records under it are kept"),
        ErasureStep("shop.person", "kept", "name_contact", 1, "kept while records under it are kept"),
    ]
    assert [_select(database, f"SELECT id FROM {table}") for table in ("complaint", "orders", "person")] == [[(20,)], [(10,)], [(1,)]]


def test_a_partial_erasure_of_rows_that_name_their_own_category_deletes_only_the_subjects_rows_of_the_requested_ones(database, connect):
    _run(database, "CREATE TABLE bought (id integer PRIMARY KEY, email varchar(200) NOT NULL, category varchar(100) NOT NULL, data varchar(200))")
    _rows(database, bought=[{"id": 1, "email": "ada@example.com", "category": "demographic", "data": '{"band": "B"}'},
                            {"id": 2, "email": "ada@example.com", "category": "interests", "data": '{"topic": "jazz"}'},
                            {"id": 3, "email": "bob@example.com", "category": "demographic", "data": '{"band": "C"}'}])
    connector = connect(database, "system: shop\ntables:\n  - name: bought\n    identity: {email: email}\n"
                                  "    category_column: category\n    data_column: data\n")
    assert connector.erase(Identity(email="ada@example.com"), frozenset({"demographic"})).steps == [
        ErasureStep("shop.bought", "deleted", "demographic", 1)]
    assert _select(database, "SELECT id, email, category FROM bought ORDER BY id") == [
        (2, "ada@example.com", "interests"), (3, "bob@example.com", "demographic")]


def test_a_partial_erasure_keeps_a_row_naming_its_own_category_while_a_child_of_a_category_not_asked_points_at_it(database, connect):
    """Deleting the row would orphan its child, or be refused: the child is not being erased."""
    _run(database, "CREATE TABLE bought (id integer PRIMARY KEY, email varchar(200) NOT NULL, category varchar(100) NOT NULL, data varchar(200))",
         "CREATE TABLE bought_note (id integer PRIMARY KEY, bought_id integer NOT NULL REFERENCES bought (id), note varchar(200))")
    _rows(database, bought=[{"id": 1, "email": "ada@example.com", "category": "demographic", "data": '{"band": "B"}'},
                            {"id": 2, "email": "ada@example.com", "category": "demographic", "data": '{"band": "C"}'}],
          bought_note=[{"id": 10, "bought_id": 1, "note": "asked about jazz"}])
    connector = connect(database, "system: shop\ntables:\n  - name: bought\n    identity: {email: email}\n"
                                  "    category_column: category\n    data_column: data\n"
                                  "  - name: bought_note\n    parent: {table: bought, column: bought_id}\n    columns: {note: other_input}\n")
    assert connector.erase(Identity(email="ada@example.com"), frozenset({"demographic"})).steps == [
        ErasureStep("shop.bought", "kept", "demographic", 1, "kept while records under it are kept"),
        ErasureStep("shop.bought", "deleted", "demographic", 1)]
    assert _select(database, "SELECT id FROM bought") == [(1,)]
    assert _select(database, "SELECT id, bought_id FROM bought_note") == [(10, 1)]


# --- The order an erasure goes in, where the database declares no key -------------------------------------


def test_a_child_is_erased_before_its_parent_though_no_key_ties_them_and_another_tables_key_holds_the_child_back(database, connect):
    # rental.customer_id has no foreign key; payment.rental_id has one, so rental waits for payment; customer must wait for rental too,
    # or rental's row, found through its customer, would no longer be found.
    _run(database, "CREATE TABLE customer (id integer PRIMARY KEY, email varchar(200) NOT NULL, name varchar(200))",
         "CREATE TABLE rental (id integer PRIMARY KEY, customer_id integer NOT NULL, film varchar(200), card_no varchar(20))",
         "CREATE TABLE payment (id integer PRIMARY KEY, email varchar(200) NOT NULL, rental_id integer NOT NULL REFERENCES rental (id), "
         "amount integer)")
    _rows(database, customer=[{"id": 1, "email": "ada@example.com", "name": "Ada Lovelace"}],
          rental=[{"id": 10, "customer_id": 1, "film": "Harbour Lights", "card_no": "L-7"}],
          payment=[{"id": 20, "email": "ada@example.com", "rental_id": 10, "amount": 3}])
    connector = connect(database, "system: shop\ntables:\n  - name: payment\n    identity: {email: email}\n    columns: {amount: payment}\n"
                                  "  - name: customer\n    identity: {email: email}\n    columns: {name: name_contact}\n"
                                  "  - name: rental\n    parent: {table: customer, column: customer_id}\n    provides: {loyalty_card: card_no}\n"
                                  "    columns: {film: interactions.account_history}\n")
    assert connector.erase(Identity(email="ada@example.com")).steps == [
        ErasureStep("shop.payment", "deleted", "payment", 1),
        ErasureStep("shop.rental", "deleted", "interactions.account_history", 1),
        ErasureStep("shop.customer", "deleted", "name_contact", 1),
    ]
    assert [_select(database, f"SELECT count(*) FROM {table}") for table in ("payment", "rental", "customer")] == [[(0,)], [(0,)], [(0,)]]


def test_a_table_providing_an_identity_is_erased_before_the_table_found_by_it_though_no_key_ties_them(database, connect):
    _run(database, "CREATE TABLE customer (id integer PRIMARY KEY, email varchar(200) NOT NULL, address_id integer NOT NULL)",
         "CREATE TABLE note (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customer (id), body varchar(200))",
         "CREATE TABLE address (address_id integer PRIMARY KEY, street varchar(200))")
    _rows(database, customer=[{"id": 1, "email": "ada@example.com", "address_id": 7}], note=[{"id": 5, "customer_id": 1, "body": "call back"}],
          address=[{"address_id": 7, "street": "1 Mill Street"}])
    connector = connect(database, "system: shop\ntables:\n  - name: customer\n    identity: {email: email}\n    provides: {home: address_id}\n"
                                  "    columns: {email: name_contact}\n  - name: note\n    parent: {table: customer, column: customer_id}\n"
                                  "    columns: {body: other_input}\n  - name: address\n    primary_key: address_id\n"
                                  "    identity: {home: address_id}\n"
                                  "    columns: {street: name_contact}\n")
    assert connector.erase(Identity(email="ada@example.com")).steps == [  # children first, then the customer, then its address
        ErasureStep("shop.note", "deleted", "other_input", 1),
        ErasureStep("shop.customer", "deleted", "name_contact", 1),
        ErasureStep("shop.address", "deleted", "name_contact", 1),
    ]


def test_tables_whose_keys_point_at_each_other_are_erased_in_the_files_order_children_first(database, connect):
    # customer.fav_order_id points at orders and orders.customer_id at customer: a cycle, which no order of the two satisfies.
    cycle = "fav_order_id integer REFERENCES orders (id)" if database.startswith("sqlite") else "fav_order_id integer"
    _run(database, f"CREATE TABLE customer (id integer PRIMARY KEY, email varchar(200) NOT NULL, name varchar(200), {cycle})",
         "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customer (id), total integer)",
         "CREATE TABLE review (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customer (id), body varchar(200))",
         *([] if database.startswith("sqlite") else ["ALTER TABLE customer ADD FOREIGN KEY (fav_order_id) REFERENCES orders (id)"]))
    _rows(database, customer=[{"id": 1, "email": "ada@example.com", "name": "Ada Lovelace", "fav_order_id": None}],
          orders=[{"id": 10, "customer_id": 1, "total": 80}], review=[{"id": 5, "customer_id": 1, "body": "Lovely tea"}])
    connector = connect(database, "system: shop\ntables:\n  - name: customer\n    identity: {email: email}\n    columns: {name: name_contact}\n"
                                  "  - name: orders\n    parent: {table: customer, column: customer_id}\n    columns: {total: payment}\n"
                                  "  - name: review\n    parent: {table: customer, column: customer_id}\n    columns: {body: feedback_ratings}\n")
    assert connector.erase(Identity(email="ada@example.com")).steps == [  # the review first, then the cycle in the file's order, children first
        ErasureStep("shop.review", "deleted", "feedback_ratings", 1),
        ErasureStep("shop.orders", "deleted", "payment", 1),
        ErasureStep("shop.customer", "deleted", "name_contact", 1),
    ]
    assert [_select(database, f"SELECT count(*) FROM {table}") for table in ("review", "orders", "customer")] == [[(0,)], [(0,)], [(0,)]]


def test_a_column_the_file_keeps_is_counted_as_kept_only_where_it_holds_a_value(database, connect):
    _run(database, "CREATE TABLE person (id integer PRIMARY KEY, email varchar(200) NOT NULL, name varchar(200), pin varchar(20))")
    _rows(database, person=[{"id": 1, "email": "ada@example.com", "name": "Ada", "pin": "4411"},
                            {"id": 2, "email": "ada@example.com", "name": "Ada L", "pin": None}])
    connector = connect(database, "system: shop\ntables:\n  - name: person\n    identity: {email: email}\n    erase: null\n"
                                  "    columns: {name: name_contact, pin: {category: other_input, erase: keep, reason: Fraud checks need it}}\n")
    assert connector.erase(Identity(email="ada@example.com")).steps == [
        ErasureStep("shop.person", "kept", "other_input", 1, "Fraud checks need it"), ErasureStep("shop.person", "nulled", "name_contact", 2)]


def test_a_column_cleared_by_null_is_cleared_though_its_value_looks_like_a_mask(database, connect):
    _run(database, "CREATE TABLE person (id integer PRIMARY KEY, email varchar(200) NOT NULL, token varchar(200))")
    _rows(database, person=[{"id": 1, "email": "ada@example.com", "token": LOWER_HEX}])
    connector = connect(database, "system: shop\ntables:\n  - name: person\n    identity: {email: email}\n    erase: null\n"
                                  "    columns: {token: credentials}\n")
    assert connector.erase(Identity(email="ada@example.com")).steps == [ErasureStep("shop.person", "nulled", "credentials", 1)]
    assert _select(database, "SELECT id, token FROM person") == [(1, None)]


class _InTheAfternoon(SqlConnector):
    """The connector on 15 June 2026 at 16:00 UTC: already the 16th in Tokyo."""

    def now(self) -> dt.datetime:
        return dt.datetime(2026, 6, 15, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_row_dated_by_a_day_is_kept_until_that_day_in_utc_whatever_zone_the_postgresql_session_is_in(database, connect):
    _run(database, "CREATE TABLE invoice (id integer PRIMARY KEY, email varchar(200) NOT NULL, issued date NOT NULL, total integer)")
    _rows(database, invoice=[{"id": 1, "email": "ada@example.com", "issued": dt.date(2020, 6, 16), "total": 120},
                             {"id": 2, "email": "ada@example.com", "issued": dt.date(2020, 6, 15), "total": 80}])
    in_tokyo = sa.engine.make_url(database).update_query_dict({"options": "-c TimeZone=Asia/Tokyo"}).render_as_string(hide_password=False)
    connector = connect(in_tokyo, "system: shop\ntables:\n  - name: invoice\n    identity: {email: email}\n    columns: {total: payment}\n"
                                  "    retain: {years: 6, basis: legal_obligation, reason: Tax law, date_column: issued}\n", at=_InTheAfternoon)
    # kept until 16 June 2026 (UTC), which has not begun; the one of the 15th has ended
    assert connector.erase(Identity(email="ada@example.com")).steps == [
        ErasureStep("shop.invoice", "kept", "payment", 1, "Tax law (legal_obligation)", dt.date(2026, 6, 16)),
        ErasureStep("shop.invoice", "deleted", "payment", 1),
    ]
    assert _select(database, "SELECT id FROM invoice ORDER BY id") == [(1,)]


def test_a_row_the_retention_rule_cannot_date_is_erased_and_counted_not_left_unmentioned(database, connect):
    _run(database, "CREATE TABLE invoice (id integer PRIMARY KEY, email varchar(200) NOT NULL, issued date, total integer)")
    _rows(database, invoice=[{"id": 1, "email": "ada@example.com", "issued": dt.date(2021, 3, 1), "total": 120},
                             {"id": 2, "email": "ada@example.com", "issued": None, "total": 80},
                             {"id": 3, "email": "bob@example.com", "issued": None, "total": 10}])
    connector = connect(database, "system: shop\ntables:\n  - name: invoice\n    identity: {email: email}\n    columns: {total: payment}\n"
                                  "    retain: {years: 6, basis: legal_obligation, reason: Tax law, date_column: issued}\n")
    assert connector.erase(Identity(email="ada@example.com")).steps == [
        ErasureStep("shop.invoice", "kept", "payment", 1, "Tax law (legal_obligation)", dt.date(2027, 3, 1)),
        ErasureStep("shop.invoice", "deleted", "payment", 1),
    ]
    assert _select(database, "SELECT id FROM invoice ORDER BY id") == [(1,), (3,)]


def test_a_row_stays_while_a_child_the_file_clears_or_never_erases_still_hangs_from_it(database, connect):
    _run(database, "CREATE TABLE person (id integer PRIMARY KEY, email varchar(200) NOT NULL, name varchar(200))",
         "CREATE TABLE visit (id integer PRIMARY KEY, person_id integer NOT NULL REFERENCES person (id), page varchar(200))",
         "CREATE TABLE person_tag (person_id integer NOT NULL REFERENCES person (id), tag varchar(40) NOT NULL)")
    _rows(database, person=[{"id": 1, "email": "ada@example.com", "name": "Ada Lovelace"},
                            {"id": 2, "email": "bob@example.com", "name": "Bob"}],
          visit=[{"id": 10, "person_id": 1, "page": "/tea"}], person_tag=[{"person_id": 2, "tag": "vip"}])
    tables = ("system: shop\ntables:\n  - name: person\n    identity: {email: email}\n    columns: {name: name_contact}\n"
              "  - name: visit\n    parent: {table: person, column: person_id}\n    erase: null\n    columns: {page: interactions.browse_history}\n"
              "  - name: person_tag\n    parent: {table: person, column: person_id}\n")
    connector = connect(database, tables)
    # Ada's visit is cleared, not deleted: its row still points at her, so she stays, and the receipt says why.
    assert connector.erase(Identity(email="ada@example.com")).steps == [
        ErasureStep("shop.visit", "nulled", "interactions.browse_history", 1),
        ErasureStep("shop.person", "kept", "name_contact", 1, "kept while records under it are kept"),
    ]
    # Bob's tag, which the file never erases, holds him the same way.
    assert connector.erase(Identity(email="bob@example.com")).steps == [
        ErasureStep("shop.person", "kept", "name_contact", 1, "kept while records under it are kept"),
    ]
    assert _select(database, "SELECT id, name FROM person ORDER BY id") == [(1, "Ada Lovelace"), (2, "Bob")]
    assert _select(database, "SELECT id, page FROM visit") == [(10, None)]
