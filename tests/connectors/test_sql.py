"""The SQL connector against the demo estate's real PostgreSQL databases: what a gather yields,
row by row, and what an erasure removes, clears, masks and keeps."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from dateutil.relativedelta import relativedelta

from connectors.base import OBSERVED, PROVIDED, Identity, Record, Retained, Source, TransientError
from connectors.registry import connector_get
from connectors.sql import BATCH, SqlConnector, dataset_load, sibling_database_url
from estate.loader import EstateError, estate_load, estate_parse
from estate.stores import estate_database_url

pytestmark = [pytest.mark.usefixtures("estate"), pytest.mark.django_db]

UTC = dt.UTC
INVOICES = "Invoices are kept for 10 years because tax law requires it"


def _load(*subjects: dict) -> None:
    estate_load(estate_parse({"subjects": list(subjects)}))


def _records(connector: str, email: str) -> list[Record]:
    return list(connector_get(connector).gather(Identity(email=email)))


def _run(system: str, sql: str, **params) -> None:
    engine = sa.create_engine(estate_database_url(system))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def _count(system: str, sql: str, **params) -> int:
    engine = sa.create_engine(estate_database_url(system))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


def _connector(tmp_path, system: str, dataset: str, **options) -> SqlConnector:
    path = tmp_path / f"{system}.yaml"
    path.write_text(dataset)
    return SqlConnector(name=system, dataset=dataset_load(path), **options)


@pytest.fixture
def twins(unique_email):
    """A subject, and one whose email differs only by a plus-suffix."""
    email = unique_email("twin")
    other = email.replace("@", "+promo@")
    full = {
        "accounts": {"name": "Twin", "password": "s3cret-pass", "searches": ["one", "two"], "contacts": [{"name": "Kim"}]},
        "payments": {"cards": [{"number": "5555555555554444", "cvc": "987", "exp": "01/30"}],
                     "transactions": [{"amount": 5, "currency": "GBP", "at": "2026-01-01T00:00:00Z", "item": "x"},
                                      {"amount": 7, "currency": "GBP", "at": "2010-01-01T00:00:00Z", "item": "old"}],
                     "subscriptions": [{"product": "Music", "status": "active"}]},
        "third_party": [{"source": "Northwind Insights", "source_type": "data_broker", "category": "demographic",
                         "acquired_at": "2026-01-01T00:00:00Z", "data": {"income_band": "B"}}],
    }
    _load({"email": email, **full}, {"email": other, **full})
    return email, other


def test_gather_finds_exactly_the_subject_and_not_a_plus_suffixed_twin(twins):
    email, other = twins
    searches = [r.fields for r in _records("accounts", email) if r.category == "searches_commands"]
    assert searches == [{"query": "one"}, {"query": "two"}]
    contacts = [r.fields for r in _records("accounts", email) if r.category == "contacts_relationships"]
    assert contacts == [{"name": "Kim"}]
    names = [r.fields for r in _records("accounts", email) if r.category == "name_contact"]
    assert names == [{"email": email, "name": "Twin"}]
    assert [r.fields for r in _records("accounts", other) if r.category == "name_contact"] == [{"email": other, "name": "Twin"}]


def test_a_tables_rows_become_records_with_their_values_as_text_and_times_in_iso_8601(twins):
    email, _ = twins
    transactions = [r for r in _records("payments", email) if r.system == "payments.transactions"]  # in key order
    assert transactions == [
        Record("interactions.account_history",
               {"item": "x", "amount": "5.00", "currency": "GBP", "at": "2026-01-01T00:00:00+00:00",
                "retained_until": "2036-01-01T00:00:00+00:00", "retained_because": INVOICES},
               "payments.transactions", OBSERVED, dt.datetime(2026, 1, 1, tzinfo=UTC), retained_until=dt.datetime(2036, 1, 1, tzinfo=UTC)),
        Record("interactions.account_history",
               {"item": "old", "amount": "7.00", "currency": "GBP", "at": "2010-01-01T00:00:00+00:00",
                "retained_until": "2020-01-01T00:00:00+00:00", "retained_because": INVOICES},
               "payments.transactions", OBSERVED, dt.datetime(2010, 1, 1, tzinfo=UTC), retained_until=dt.datetime(2020, 1, 1, tzinfo=UTC)),
    ]
    (subscription,) = [r for r in _records("payments", email) if r.system == "payments.subscriptions"]
    assert subscription == Record("subscription", {"product": "Music", "status": "active"}, "payments.subscriptions", PROVIDED, None)


def test_secrets_never_leave_the_database_and_cards_show_four_digits(twins):
    email, _ = twins
    (card,) = [r for r in _records("payments", email) if r.system == "payments.cards"]
    assert card.category == "payment"
    assert set(card.fields) == {"exp", "number", "security_code", "security_code_last_changed"}
    assert (card.fields["number"], card.fields["exp"], card.fields["security_code"]) == ("**** 4444", "01/30", "set (never exported)")
    (credentials,) = [r for r in _records("accounts", email) if r.category == "credentials"]
    assert set(credentials.fields) == {"password", "password_last_changed"}
    assert credentials.fields["password"] == "set (never exported)"
    everything = repr([r.fields for r in _records("accounts", email) + _records("payments", email)])
    assert "s3cret-pass" not in everything and "sha256$" not in everything and "5555555555554444" not in everything
    assert not re.search(r"\b987\b", everything)  # the card's code as a value: a time's microseconds may hold the digits


def test_third_party_records_carry_their_source_name_and_kind(twins):
    email, _ = twins
    assert _records("third_party", email) == [
        Record("demographic", {"income_band": "B"}, "third_party.records", Source("third_party", "Northwind Insights", "data_broker"),
               dt.datetime(2026, 1, 1, tzinfo=UTC)),
    ]


def test_erase_keeps_invoices_under_retention_and_leaves_the_twin_untouched(twins):
    email, other = twins
    receipt = connector_get("payments").erase(Identity(email=email))
    assert receipt.erased == {"payment": 2, "subscription": 1, "interactions.account_history": 1}  # customer and card; the 2010 invoice
    assert receipt.retained == [Retained("interactions.account_history", 1, f"{INVOICES} (legal_obligation)", dt.date(2036, 1, 1))]
    assert [r.fields["item"] for r in _records("payments", email)] == ["x"]
    assert len(_records("payments", other)) == 5  # customer, card, subscription, two invoices


def test_erase_twice_is_harmless_and_finds_nothing_the_second_time(twins):
    email, other = twins
    first = connector_get("accounts").erase(Identity(email=email))
    assert first.erased["searches_commands"] == 2
    second = connector_get("accounts").erase(Identity(email=email))
    assert second.erased == {}
    assert _records("accounts", email) == []
    assert _records("accounts", other)


def test_erasing_third_party_data_suppresses_the_source_and_a_reimport_is_refused(twins):
    email, other = twins
    receipt = connector_get("third_party").erase(Identity(email=email))
    assert receipt.suppressed_sources == ["Northwind Insights"]
    assert _count("third_party", "SELECT count(*) FROM suppressions WHERE identity_hash = :e", e=email) == 0  # never the email
    again = {"email": email, "third_party": [{"source": "Northwind Insights", "source_type": "data_broker", "category": "demographic",
                                              "acquired_at": "2026-02-01T00:00:00Z"}]}
    with pytest.raises(EstateError, match=r"subjects\[0\]\.third_party\[0\]\.source"):
        _load(again)
    assert _records("third_party", email) == []
    _load({"email": other, "third_party": again["third_party"]})  # the twin was not erased: allowed


def test_an_erasure_blocked_by_a_lock_another_session_holds_is_a_transient_error_and_erases_nothing(twins):
    """As when a worker host was killed mid-erase: its session's locks outlive it for minutes."""
    email, _ = twins
    engine = sa.create_engine(estate_database_url("accounts"))
    try:
        with engine.connect() as holder:
            holder.execute(sa.text("SELECT id FROM users WHERE email = :e FOR UPDATE"), {"e": email})
            with pytest.raises(TransientError, match="accounts: a row is locked by another session: canceling statement due to lock timeout"):
                connector_get("accounts").erase(Identity(email=email))
            holder.rollback()
    finally:
        engine.dispose()
    assert _count("accounts", "SELECT count(*) FROM users WHERE email = :e", e=email) == 1
    assert {r.category for r in _records("accounts", email)} >= {"name_contact", "searches_commands"}


