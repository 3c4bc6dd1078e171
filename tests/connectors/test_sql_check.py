"""connectors/sql_check.py: `systems check` fits an SQL system's file against the live schema, on
real PostgreSQL, MariaDB and SQLite: what cannot work is a problem, a lookup no index serves gets
the exact statement that makes one serve it, and running that statement makes the advice go away."""

from __future__ import annotations

import textwrap

import pytest
import sqlalchemy as sa

from connectors.base import Finding
from connectors.sql import with_driver
from connectors.systems import system_load
from estate.stores import estate_database_drop, estate_database_ensure, estate_database_url

SCHEMA = [
    "CREATE TABLE customer (id integer PRIMARY KEY, email varchar(200) NOT NULL, full_name varchar(200) NOT NULL, "
    "phone varchar(40), card varchar(40), born date, joined timestamp)",
    "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customer (id), total integer, placed_at timestamp)",
    "CREATE TABLE review (id integer PRIMARY KEY, customer_id integer REFERENCES customer (id) ON DELETE CASCADE, body text)",
]
FITS = """\
    name: shop
    kind: sql
    connection: {url: "URL"}
    tables:
      - name: customer
        identity: {email: email}
        collected_at: joined
        columns: {email: name_contact, full_name: name_contact, phone: name_contact, card: {category: payment, transform: last4}}
      - name: orders
        parent: {table: customer, column: customer_id}
        collected_at: placed_at
        columns: {total: payment}
    """


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def database(request, tmp_path):
    """An empty database of each kind; its URL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shop.sqlite3'}"
        return
    if request.param == "mariadb":
        yield request.getfixturevalue("mariadb_url")
        return
    estate_database_drop("shopcheck")
    estate_database_ensure("shopcheck")
    yield estate_database_url("shopcheck")
    estate_database_drop("shopcheck")


def _on_mariadb(url: str) -> bool:
    return url.startswith("mysql")


def _indexed(url: str, text: str = FITS) -> tuple[list[str], str]:
    """The statements that index the lookups of FITS (or a file like it), and the file that goes
    with them. MariaDB indexes no lower(trim(email)): there the file finds the subject by an
    indexed generated column holding it."""
    if _on_mariadb(url):
        return (["ALTER TABLE customer ADD COLUMN email_dsar varchar(200) AS (lower(trim(email))) VIRTUAL, ADD INDEX customer_email_dsar (email_dsar)",
                 "CREATE INDEX orders_customer ON orders (customer_id)"],
                text.replace("identity: {email: email}", "identity: {email: email_dsar, match: exact}"))
    return ["CREATE INDEX customer_email ON customer (lower(trim(email)))", "CREATE INDEX orders_customer ON orders (customer_id)"], text


def _run(url: str, *statements: str) -> None:
    engine = sa.create_engine(with_driver(url))
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def _check(tmp_path, url: str, text: str = FITS) -> list[Finding]:
    file = tmp_path / "shop.yaml"
    file.write_text(textwrap.dedent(text).replace("URL", url))
    connector = system_load(file, {}).connector()
    try:
        return connector.check()
    finally:
        connector.close()


def test_a_file_that_fits_with_its_lookups_indexed_finds_nothing(tmp_path, database):
    indexes, fits = _indexed(database)
    _run(database, *SCHEMA, *indexes)
    assert _check(tmp_path, database, fits) == []


@pytest.mark.parametrize("database", ["postgresql", "sqlite"], indirect=True)
def test_a_lookup_no_index_serves_is_advised_the_index_and_the_advice_is_right(tmp_path, database):
    _run(database, *SCHEMA)
    identity = "CREATE INDEX customer_email_dsar ON customer (lower(trim(email)));"
    parent = "CREATE INDEX orders_customer_id_dsar ON orders (customer_id);"
    assert _check(tmp_path, database) == [
        Finding("tables[0].identity", f"no index serves the lookup, so each request reads the whole table: {identity}", problem=False),
        Finding("tables[1].parent", f"no index serves the lookup, so each request reads the whole table: {parent}", problem=False),
    ]
    _run(database, identity.rstrip(";"), parent.rstrip(";"))
    assert _check(tmp_path, database) == []


@pytest.mark.parametrize("database", ["mariadb"], indirect=True)
def test_on_mariadb_a_case_insensitive_lookup_is_advised_an_indexed_generated_column_and_the_advice_is_right(tmp_path, database):
    # InnoDB indexes a foreign key's columns itself: orders here has none, so that its lookup is advised too.
    _run(database, SCHEMA[0], "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL, total integer, placed_at timestamp)")
    column = ("ALTER TABLE customer ADD COLUMN email_dsar VARCHAR(200) AS (lower(trim(email))) VIRTUAL, "
              "ADD INDEX customer_email_dsar (email_dsar);")
    file_change = "then find the subject by it: `identity: {email: email_dsar, match: exact}`"
    parent = "CREATE INDEX orders_customer_id_dsar ON orders (customer_id);"
    assert _check(tmp_path, database) == [
        Finding("tables[0].identity", f"no index serves the lookup, so each request reads the whole table: {column} {file_change} "
                                      "(MariaDB indexes no expression such as lower(trim(email)))", problem=False),
        Finding("tables[1].parent", f"no index serves the lookup, so each request reads the whole table: {parent}", problem=False),
    ]
    _run(database, column.rstrip(";"), parent.rstrip(";"))
    assert _check(tmp_path, database, FITS.replace("identity: {email: email}", "identity: {email: email_dsar, match: exact}")) == []


@pytest.mark.parametrize("database", ["mariadb"], indirect=True)
def test_on_mariadb_another_case_insensitive_identity_is_advised_an_exact_match_on_an_index(tmp_path, database):
    _run(database, "CREATE TABLE loyalty (card varchar(20) PRIMARY KEY, holder varchar(40), points integer)")
    loyalty = """\
        name: shop
        kind: sql
        connection: {url: "URL"}
        tables:
          - name: loyalty
            primary_key: card
            identity: {holder_name: holder, match: case_insensitive}
            columns: {points: subscription}
        """
    assert _check(tmp_path, database, loyalty) == [Finding(
        "tables[0].identity", "no index serves the lookup, so each request reads the whole table: MariaDB indexes no expression such as "
                              "lower(trim(holder)): if the column holds its values as the system providing them does, write `match: exact` and "
                              "CREATE INDEX loyalty_holder_dsar ON loyalty (holder);", problem=False)]
    _run(database, "CREATE INDEX loyalty_holder_dsar ON loyalty (holder)")
    assert _check(tmp_path, database, loyalty.replace("match: case_insensitive", "match: exact")) == []


def test_tables_and_columns_the_database_lacks_and_columns_of_the_wrong_type_are_problems(tmp_path, database):
    _run(database, *SCHEMA)
    broken = FITS.replace("collected_at: joined", "collected_at: full_name").replace("phone: name_contact", "mobile: name_contact")
    broken = broken.replace("card: {category: payment, transform: last4}", "born: {category: payment, transform: last4}")
    broken = broken.replace("name: orders", "name: purchases")
    assert [(f.where, f.what, f.problem) for f in _check(tmp_path, database, broken)] == [
        ("tables[0].columns.mobile", "customer has no column mobile", True),
        ("tables[0].collected_at", "customer.full_name holds VARCHAR(200), not a date or time", True),
        ("tables[0].columns.born", "customer.born holds DATE, not text: `last4` and `mask` need text", True),
        ("tables[1].name", "no table purchases in the database", True),
    ]


def test_an_erasure_the_constraints_would_refuse_is_a_problem_and_one_they_allow_is_not(tmp_path, database):
    indexes, nulled = _indexed(database, FITS.replace("full_name: name_contact", "full_name: {category: name_contact, erase: null}"))
    _run(database, *SCHEMA, "CREATE TABLE note (id integer PRIMARY KEY, customer_id integer REFERENCES customer (id) ON DELETE RESTRICT)",
         *indexes)
    # orders is in the file under customer, so it is deleted first; review cascades; note refuses.
    assert [(f.where, f.what) for f in _check(tmp_path, database, nulled)] == [
        ("tables[0].columns.full_name.erase", "`null` cannot clear customer.full_name: the column is NOT NULL (erase the table by `delete`, "
                                              "or the column by `mask`)"),
        ("tables[0].erase", "deleting from customer would be refused while note.customer_id points at the row (ON DELETE RESTRICT): add "
                            "note to the file with customer as its parent, or erase this table by `null` or `mask`"),
    ]


def test_a_trigger_on_a_table_the_erasure_writes_is_told_as_advice(tmp_path, database):
    indexes, fits = _indexed(database)
    _run(database, *SCHEMA, *indexes)
    if database.startswith("sqlite"):
        _run(database, "CREATE TRIGGER keep_copy AFTER DELETE ON orders BEGIN SELECT 1; END")
    elif _on_mariadb(database):
        _run(database, "CREATE TRIGGER keep_copy AFTER DELETE ON orders FOR EACH ROW SET @copied = 1")
    else:
        _run(database, "CREATE FUNCTION nothing() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$",
             "CREATE TRIGGER keep_copy AFTER DELETE ON orders FOR EACH ROW EXECUTE FUNCTION nothing()")
    assert _check(tmp_path, database, fits) == [
        Finding("tables[1].erase", "trigger keep_copy on orders runs when the erasure writes: make sure it neither blocks nor copies the data",
                problem=False)]


def test_a_database_that_cannot_be_reached_is_a_problem_of_the_connection(tmp_path):
    [finding] = _check(tmp_path, "postgresql://nobody@127.0.0.1:9/shop")
    assert (finding.where, finding.problem) == ("connection", True)
    assert finding.what.startswith("database unavailable: ")


def test_a_table_without_the_files_key_is_told_its_key_and_one_with_no_primary_key_is_refused(tmp_path, database):
    _run(database, "CREATE TABLE customer (customer_no integer PRIMARY KEY, email varchar(200) NOT NULL)",
         "CREATE TABLE orders (customer_id integer, total integer)")
    keyless = """\
        name: shop
        kind: sql
        connection: {url: "URL"}
        tables:
          - name: customer
            identity: {email: email}
            columns: {email: name_contact}
          - name: orders
            parent: {table: customer, column: customer_id}
            columns: {total: payment}
        """
    assert [(f.where, f.what) for f in _check(tmp_path, database, keyless)] == [
        ("tables[0].primary_key", "customer has no column id; its primary key is customer_no: write `primary_key: customer_no`"),
        ("tables[1].primary_key", "orders has no primary key: add one to the table (the product needs a key that names one row, to read on "
                                  "past a batch and to erase)"),
    ]


def test_a_mask_the_column_cannot_hold_is_a_problem(tmp_path, database):
    _run(database, "CREATE TABLE customer (id integer PRIMARY KEY, email varchar(200) NOT NULL, phone varchar(20), note varchar(100))")
    short = """\
        name: shop
        kind: sql
        connection: {url: "URL"}
        tables:
          - name: customer
            identity: {email: email}
            erase: mask
            columns: {email: name_contact, phone: name_contact, note: other_input}
        """
    assert [(f.where, f.what) for f in _check(tmp_path, database, short) if f.problem] == [
        ("tables[0].columns.phone", "customer.phone holds VARCHAR(20): a mask is 64 characters (widen the column, or erase it by `null` or "
                                    "`delete`)"),
    ]


def test_a_key_from_the_table_that_provides_the_identity_does_not_refuse_the_table_found_by_it(tmp_path, database):
    _run(database, "CREATE TABLE address (address_id integer PRIMARY KEY, street varchar(100) NOT NULL)",
         "CREATE TABLE customer (id integer PRIMARY KEY, email varchar(200), address_id integer NOT NULL REFERENCES address (address_id))",
         "CREATE TABLE store (id integer PRIMARY KEY, address_id integer NOT NULL REFERENCES address (address_id))")
    linked = """\
        name: shop
        kind: sql
        connection: {url: "URL"}
        tables:
          - name: customer
            identity: {email: email}
            provides: {home: address_id}
            columns: {email: name_contact}
          - name: address
            primary_key: address_id
            identity: {home: address_id}
            columns: {street: name_contact}
        """
    # The customer's row is erased before its address: only the store's key can refuse the address's delete.
    assert [(f.where, f.what.split(" (ON DELETE")[0]) for f in _check(tmp_path, database, linked) if f.problem] == [
        ("tables[1].erase", "deleting from address would be refused while store.address_id points at the row")]
