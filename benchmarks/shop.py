"""shop: one subject's gather from a company's own database, as a system file describes it.

A five-table shop (customer, orders, payment_card, support_message, login_event) with 100,000
customers and 1.8 million rows in all, on the product's PostgreSQL server in a database of its own.
`systems check` is run on the file and the indexes it advises are created, as the guide says to;
then the SQL connector's gather of one subject is timed against the same rows read by hand in SQL
(one statement a table, the subject found by its email as the connector finds it). The gather
before the advised indexes is reported beside it, with no target.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from .harness import figure, note

CUSTOMERS = 100_000
SUBJECTS = 40  # subjects timed, each read both ways
DATABASE = "shopbench"  # the database `<product's>_shopbench` beside the product's
SCHEMA = [
    "CREATE TABLE customer (id bigint PRIMARY KEY, email text NOT NULL, full_name text, phone text, created_at timestamptz)",
    "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customer (id), total numeric(10, 2), "
    "placed_at timestamptz)",
    "CREATE TABLE payment_card (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customer (id), number text, exp text)",
    "CREATE TABLE support_message (id bigint PRIMARY KEY, customer_id bigint REFERENCES customer (id), body text, sent_at timestamptz)",
    "CREATE TABLE login_event (id bigint PRIMARY KEY, customer_id bigint REFERENCES customer (id), ip text, at timestamptz)",
]
# 5 orders, 1 card, 2 messages and 10 sign-ins a customer, made by the server.
LOAD = [
    f"INSERT INTO customer SELECT n, 'Shopper' || n || '@Example.com', 'Shopper ' || n, '+44 7700 ' || lpad(n::text, 6, '0'), "
    f"now() - n * interval '1 minute' FROM generate_series(1, {CUSTOMERS}) n",
    f"INSERT INTO orders SELECT n, (n - 1) / 5 + 1, (n % 97) + 0.99, now() - n * interval '1 second' FROM generate_series(1, {CUSTOMERS * 5}) n",
    f"INSERT INTO payment_card SELECT n, n, '4242424242424242', '12/30' FROM generate_series(1, {CUSTOMERS}) n",
    f"INSERT INTO support_message SELECT n, (n - 1) / 2 + 1, 'Where is my order ' || n || '?', now() - n * interval '1 second' "
    f"FROM generate_series(1, {CUSTOMERS * 2}) n",
    f"INSERT INTO login_event SELECT n, (n - 1) / 10 + 1, '192.0.2.' || (n % 250), now() - n * interval '1 second' "
    f"FROM generate_series(1, {CUSTOMERS * 10}) n",
    "ANALYZE",
]
SYSTEM = """\
name: shop
kind: sql
connection: {{url: "{url}"}}
tables:
  - name: customer
    identity: {{email: email}}
    collected_at: created_at
    columns: {{email: name_contact, full_name: name_contact, phone: name_contact}}
  - name: orders
    parent: {{table: customer, column: customer_id}}
    collected_at: placed_at
    columns: {{total: interactions.account_history}}
  - name: payment_card
    parent: {{table: customer, column: customer_id}}
    columns: {{number: {{category: payment, transform: last4}}, exp: payment}}
  - name: support_message
    parent: {{table: customer, column: customer_id}}
    collected_at: sent_at
    columns: {{body: interactions.support}}
  - name: login_event
    parent: {{table: customer, column: customer_id}}
    collected_at: at
    columns: {{ip: interactions.device_config}}
"""
# The same rows by hand: the subject found as the connector finds it, each table read once, in one
# transaction a subject as the connector reads them.
BY_HAND = [
    "SELECT id, email, full_name, phone, created_at FROM customer WHERE lower(trim(email)) = %(e)s ORDER BY id",
    *(f"SELECT t.* FROM {table} t JOIN customer c ON c.id = t.customer_id WHERE lower(trim(c.email)) = %(e)s ORDER BY t.id"
      for table in ("orders", "payment_card", "support_message", "login_event")),
]


def _database() -> str:
    """The shop's database beside the product's, made and loaded once; its SQLAlchemy URL."""
    from estate.stores import estate_database_ensure, estate_database_url

    estate_database_ensure(DATABASE)
    url = estate_database_url(DATABASE)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        loaded = conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE tablename = 'login_event'")).scalar()
        if not loaded:
            note(f"shop: loading {CUSTOMERS:,} customers")
            for statement in SCHEMA + LOAD:
                conn.execute(sa.text(statement))
        # Start without the advised indexes, as a deployment's database would.
        for (name,) in conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%\\_dsar'")):
            conn.execute(sa.text(f'DROP INDEX "{name}"'))
    engine.dispose()
    return url


def _gather_seconds(connector, email: str) -> float:
    from connectors.base import Identity

    started = time.perf_counter()
    records = list(connector.gather(Identity(email=email)))
    elapsed = time.perf_counter() - started
    assert len(records) == 1 + 5 + 1 + 2 + 10, len(records)  # a record a row: each table holds one category
    return elapsed


def _by_hand_seconds(driver, email: str) -> float:
    """The same rows read with the driver the connector uses: one prepared statement a table, in one
    transaction, as the connector reads them."""
    started = time.perf_counter()
    with driver.cursor() as cursor:
        rows = 0
        for query in BY_HAND:
            cursor.execute(query, {"e": email}, prepare=True)
            rows += len(cursor.fetchall())
    driver.rollback()
    elapsed = time.perf_counter() - started
    assert rows == 1 + 5 + 1 + 2 + 10, rows
    return elapsed


def _medians(connector, url: str, emails: list[str]) -> tuple[float, float]:
    """The median gather and by-hand times, each subject read both ways in turn (the machine's speed
    drifts: alternating keeps the two under the same conditions)."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        for email in emails[:3]:  # connect, read the column types, prepare the statements
            _gather_seconds(connector, email), _by_hand_seconds(driver, email)
        pairs = [(_gather_seconds(connector, email), _by_hand_seconds(driver, email)) for email in emails]
    engine.dispose()
    return statistics.median(g for g, _ in pairs), statistics.median(h for _, h in pairs)


def run() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dsar.settings")
    import django

    django.setup()
    from connectors.systems import system_load

    url = _database()
    directory = Path(tempfile.mkdtemp(prefix="dsar-shop-"))
    (directory / "shop.yaml").write_text(SYSTEM.format(url=url))
    emails = [f"shopper{n}@example.com" for n in random.Random(7).sample(range(1, CUSTOMERS + 1), SUBJECTS)]
    connector = system_load(directory / "shop.yaml", {}).connector()
    try:
        unindexed, _ = _medians(connector, url, emails[:5])
        advice = [finding.what.split(": ", 1)[1] for finding in connector.check() if not finding.problem and "CREATE INDEX" in finding.what]
        note(f"shop: {len(advice)} indexes advised by systems check")
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            for statement in advice:
                conn.execute(sa.text(statement.rstrip(";")))
            conn.execute(sa.text("ANALYZE"))
        engine.dispose()
        assert [f for f in connector.check() if "CREATE INDEX" in f.what] == [], "the advised indexes did not serve the lookups"
        gathered, by_hand = _medians(connector, url, emails)
    finally:
        connector.close()
    reference = {"name": "the same rows read by hand in SQL (s)", "value": round(by_hand, 5)}
    figure("shop", "gather_before_advised_indexes", unindexed, "s", reference=reference)
    figure("shop", "advised_indexes", len(advice), "indexes")
    figure("shop", "gather", gathered, "s", target=round(2 * by_hand, 5), direction="max", reference=reference)
    figure("shop", "ratio_to_reference", gathered / by_hand, "ratio", target=2, direction="max")