def test_a_partial_deletion_erases_only_the_requested_categories(twins):
    email, _ = twins
    receipt = connector_get("accounts").erase(Identity(email=email), frozenset({"searches_commands"}))
    assert receipt.erased == {"searches_commands": 2}
    categories = {r.category for r in _records("accounts", email)}
    assert "searches_commands" not in categories and "name_contact" in categories


def test_a_mask_strategy_replaces_values_with_a_keyed_hash_and_keeps_the_row(tmp_path, unique_email):
    email = unique_email("masked")
    _load({"email": email, "accounts": {"name": "Maria Masked", "phone": "+44 1"}})
    connector = _connector(tmp_path, "accounts", "system: accounts\ntables:\n  - name: users\n    identity: {email: email}\n    erase: mask\n"
                                                 "    columns: {name: name_contact, phone: name_contact}\n", mask_key="k")
    try:
        assert connector.erase(Identity(email=email)).erased == {"name_contact": 1}
        (record,) = list(connector.gather(Identity(email=email)))
        # The hex SHA-256 of the key and the value: sha256(b"kMaria Masked"), sha256(b"k+44 1").
        assert record.fields == {"name": "cec51239c476a9898ab2d42844294dbb2409bab58bcbb77866e69c263850d7c4",
                                 "phone": "c950ba6e5b595eecfe5b84642a0ccce3be67d89f62b5fadfe415c7e7c1b0081d"}
        assert connector.erase(Identity(email=email)).erased == {}  # masked already: nothing left to mask
    finally:
        connector.close()


def test_a_closed_connector_connects_again_on_its_next_use(tmp_path, unique_email):
    email = unique_email("closed")
    _load({"email": email, "accounts": {"name": "Carla Closed"}})
    connector = _connector(tmp_path, "accounts", "system: accounts\ntables:\n  - name: users\n    identity: {email: email}\n"
                                                 "    columns: {name: name_contact}\n")
    try:
        assert [record.fields for record in connector.gather(Identity(email=email))] == [{"name": "Carla Closed"}]
        connector.close()
        assert [record.fields for record in connector.gather(Identity(email=email))] == [{"name": "Carla Closed"}]
    finally:
        connector.close()


def test_a_table_with_more_rows_than_one_batch_streams_on_from_its_last_key(unique_email):
    email = unique_email("many")
    searches = [f"query {n:05d}" for n in range(2 * BATCH + 7)]
    _load({"email": email, "accounts": {"searches": searches}})
    found = [r.fields["query"] for r in _records("accounts", email) if r.category == "searches_commands"]
    assert found == searches


# --- Values of every kind, read from a server whose own time zone is not UTC ------------------------


@pytest.fixture
def kinds(tmp_path, unique_email):
    """A table with a column of each kind, and a connector to the server with its session's time
    zone set to Newfoundland's (UTC-03:30 in winter): times with a zone must still come out in UTC."""
    email = unique_email("kinds")
    _load({"email": email, "accounts": {"name": "Kim Kinds"}})
    _run("accounts", "DROP TABLE IF EXISTS kinds")
    _run("accounts", "CREATE TABLE kinds (id bigserial PRIMARY KEY, user_id bigint NOT NULL, note text, seen timestamptz,"
                     " local_at timestamp, day date, amount numeric(8, 2), flag boolean, n integer)")
    url = sa.engine.make_url(estate_database_url("accounts"))
    zoned = url.update_query_dict({"options": "-c TimeZone=America/St_Johns"}).render_as_string(hide_password=False)
    connector = _connector(tmp_path, "accounts", "system: accounts\ntables:\n  - name: users\n    identity: {email: email}\n"
                                                 "    columns: {name: name_contact}\n"
                                                 "  - name: kinds\n    parent: {table: users, column: user_id}\n    source: observed\n"
                                                 "    collected_at: seen\n    columns: {note: interests, seen: interests, local_at: interests,"
                                                 " day: interests, amount: interests, flag: interests, n: interests}\n", url=zoned)
    yield connector, email
    connector.close()
    _run("accounts", "DROP TABLE kinds")


def test_values_of_each_kind_come_out_as_json_values_and_times_with_a_zone_in_utc(kinds):
    connector, email = kinds
    _run("accounts", "INSERT INTO kinds (user_id, note, seen, local_at, day, amount, flag, n)"
                     " SELECT id, 'comma, \"quote\"\nline', '2026-01-15 10:00:00.25+00', '2026-01-15 10:00:00', '2026-01-15', 12.5, true, 7"
                     " FROM users WHERE email = :e", e=email)
    _run("accounts", "INSERT INTO kinds (user_id, seen) SELECT id, '0999-01-01 00:00:00+00' FROM users WHERE email = :e", e=email)
    _run("accounts", "INSERT INTO kinds (user_id, note) SELECT id, 'no time' FROM users WHERE email = :e", e=email)
    records = [r for r in connector.gather(Identity(email=email)) if r.system == "accounts.kinds"]
    assert records == [
        Record("interests", {"note": 'comma, "quote"\nline', "seen": "2026-01-15T10:00:00.250000+00:00", "local_at": "2026-01-15T10:00:00",
                             "day": "2026-01-15", "amount": "12.50", "flag": True, "n": 7},
               "accounts.kinds", OBSERVED, dt.datetime(2026, 1, 15, 10, 0, 0, 250000, tzinfo=UTC)),
        Record("interests", {"seen": "0999-01-01T00:00:00+00:00"}, "accounts.kinds", OBSERVED, dt.datetime(999, 1, 1, tzinfo=UTC)),
        Record("interests", {"note": "no time"}, "accounts.kinds", OBSERVED, None),
    ]
    assert all(r.collected_at is None or r.collected_at.utcoffset() == dt.timedelta(0) for r in records)


# --- Retention: a day either side of the rule ----------------------------------------------------------


class _OnMidsummer(SqlConnector):
    """The connector on 15 June 2026 at noon, UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def test_erasure_keeps_invoices_from_exactly_ten_years_back_and_removes_the_day_before(tmp_path, unique_email):
    email = unique_email("boundary")
    _load({"email": email, "payments": {"transactions": [
        {"amount": 1, "currency": "EUR", "at": "2016-06-14T12:00:00Z", "item": "a day too old"},
        {"amount": 2, "currency": "EUR", "at": "2016-06-15T12:00:00Z", "item": "ten years to the second"},
        {"amount": 3, "currency": "EUR", "at": "2016-06-16T12:00:00Z", "item": "a day inside"},
    ]}})
    path = tmp_path / "payments.yaml"
    path.write_text("system: payments\ntables:\n  - name: transactions\n    identity: {email: billing_email}\n    source: observed\n"
                    "    collected_at: at\n    columns: {item: interactions.account_history}\n"
                    "    retain: {years: 10, basis: legal_obligation, reason: tax law, date_column: at}\n")
    connector = _OnMidsummer(name="payments", dataset=dataset_load(path))
    try:
        receipt = connector.erase(Identity(email=email))
        assert receipt.erased == {"interactions.account_history": 1}
        assert receipt.retained == [Retained("interactions.account_history", 2, "tax law (legal_obligation)", dt.date(2026, 6, 16))]
        assert [r.fields for r in connector.gather(Identity(email=email))] == [
            {"item": "ten years to the second", "retained_until": "2026-06-15T12:00:00+00:00", "retained_because": "tax law"},
            {"item": "a day inside", "retained_until": "2026-06-16T12:00:00+00:00", "retained_because": "tax law"},
        ]
    finally:
        connector.close()


# --- A schema of the deployment's own: identities it provides, composite keys, keep, retention anywhere ---

SHOP_SCHEMA = [
    "CREATE TABLE customer (id integer PRIMARY KEY, email text NOT NULL, full_name text, loyalty_no text, support_pin text)",
    "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customer (id), placed_at timestamptz NOT NULL)",
    "CREATE TABLE order_line (order_id integer REFERENCES orders (id), line_no integer, item text, PRIMARY KEY (order_id, line_no))",
    "CREATE TABLE line_note (order_id integer, line_no integer, note text, id serial PRIMARY KEY, "
    "FOREIGN KEY (order_id, line_no) REFERENCES order_line (order_id, line_no))",
    "CREATE TABLE loyalty (card text PRIMARY KEY, points integer, tier text)",
    "CREATE TABLE review (id integer PRIMARY KEY, customer_id integer REFERENCES customer (id), stars integer, body text)",
]
SHOP = """\
system: shop
tables:
  - name: customer
    identity: {email: email}
    provides: {loyalty_card: loyalty_no}
    columns: {email: name_contact, full_name: name_contact, support_pin: {category: credentials, erase: keep, reason: "Fraud checks need it"}}
  - name: orders
    parent: {table: customer, column: customer_id}
    columns: {placed_at: interactions.account_history}
    retain: {years: 6, basis: legal_obligation, reason: "Commercial law keeps orders", date_column: placed_at}
  - name: order_line
    primary_key: [order_id, line_no]
    parent: {table: orders, column: order_id}
    columns: {item: interactions.account_history}
  - name: line_note
    parent: {table: order_line, column: [order_id, line_no]}
    columns: {note: other_input}
  - name: loyalty
    primary_key: card
    identity: {loyalty_card: card}
    columns: {points: subscription, tier: subscription}
  - name: review
    parent: {table: customer, column: customer_id}
    erase: keep
    reason: "Published reviews stay, as the terms say"
    columns: {stars: feedback_ratings, body: feedback_ratings}
"""


@pytest.fixture
def own_database(tmp_path):
    """`own_database(statements, dataset, **options)`: a database of its own beside the product's,
    made by `statements`, and an SQL connector over it that the dataset file's text describes; both
    closed, and the database dropped, at the test's end."""
    from estate.stores import estate_database_drop, estate_database_ensure

    made = []

    def make(statements: list[str], dataset: str, **options) -> tuple[sa.Engine, SqlConnector]:
        estate_database_drop("shopdata")
        estate_database_ensure("shopdata")
        url = estate_database_url("shopdata")
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
        path = tmp_path / "shop.yaml"
        path.write_text(dataset)
        made.append((engine, SqlConnector(name="shop", dataset=dataset_load(path), url=url, **options)))
        return made[-1]

    yield make
    for engine, connector in made:
        connector.close()
        engine.dispose()
    estate_database_drop("shopdata")


@pytest.fixture
def shop(own_database):
    """A shop database of its own: its engine, and a connector over it."""
    return own_database(SHOP_SCHEMA, SHOP, mask_key="k")


def _shop_rows(engine, **rows: list[dict]) -> None:
    with engine.begin() as conn:
        for table, values in rows.items():
            conn.execute(sa.table(table, *(sa.column(c) for c in values[0])).insert(), values)


def _shop_count(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()


def test_a_table_is_found_by_an_identity_another_table_of_the_system_provides(shop):
    engine, connector = shop
    _shop_rows(engine, customer=[{"id": 1, "email": " Ada@Example.com", "full_name": "Ada", "loyalty_no": "L-7", "support_pin": "4411"},
                                 {"id": 2, "email": "bob@example.com", "full_name": "Bob", "loyalty_no": "l-7", "support_pin": None}],
               loyalty=[{"card": "L-7", "points": 120, "tier": "gold"}, {"card": "l-7", "points": 1, "tier": "basic"}])
    identity = Identity(email="ada@example.com")
    assert connector.identities_found(identity) == {"loyalty_card": ["L-7"]}  # matched exactly: not bob's l-7
    loyalty = [r.fields for r in connector.gather(identity) if r.system == "shop.loyalty"]
    assert loyalty == [{"points": 120, "tier": "gold"}]


def test_rows_with_a_composite_key_are_read_in_key_order_past_a_batch_and_their_children_found(shop):
    engine, connector = shop
    now = dt.datetime.now(UTC)
    _shop_rows(engine, customer=[{"id": 1, "email": "ada@example.com", "full_name": "Ada", "loyalty_no": None, "support_pin": None}],
               orders=[{"id": 10, "customer_id": 1, "placed_at": now}, {"id": 11, "customer_id": 1, "placed_at": now}])
    lines = [{"order_id": order, "line_no": line, "item": f"{order}/{line}"} for order in (11, 10) for line in range(BATCH // 2 + 3, 0, -1)]
    _shop_rows(engine, order_line=lines, line_note=[{"order_id": 11, "line_no": 2, "note": "gift wrap"}])
    items = [r.fields["item"] for r in connector.gather(Identity(email="ada@example.com")) if r.system == "shop.order_line"]
    assert len(items) == BATCH + 6
    assert items[:2] == ["10/1", "10/2"] and items[BATCH // 2 + 2: BATCH // 2 + 4] == ["10/503", "11/1"] and items[-1] == "11/503"
    notes = [r.fields for r in connector.gather(Identity(email="ada@example.com")) if r.system == "shop.line_note"]
    assert notes == [{"note": "gift wrap"}]


def test_erasure_keeps_what_the_file_keeps_and_a_row_whose_retained_children_stay(shop):
    engine, connector = shop
    now = dt.datetime.now(UTC).replace(microsecond=0)
    connector.now = lambda: now
    recent, old = now - dt.timedelta(days=400), now - dt.timedelta(days=7 * 366)
    _shop_rows(engine, customer=[{"id": 1, "email": "ada@example.com", "full_name": "Ada", "loyalty_no": None, "support_pin": "4411"}],
               orders=[{"id": 10, "customer_id": 1, "placed_at": recent}, {"id": 11, "customer_id": 1, "placed_at": old}],
               order_line=[{"order_id": 11, "line_no": 1, "item": "old tea"}],
               review=[{"id": 5, "customer_id": 1, "stars": 4, "body": "fine"}])
    receipt = connector.erase(Identity(email="ada@example.com"))
    assert receipt.erased == {"interactions.account_history": 2}
    assert receipt.retained == [  # children first, as they are erased
        Retained("feedback_ratings", 1, "Published reviews stay, as the terms say"),
        Retained("interactions.account_history", 1, "Commercial law keeps orders (legal_obligation)", (recent + relativedelta(years=6)).date()),
        Retained("credentials", 1, "kept while records under it are kept"),
        Retained("name_contact", 1, "kept while records under it are kept"),
    ]
    # The old order and its line are gone; the recent order, the review and the customer they hang from stay.
    assert [_shop_count(engine, t) for t in ("order_line", "orders", "review", "customer")] == [0, 1, 1, 1]


def test_a_table_found_by_an_identity_its_neighbour_provides_is_erased_after_the_row_that_points_at_it(own_database):
    engine, connector = own_database([
        "CREATE TABLE address (address_id integer PRIMARY KEY, street text NOT NULL)",
        "CREATE TABLE customer (id integer PRIMARY KEY, email text, address_id integer NOT NULL REFERENCES address)",
        "INSERT INTO address VALUES (7, '1 Mill Street'), (8, '2 Elm Parade')",
        "INSERT INTO customer VALUES (1, 'ada@example.com', 7), (2, 'bob@example.com', 8)",
    ], "system: shop\ntables:\n  - name: address\n    primary_key: address_id\n    identity: {home: address_id}\n"  # first, as a scan may write it
       "    columns: {street: name_contact}\n  - name: customer\n    identity: {email: email}\n    provides: {home: address_id}\n"
       "    columns: {email: name_contact}\n")
    receipt = connector.erase(Identity(email="ada@example.com"))
    assert receipt.erased == {"name_contact": 2}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT address_id FROM address")).scalars().all() == [8]
        assert conn.execute(sa.text("SELECT id FROM customer")).scalars().all() == [2]


def test_an_erasure_deletes_a_row_before_the_rows_its_keys_point_at_whatever_the_files_order(own_database):
    """payment.rental_id points at rental and may not be cleared (NOT NULL, ON DELETE SET NULL, as a
    published sample schema has it): payment's rows must go first, though the file lists rental last."""
    engine, connector = own_database([
        "CREATE TABLE customer (id integer PRIMARY KEY, email text)",
        "CREATE TABLE rental (id integer PRIMARY KEY, customer_id integer REFERENCES customer, film text)",
        "CREATE TABLE payment (id integer PRIMARY KEY, customer_id integer REFERENCES customer, "
        "rental_id integer NOT NULL REFERENCES rental ON DELETE SET NULL, amount numeric)",
        "INSERT INTO customer VALUES (1, 'ada@example.com')",
        "INSERT INTO rental VALUES (10, 1, 'Harbour Lights')",
        "INSERT INTO payment VALUES (20, 1, 10, 2.99)",
    ], "system: shop\ntables:\n  - name: customer\n    identity: {email: email}\n    columns: {email: name_contact}\n"
       "  - name: payment\n    parent: {table: customer, column: customer_id}\n    columns: {amount: payment}\n"
       "  - name: rental\n    parent: {table: customer, column: customer_id}\n    columns: {film: interactions.account_history}\n")
    receipt = connector.erase(Identity(email="ada@example.com"))
    assert [(step.where, step.action) for step in receipt.steps if step.action == "deleted"] == [
        ("shop.payment", "deleted"), ("shop.rental", "deleted"), ("shop.customer", "deleted")]
    with engine.connect() as conn:
        assert [conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in ("payment", "rental", "customer")] == [0, 0, 0]


def test_a_row_stays_while_a_child_the_file_keeps_points_at_it(shop):
    engine, connector = shop
    _shop_rows(engine, customer=[{"id": 1, "email": "kept@example.com", "full_name": "Kay", "loyalty_no": None, "support_pin": None}],
               review=[{"id": 5, "customer_id": 1, "stars": 5, "body": "lovely"}])
    receipt = connector.erase(Identity(email="kept@example.com"))
    assert [(step.where, step.action, step.category, step.count) for step in receipt.steps] == [
        ("shop.review", "kept", "feedback_ratings", 1),
        ("shop.customer", "kept", "credentials", 1), ("shop.customer", "kept", "name_contact", 1)]
    assert [_shop_count(engine, t) for t in ("review", "customer")] == [1, 1]


def test_a_row_stays_while_a_child_under_retention_points_at_it_and_goes_once_the_child_is_old(shop):
    engine, connector = shop
    now = dt.datetime.now(UTC).replace(microsecond=0)
    connector.now = lambda: now
    _shop_rows(engine, customer=[{"id": 1, "email": "recent@example.com", "full_name": "Rae", "loyalty_no": None, "support_pin": None},
                                 {"id": 2, "email": "old@example.com", "full_name": "Olu", "loyalty_no": None, "support_pin": None}],
               orders=[{"id": 10, "customer_id": 1, "placed_at": now - dt.timedelta(days=30)},
                       {"id": 11, "customer_id": 2, "placed_at": now - dt.timedelta(days=7 * 366)}])
    recent = connector.erase(Identity(email="recent@example.com"))
    assert [(step.where, step.action) for step in recent.steps if step.where == "shop.customer"] == [
        ("shop.customer", "kept"), ("shop.customer", "kept")]
    old = connector.erase(Identity(email="old@example.com"))
    assert [(step.where, step.action) for step in old.steps if step.where == "shop.customer"] == [
        ("shop.customer", "deleted"), ("shop.customer", "deleted")]
    assert [_shop_count(engine, t) for t in ("orders", "customer")] == [1, 1]


def test_a_row_stays_while_a_grandchild_under_retention_stays(own_database):
    now = dt.datetime.now(UTC)
    engine, connector = own_database([
        "CREATE TABLE customer (id integer PRIMARY KEY, email text)",
        "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer REFERENCES customer, item text)",
        "CREATE TABLE invoice (id integer PRIMARY KEY, order_id integer REFERENCES orders, issued_at timestamptz)",
        "INSERT INTO customer VALUES (1, 'ada@example.com')",
        "INSERT INTO orders VALUES (10, 1, 'tea')",
        f"INSERT INTO invoice VALUES (20, 10, '{(now - dt.timedelta(days=30)).isoformat()}')",
    ], "system: shop\ntables:\n  - name: customer\n    identity: {email: email}\n    columns: {email: name_contact}\n"
       "  - name: orders\n    parent: {table: customer, column: customer_id}\n    columns: {item: interactions.account_history}\n"
       "  - name: invoice\n    parent: {table: orders, column: order_id}\n    columns: {issued_at: payment}\n"
       "    retain: {years: 6, basis: legal_obligation, reason: Tax law, date_column: issued_at}\n")
    receipt = connector.erase(Identity(email="ada@example.com"))
    assert [(step.where, step.action, step.reason) for step in receipt.steps] == [
        ("shop.invoice", "kept", "Tax law (legal_obligation)"),
        ("shop.orders", "kept", "kept while records under it are kept"),
        ("shop.customer", "kept", "kept while records under it are kept")]
    assert [_shop_count(engine, t) for t in ("invoice", "orders", "customer")] == [1, 1, 1]


def test_the_organisation_managing_an_account_is_found_on_a_table_reached_by_an_identity_the_system_provides(own_database):
    _engine, connector = own_database([
        "CREATE TABLE account (id integer PRIMARY KEY, email text, pupil_no text)",
        "CREATE TABLE pupil (id integer PRIMARY KEY, pupil_no text, name text, school text, school_privacy text)",
        "INSERT INTO account VALUES (1, 'pia@example.com', 'P-7')",
        "INSERT INTO pupil VALUES (1, 'P-7', 'Pia', 'Hill School', 'privacy@hill.example')",
    ], "system: shop\norganization: {table: pupil, column: school, contact_column: school_privacy}\ntables:\n"
       "  - name: account\n    identity: {email: email}\n    provides: {pupil_no: pupil_no}\n    columns: {email: name_contact}\n"
       "  - name: pupil\n    identity: {pupil_no: pupil_no}\n    columns: {name: name_contact}\n")
    organization = connector.managing_organization(Identity(email="pia@example.com"))
    assert (organization.name, organization.contact) == ("Hill School", "privacy@hill.example")
    assert connector.managing_organization(Identity(email="nobody@example.com")) is None


# --- Reading a long table a batch at a time, and counting back from the current time ----------------------


def test_the_rows_past_a_tables_first_batch_are_fetched_from_the_database_a_batch_at_a_time(kinds):
    """So memory stays bounded at any size: a connection lost just into the streamed rest ends the
    gather with what is left of the batch in hand, not with every row of the table read already."""
    connector, email = kinds
    _run("accounts", "INSERT INTO kinds (user_id, n) SELECT u.id, g FROM users u, generate_series(1, :rows) g WHERE u.email = :e",
         rows=3 * BATCH, e=email)
    items = connector.gather(Identity(email=email))
    for _ in range(1 + BATCH + 1):  # the user's record, the first batch, and one row of the streamed rest
        next(items)
    _run("accounts", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
    more = 0
    with pytest.raises(TransientError, match="database unavailable"):
        for _ in items:
            more += 1
    assert more == BATCH - 1  # the rest of the batch in hand; not the 2 * BATCH - 1 rows left in the table


def test_a_tables_lookup_reads_the_subjects_first_batch_of_rows_and_one_more_to_tell_whether_there_are_more(tmp_path, unique_email):
    email = unique_email("lookup")
    _load({"email": email, "accounts": {"searches": [f"query {n:05d}" for n in range(2 * BATCH + 7)]}})
    connector = _connector(tmp_path, "accounts", "system: accounts\ntables:\n  - name: users\n    identity: {email: email}\n"
                                                 "    columns: {name: name_contact}\n  - name: searches\n"
                                                 "    parent: {table: users, column: user_id}\n"
                                                 "    columns: {query: searches_commands}\n")
    engine = sa.create_engine(estate_database_url("accounts"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(connector.lookup(connector.dataset.table("searches")), connector.identity_params(Identity(email=email))).all()
    finally:
        engine.dispose()
        connector.close()
    assert [row.query for row in rows] == [f"query {n:05d}" for n in range(BATCH + 1)]  # query 00000 to query 01000


VISITS = ("system: shop\ntables:\n  - name: visit\n    identity: {email: email}\n    columns: {seen: interests}\n"
          "    retain: {years: 6, basis: legitimate_interests, reason: Fraud checks, date_column: seen}\n")


def test_retention_counts_back_from_the_current_time_in_utc_whatever_zone_the_database_session_is_in(own_database, tmp_path):
    """Newfoundland's session (UTC-03:30 or -02:30) would read a time with no zone as hours later."""
    engine, _ = own_database(["CREATE TABLE visit (id integer PRIMARY KEY, email text NOT NULL, seen timestamptz NOT NULL)"], VISITS)
    six_years_ago = dt.datetime.now(UTC) - relativedelta(years=6)
    _shop_rows(engine, visit=[{"id": 1, "email": "ada@example.com", "seen": six_years_ago + dt.timedelta(hours=1)},
                              {"id": 2, "email": "ada@example.com", "seen": six_years_ago - dt.timedelta(hours=1)}])
    url = sa.engine.make_url(estate_database_url("shopdata"))
    zoned = url.update_query_dict({"options": "-c TimeZone=America/St_Johns"}).render_as_string(hide_password=False)
    connector = _connector(tmp_path, "shop", VISITS, url=zoned)
    try:
        receipt = connector.erase(Identity(email="ada@example.com"))
    finally:
        connector.close()
    assert (receipt.erased, [(r.category, r.count) for r in receipt.retained]) == ({"interests": 1}, [("interests", 1)])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id FROM visit")).scalars().all() == [1]


@pytest.mark.parametrize(("database", "expected"), [
    ({"HOST": "db.internal", "PORT": "6432", "USER": "dsar", "PASSWORD": "s@cret", "NAME": "dsar"},
     "postgresql+psycopg://dsar:s%40cret@db.internal:6432/dsar_accounts"),
    ({"HOST": "/run/postgresql", "PORT": "", "USER": "postgres", "PASSWORD": "", "NAME": "product"},
     "postgresql+psycopg://postgres@/product_accounts?host=%2Frun%2Fpostgresql"),
    ({"HOST": "", "PORT": "", "USER": "", "PASSWORD": "", "NAME": "dsar"}, "postgresql+psycopg:///dsar_accounts"),
])
def test_a_system_with_no_url_lives_beside_the_products_database_on_its_server(monkeypatch, database, expected):
    from django.db import connections

    for key, value in database.items():
        monkeypatch.setitem(connections["default"].settings_dict, key, value)
    assert sibling_database_url("accounts") == expected
