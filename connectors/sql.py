"""One generic connector for SQL systems, driven by a dataset file (connectors/sql_dataset.py).

It speaks SQLAlchemy Core, so any database SQLAlchemy reaches can be a system. Each table's rows
of the subject are read in key order: a typical subject's in one query, and a table with more rows
than one batch goes on from its last key as a streamed result, so memory stays bounded at any size.
Each row becomes one record per category it holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import select
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
# SQLAlchemy loads a dialect on the first create_engine(). Loaded with this module instead, a
# worker's parent holds PostgreSQL's before it forks its pool, and no pool process spends its first
# task importing it.
import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.exc import CompileError, DBAPIError, OperationalError
from sqlalchemy.ext.compiler import compiles

from .ages import lowest_age
from .base import (AgeEvidence, Connector, ConnectorError, ErasureReceipt, ErasureStep, Finding, Identity, Organization, PermanentError, Period,
                   Record, Source, TransientError)
from .sql_check import schema_findings
from .sql_dataset import Column, Dataset, DatasetError, Table, dataset_load

__all__ = ["BATCH", "DatasetError", "SqlConnector", "TableRead", "database_errors", "dataset_load", "sibling_database_url", "with_driver"]

BATCH = 1000
# What each transform does in the database, and how its result is shown. Only the last four digits
# of a card number ever leave the database.
class last4(sa.sql.expression.FunctionElement):
    """The last four characters of a text, in the database: `right(x, 4)`, spelt `substr(x, -4)` by
    SQLite (SQLAlchemy's custom compilation)."""

    type = sa.String()
    name = "last4"
    inherit_cache = True


@compiles(last4)
def _last4(element: last4, compiler: sa.sql.compiler.SQLCompiler, **kw: Any) -> str:
    return f"right({compiler.process(element.clauses, **kw)}, 4)"


@compiles(last4, "sqlite")
def _last4_sqlite(element: last4, compiler: sa.sql.compiler.SQLCompiler, **kw: Any) -> str:
    return f"substr({compiler.process(element.clauses, **kw)}, -4)"


TRANSFORMS: dict[str, tuple[Callable[[sa.ColumnElement], sa.ColumnElement], Callable[[Any], str]]] = {
    "last4": (last4, lambda value: f"**** {value}"),
}
SECRET_SET = "set (never exported)"


# --- What each database spells its own way (SQLAlchemy's custom compilation) -----------------------
# Tested on PostgreSQL, MariaDB (as MySQL too) and SQLite; other dialects take the default spelling.


class keyed_sha256(sa.sql.expression.FunctionElement):
    """`keyed_sha256(key, value)`: the SHA-256 of the key followed by the value, both as UTF-8, in
    64 lower-case hex digits, computed in the database so the value never travels. The same digits
    on every database, so a masked value can be matched across systems."""

    type = sa.String()
    name = "keyed_sha256"
    inherit_cache = True


@compiles(keyed_sha256)
def _keyed_sha256(element: keyed_sha256, compiler: sa.sql.compiler.SQLCompiler, **kw: Any) -> str:
    raise CompileError(f"the `mask` erase strategy has no SHA-256 on {compiler.dialect.name} (PostgreSQL, MySQL, MariaDB and SQLite have one)")


@compiles(keyed_sha256, "postgresql")
def _keyed_sha256_postgresql(element: keyed_sha256, compiler: sa.sql.compiler.SQLCompiler, **kw: Any) -> str:
    key, value = element.clauses
    digest = sa.func.sha256(sa.func.convert_to(key + sa.cast(value, sa.Text), "UTF8"))
    return compiler.process(sa.func.encode(digest, "hex"), **kw)


@compiles(keyed_sha256, "mysql", "mariadb")
def _keyed_sha256_mysql(element: keyed_sha256, compiler: sa.sql.compiler.SQLCompiler, **kw: Any) -> str:
    key, value = (compiler.process(clause, **kw) for clause in element.clauses)
    # SHA2 hashes the text in its character set: converted, a latin1 column hashes as UTF-8 too.
    return f"SHA2(CONVERT(CONCAT({key}, {value}) USING utf8mb4), 256)"


@compiles(keyed_sha256, "sqlite")
def _keyed_sha256_sqlite(element: keyed_sha256, compiler: sa.sql.compiler.SQLCompiler, **kw: Any) -> str:
    key, value = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"dsar_sha256({key} || {value})"  # registered on each connection by `_sqlite_session`


def _sha256_hex(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


MASKED = "^[0-9a-f]{64}$"


# The conditions below have no Boolean type: one would be compared with 1 on MySQL and SQLite
# (`x IN (...) = 1`), which no index serves.
class masked(sa.sql.expression.FunctionElement):
    """Whether a value is a mask already: 64 lower-case hex digits."""

    name = "masked"
    inherit_cache = True


@compiles(masked)
def _masked(element: masked, compiler: sa.sql.compiler.SQLCompiler, **kw: Any) -> str:
    (value,) = element.clauses
    return compiler.process(value.regexp_match(MASKED).self_group(), **kw)


@compiles(masked, "mysql", "mariadb")
def _masked_mysql(element: masked, compiler: sa.sql.compiler.SQLCompiler, **kw: Any) -> str:
    # REGEXP follows the column's collation, which commonly ignores case; as bytes it does not.
    (value,) = element.clauses
    return f"(CAST({compiler.process(value, **kw)} AS BINARY) REGEXP {compiler.process(sa.literal(MASKED), **kw)})"


class one_of(sa.sql.expression.FunctionElement):
    """`one_of(value, values)`: whether the value is one of `values` (a parameter declared
    expanding, which PostgreSQL binds as one array), compared byte for byte, as PostgreSQL and
    SQLite compare text."""

    name = "one_of"
    inherit_cache = True


@compiles(one_of)
def _one_of(element: one_of, compiler: sa.sql.compiler.SQLCompiler, **kw: Any) -> str:
    value, values = element.clauses
    return compiler.process(value.in_(values).self_group(), **kw)


@compiles(one_of, "postgresql")
def _one_of_postgresql(element: one_of, compiler: sa.sql.compiler.SQLCompiler, **kw: Any) -> str:
    """PostgreSQL: `= ANY` of one array parameter of the value's type. Its text does not depend on
    how many values there are, so SQLAlchemy renders the statement once (an expanding IN is
    rendered again at each execution, for its number of values)."""
    value, values = element.clauses
    if isinstance(value.type, sa.types.NullType):
        return _one_of(element, compiler, **kw)
    return compiler.process((value == sa.any_(sa.bindparam(values.key, type_=postgresql.ARRAY(value.type)))).self_group(), **kw)


@compiles(one_of, "mysql", "mariadb")
def _one_of_mysql(element: one_of, compiler: sa.sql.compiler.SQLCompiler, **kw: Any) -> str:
    """MySQL and MariaDB compare text under the column's collation, which commonly ignores case,
    accents and trailing spaces ('L-7' = 'l-7', 'josé' = 'jose'): the IN, which an index on the
    column serves, finds the candidates, and they are compared again as UTF-8 bytes."""
    value, values = element.clauses
    found = value.in_(values)
    if isinstance(value.type, (sa.Integer, sa.Numeric)):
        return compiler.process(found.self_group(), **kw)
    # Typed as text, so that the values are bound as text (which the database compares as bytes).
    as_bytes = sa.type_coerce(sa.cast(sa.cast(value, mysql.CHAR(charset="utf8mb4")), mysql.BINARY()), sa.String())
    return compiler.process(sa.and_(found, as_bytes.in_(values)).self_group(), **kw)


class _UtcTime(sa.types.TypeDecorator):
    """A time column of a database with no time type that holds a zone (MySQL, MariaDB, SQLite):
    its times are taken as UTC (the session's zone is UTC there, see `_utc_session`), and come out
    with UTC's zone, as PostgreSQL's `timestamptz` does."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        return value.astimezone(dt.UTC).replace(tzinfo=None) if isinstance(value, dt.datetime) and value.tzinfo else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return value.replace(tzinfo=dt.UTC) if isinstance(value, dt.datetime) and value.tzinfo is None else value


def _utc_session(dbapi_connection: Any, _record: Any) -> None:
    """MySQL and MariaDB give TIMESTAMP columns in the session's zone: UTC, whatever the server's."""
    with contextlib.closing(dbapi_connection.cursor()) as cursor:
        cursor.execute("SET time_zone = '+00:00'")


# How long a statement waits on another session's lock, and how long the server keeps a session whose
# client stopped acknowledging (PostgreSQL).
LOCK_TIMEOUT_SECONDS = 10
TCP_USER_TIMEOUT_MS = 25_000


def _postgresql_session(dbapi_connection: Any, _record: Any) -> None:
    """A worker host killed mid-erase leaves its session's row locks held for as long as Linux keeps
    a connection with data unacknowledged, about 15 minutes, and a retry would wait on them with its
    lease renewed, the request stuck. So a statement gives up on a lock after LOCK_TIMEOUT_SECONDS (a
    transient error: the task is retried later, its transaction rolled back), and the server drops a
    session whose client has not acknowledged for TCP_USER_TIMEOUT_MS, its locks with it (over TCP;
    a Unix socket has no such wait). The session's zone is UTC, as the other dialects' are: a `date`
    column compared with a time is taken as midnight in the session's zone, so a retention rule
    dated by a day ended at midnight in UTC whatever zone the server or the role defaults to."""
    with contextlib.closing(dbapi_connection.cursor()) as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'")
        cursor.execute(f"SET tcp_user_timeout = {TCP_USER_TIMEOUT_MS}")
    dbapi_connection.commit()  # a SET in PostgreSQL lasts only if its transaction commits


def _sqlite_session(dbapi_connection: Any, _record: Any) -> None:
    """SQLite has no SHA-256 of its own: the `mask` strategy's is Python's, the same digits."""
    dbapi_connection.create_function("dsar_sha256", 1, _sha256_hex, deterministic=True)


# A pooled session is tested with a round trip before it is given out unless it was used a moment
# ago (under this many seconds) and the server has said nothing on it since: a server that ends a
# session (a restart, an administrator) says so on its socket, which is looked at without a round
# trip. SQLAlchemy's pool_pre_ping tests every checkout, which cost a worker a round trip a gather
# (about 0.1 M instructions each, three an access request on the demo estate). A session lost
# silently (a firewall dropping it) within the time fails that attempt, which is retried on a new
# one. A driver that does not give its socket (PyMySQL, SQLite's) is tested at every checkout.
PING_AFTER_IDLE_SECONDS = 30


def _checked_in(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_unless_fresh(dbapi_connection: Any, record: Any, _proxy: Any, *, dialect: sa.Dialect) -> None:
    """The pool's checkout event: a session that does not answer is replaced (DisconnectionError
    makes the pool discard it and give out another)."""
    idle_since = record.info.get("idle_since")
    fileno = getattr(dbapi_connection, "fileno", None)
    if idle_since is None:  # made for this checkout
        return
    if fileno is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS and not _has_spoken(fileno()):
        return
    try:
        dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as error:
        raise sa.exc.DisconnectionError(str(error)) from error


def _has_spoken(fileno: int) -> bool:
    """Whether the server sent anything on an idle session's socket (an end, an error), or closed it."""
    readable, _, _ = select.select([fileno], [], [], 0)
    return bool(readable)


# What each new connection of a dialect needs first, and which dialects keep times without a zone.
SESSION_SETUP: dict[str, Callable[[Any, Any], None]] = {"postgresql": _postgresql_session, "mysql": _utc_session, "mariadb": _utc_session,
                                                      "sqlite": _sqlite_session}
ZONELESS_TIMES = frozenset({"mysql", "mariadb", "sqlite"})


class SqlConnector(Connector):
    """Reads and erases a subject's rows in one SQL database, as its dataset file describes.

    Options: `dataset` (the system file's tables, parsed), `url` (SQLAlchemy's; unset: the database
    beside the product's named after the system), `mask_key` (the key of the `mask` erase strategy;
    unset: derived from the product's secret key).
    """

    def __init__(self, *, name: str | None = None, dataset: Dataset, url: str | None = None, mask_key: str | None = None, **options: Any) -> None:
        super().__init__(name=name, **options)
        self.dataset = dataset
        self.categories = dataset.categories()
        self._url = url
        self._mask_key = mask_key
        self._engine: sa.Engine | None = None
        self._reads: list[TableRead] | None = None
        self._types: dict[str, dict[str, sa.types.TypeEngine]] | None = None
        self._references: dict[str, set[str]] = {}  # a table -> the tables its foreign keys point at

    @property
    def engine(self) -> sa.Engine:
        """The system's engine, made on first use (a small pool: a worker runs one task at a time)."""
        if self._engine is None:
            url = with_driver(self._url) if self._url else sibling_database_url(self.dataset.system)
            engine = sa.create_engine(url, pool_size=2, max_overflow=2)
            if setup := SESSION_SETUP.get(engine.dialect.name):
                sa.event.listen(engine, "connect", setup)
            sa.event.listen(engine, "checkin", _checked_in)
            sa.event.listen(engine, "checkout", functools.partial(_ping_unless_fresh, dialect=engine.dialect))
            self._engine = engine
        return self._engine

    def close(self) -> None:
        """Close the engine's connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def now(self) -> dt.datetime:
        """The time retention rules count back from."""
        return dt.datetime.now(dt.UTC)

    # --- Reaching the subject ---------------------------------------------------------------

    def _table(self, table: Table, *columns: str) -> sa.TableClause:
        """The table with its key, the columns that reach the subject, and `columns`, each of the
        type the database gives it (so that SQLite's times come back as times)."""
        types = (self._types or {}).get(table.name, {})
        return sa.table(table.name, *(sa.column(c, types.get(c)) for c in dict.fromkeys([*table.primary_key, *table.reach, *columns])))

    def _key(self, table: Table, t: sa.TableClause) -> list[sa.ColumnClause]:
        return [t.c[column] for column in table.primary_key]

    def _belongs(self, table: Table, t: sa.TableClause) -> sa.ColumnElement:
        """The condition that a row of `table` (as `t`) is the subject's: its identity column holds
        one of the subject's values of that identity (bound as `identity_<name>`, or
        `identity_<name>_folded` trimmed and lower-cased), or its parent's key is one of the subject's
        parent rows. A condition rather than a list of keys, so the planner reads each table once."""
        if table.identity:
            column, name = t.c[table.identity.column], table.identity.name
            if table.identity.match == "case_insensitive":
                return one_of(sa.func.lower(sa.func.trim(column), type_=sa.Text()), sa.bindparam(f"identity_{name}_folded", expanding=True))
            return one_of(column, sa.bindparam(f"identity_{name}", expanding=True))
        mine = [t.c[column] for column in table.parent.columns]
        return _row(mine).in_(self._keys(self.dataset.table(table.parent.table)))

    def _keys(self, table: Table) -> sa.Select:
        """SELECT of `table`'s primary keys that belong to the subject."""
        t = self._table(table)
        return sa.select(*self._key(table, t)).where(self._belongs(table, t))

    def identity_params(self, identity: Identity) -> dict[str, list[Any]]:
        """The subject's values of every identity, as the statements bind them. An identity the
        subject has no value of binds none, and its tables find nothing."""
        values = {name: [] for t in self.dataset.tables if t.identity for name in [t.identity.name]}
        values |= {name: list(found) for name, found in identity.ids.items()} | {"email": [identity.email]}
        params: dict[str, list[Any]] = {}
        for name, found in values.items():
            params[f"identity_{name}"] = found
            params[f"identity_{name}_folded"] = [str(value).strip().lower() for value in found]
        return params

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sa.Connection]:
        """A connection, with the database's errors turned into the connector's."""
        with database_errors(self.name), self.engine.connect() as conn:
            if self._types is None:  # once: the tables' column types and keys, read before any statement is built
                inspector = sa.inspect(conn)
                present = [t.name for t in self.dataset.tables if t.name in set(inspector.get_table_names())]
                zoneless = conn.dialect.name in ZONELESS_TIMES
                self._types = {name: {c["name"]: _UtcTime() if zoneless and isinstance(c["type"], sa.DateTime) else c["type"]
                                      for c in inspector.get_columns(name)}
                               for name in present}
                self._references = {name: {key["referred_table"] for key in inspector.get_foreign_keys(name)} for name in present}
                if conn.in_transaction():
                    conn.commit()
            yield conn

    def managing_organization(self, identity: Identity) -> Organization | None:
        """The organisation named in the dataset's `organization` column for the subject, if any,
        with its contact from the `contact_column` beside it."""
        organization = self.dataset.organization
        if not organization:
            return None
        table = self.dataset.table(organization.table)
        t = self._table(table, organization.column, *filter(None, [organization.contact_column]))
        name, contact = t.c[organization.column], t.c[organization.contact_column] if organization.contact_column else sa.null()
        query = sa.select(name, contact).where(self._belongs(table, t), name.isnot(None)).limit(1)
        with self._connection() as conn:
            row = conn.execute(query, self._subject_params(conn, identity)).first()
        return Organization(row[0], row[1] or None) if row else None

    def subject_age(self, identity: Identity, *, on: dt.date) -> AgeEvidence | None:
        """The lowest age the subject can be on `on` by the dataset's `age` column, the youngest its
        rows give (a value it cannot read gives none), if the dataset declares one."""
        if not self.dataset.age:
            return None
        table, column, kind = self.dataset.table(self.dataset.age.table), self.dataset.age.column, self.dataset.age.kind
        with self._connection() as conn:  # first, so the column has the type the database gives it (SQLite's dates)
            t = self._table(table, column)
            query = sa.select(t.c[column]).where(self._belongs(table, t), t.c[column].isnot(None))
            values = conn.execute(query, self._subject_params(conn, identity)).scalars().all()
        ages = [age for age in (lowest_age(kind, value, on) for value in values) if age is not None]
        return AgeEvidence(min(ages), f"{self.name}: {table.name}.{column}") if ages else None

    def identities_found(self, identity: Identity) -> dict[str, list[Any]]:
        """The values of each identity this system's tables `provide` for the subject (a customer
        number, a phone), for the systems found by them; distinct and in order."""
        with self._connection() as conn:
            return self._provided(conn, self._subject_params(conn, identity))

    def _provided(self, conn: sa.Connection, params: dict) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        for table in self.dataset.tables:
            for name, column in table.provides.items():
                t = self._table(table, column)
                query = sa.select(t.c[column]).where(self._belongs(table, t), t.c[column].isnot(None)).distinct().order_by(t.c[column])
                values = found.setdefault(name, [])
                values += [value for value in conn.execute(query, params).scalars() if value not in values]
        return found

    def _subject_params(self, conn: sa.Connection, identity: Identity) -> dict[str, list[Any]]:
        """`identity_params`, with the identities this system provides to its own tables found first
        (a table found by the customer number its customer table holds)."""
        own = self.dataset.identities_provided() & self.dataset.identities_needed()
        params = self.identity_params(identity)
        for _ in own:  # each round can find the identities one table further on
            found = {name: values for name, values in self._provided(conn, params).items() if name in own}
            params = self.identity_params(Identity(identity.email, {**identity.ids, **found}))
        return params

    # --- Checking ----------------------------------------------------------------------------

    def check(self) -> list[Finding]:
        """The file fitted against the live schema (connectors/sql_check.py), changing nothing."""
        try:
            with self._connection() as conn, conn.begin() as transaction:
                findings = schema_findings(self, conn)
                transaction.rollback()
                return findings
        except ConnectorError as error:
            return [Finding("connection", str(error).removeprefix(f"{self.name}: "))]

    def lookup(self, table: Table) -> sa.Select:
        """The statement that reads the subject's first rows of `table` (its identity bound)."""
        return self._table_reads()[self.dataset.tables.index(table)].first

    # --- Gathering ---------------------------------------------------------------------------

    def gather(self, identity: Identity) -> Iterator[Record]:
        """Every table's rows of the subject, in key order, as records. Secrets are reduced to
        whether they are set in the database; they never travel."""
        return self._gather(identity, self._rest_records)

    def gather_period(self, identity: Identity, period: Period) -> Iterator[Record]:
        """What `gather` yields, of a table dated by a column (its `collected_at`) only the rows
        dated within `period`, or not dated at all, chosen by the query."""
        return self._gather(identity, self._rest_records, period)

    def period_undated(self, categories: frozenset[str]) -> list[str]:
        """The tables holding some of `categories` with no `collected_at` column to date them by."""
        return [f"{self.name}.{table.name}" for table in self.dataset.tables if not table.collected_at and table.categories & categories]

    def _gather(self, identity: Identity, rest: Callable[[sa.Connection, TableRead, dict], Iterator[Any]],
                period: Period | None = None) -> Iterator[Any]:
        """Each table's first batch of rows as records, and what `rest` makes of a longer table's
        other rows (`params` then hold the last key read, as `after_0`, `after_1`, …); of a dated
        table, only the rows within `period`, when there is one."""
        with self._connection() as conn:
            params = self._subject_params(conn, identity)
            for read in self._table_reads():
                read = read.within(period) if period is not None else read
                rows = conn.execute(read.first, params).all()
                yield from read.records(rows[:BATCH])
                if len(rows) > BATCH:
                    last = rows[BATCH - 1]
                    after = {f"after_{index}": last[index] for index in range(len(read.table.primary_key))}
                    yield from rest(conn, read, {**params, **after})

    def _rest_records(self, conn: sa.Connection, read: TableRead, params: dict) -> Iterator[Record]:
        for batch in conn.execute(read.rest, params).partitions():
            yield from read.records(batch)

    def _table_reads(self) -> list[TableRead]:
        """Each table's queries and row reader, made once per connector; the subject is a bound
        parameter, so SQLAlchemy compiles each query once too."""
        if self._reads is None:
            self._reads = [self._table_read(table) for table in self.dataset.tables]
        return self._reads

    def _table_read(self, table: Table) -> TableRead:
        plain = [c.name for c in table.columns if not c.transform]
        extra = [table.source_column, table.source_name_column, table.source_kind_column, table.category_column,
                 table.data_column, table.collected_at, table.retain and table.retain.date_column,
                 *(s.changed_at for s in table.secrets)]
        names = list(dict.fromkeys([*table.primary_key, *plain, *(c for c in extra if c)]))
        t = self._table(table, *names, *(c.name for c in table.columns if c.transform))
        selected = [t.c[name] for name in names]
        selected += [TRANSFORMS[c.transform][0](t.c[c.name]) for c in table.columns if c.transform]
        # Only whether a secret is set leaves the database, never the secret itself.
        selected += [sa.literal_column(s.column).isnot(None) for s in table.secrets]
        key = self._key(table, t)
        query = sa.select(*selected).select_from(t).where(self._belongs(table, t)).order_by(*key)
        at = {name: index for index, name in enumerate(names)}
        transformed = iter(range(len(names), len(selected)))
        columns = [(next(transformed), c.name, c.category, TRANSFORMS[c.transform][1]) if c.transform else (at[c.name], c.name, c.category, _plain)
                   for c in table.columns]
        secrets = [(next(transformed), s.name, s.category, at[s.changed_at] if s.changed_at else None) for s in table.secrets]
        return TableRead(
            dated=t.c[table.collected_at] if table.collected_at else None,
            first=query.limit(BATCH + 1),
            # A server-side cursor, fetched in partitions of BATCH rows: constant memory at any size.
            rest=query.where(after_key(key)).execution_options(yield_per=BATCH),
            table=table,
            system=f"{self.name}.{table.name}",
            columns=columns,
            secrets=secrets,
            at=at,
            source=None if (table.source_column or table.source_name_column or table.source_kind_column) else Source(table.source),
            others=frozenset(c.name for c in table.columns if c.others or table.others),
        )

    # --- Erasing -----------------------------------------------------------------------------

    def erase(self, identity: Identity, categories: frozenset[str] | None = None) -> ErasureReceipt:
        """Children before parents, in one transaction. A table is deleted when all its categories,
        and all its descendants', are requested; otherwise only the requested columns are cleared
        (or masked). Rows a retention rule covers, and what the file keeps, stay and are listed in
        the receipt; so does a row whose descendants stay, since deleting it would take them too."""
        return self._erase(identity, categories, keep_changes=True)

    def erase_preview(self, identity: Identity, categories: frozenset[str] | None = None) -> ErasureReceipt:
        """What `erase` would do, found by doing it in a transaction that is then rolled back."""
        return self._erase(identity, categories, keep_changes=False)

    def _erase(self, identity: Identity, categories: frozenset[str] | None, *, keep_changes: bool) -> ErasureReceipt:
        wanted = set(categories) if categories else set(self.categories)
        receipt = ErasureReceipt()
        with self._connection() as conn, conn.begin() as transaction:
            params = self._subject_params(conn, identity)
            self.before_erase(conn, identity, wanted, receipt)
            for table in self.dataset.erase_order(self._references):
                self._erase_table(conn, table, params, wanted, receipt)
            if not keep_changes:
                transaction.rollback()
        return receipt

    def before_erase(self, conn: sa.Connection, identity: Identity, wanted: set[str], receipt: ErasureReceipt) -> None:
        """A hook for systems that must record something in the erasure's own transaction."""

    def _whole_subtree_wanted(self, table: Table, wanted: set[str]) -> bool:
        return table.categories <= wanted and all(self._whole_subtree_wanted(c, wanted) for c in self.dataset.children(table.name))

    def _erase_table(self, conn: sa.Connection, table: Table, params: dict, wanted: set[str], receipt: ErasureReceipt) -> None:
        if not table.categories & wanted:
            return
        where = f"{self.name}.{table.name}"
        if table.erase == "keep":
            t = self._table(table)
            count = conn.execute(sa.select(sa.func.count()).select_from(t).where(self._belongs(table, t)), params).scalar()
            for category in sorted(table.categories & wanted):
                receipt.record(ErasureStep(where, "kept", category, count, table.reason))
            return
        if table.erase == "delete" and (table.category_column or self._whole_subtree_wanted(table, wanted)):
            self._delete_rows(conn, table, params, wanted, receipt)
            return
        strategy = {c.name: c.erase or table.erase for c in table.columns} | {s.column: table.erase for s in table.secrets}
        category = {c.name: c.category for c in table.columns} | {s.column: s.category for s in table.secrets}
        requested = [column for column in category if category[column] in wanted]
        t = self._table(table, *requested)
        for column in requested:
            if strategy[column] == "keep":
                count = conn.execute(sa.select(sa.func.count()).select_from(t).where(self._belongs(table, t), t.c[column].isnot(None)),
                                     params).scalar()
                receipt.record(ErasureStep(where, "kept", category[column], count, self._column(table, column).reason or table.reason))
        cleared = [column for column in requested if strategy[column] != "keep"]
        if not cleared:
            return
        values = {c: self._mask(t.c[c]) if strategy[c] == "mask" else None for c in cleared}
        # A masked value is 64 hex digits: rows already masked or cleared are left alone.
        pending = sa.or_(*(t.c[c].isnot(None) & ~masked(t.c[c]) if strategy[c] == "mask" else t.c[c].isnot(None)
                           for c in cleared))
        count = conn.execute(sa.update(t).where(self._belongs(table, t), pending).values(values), params).rowcount
        done = {(category[c], "masked" if strategy[c] == "mask" else "nulled") for c in cleared}
        for step_category, action in sorted(done):
            receipt.record(ErasureStep(where, action, step_category, count))

    def _column(self, table: Table, name: str) -> Column:
        return next(c for c in table.columns if c.name == name)

    def _mask(self, column: sa.ColumnClause) -> sa.ColumnElement:
        """A keyed SHA-256 of the value, computed in the database so the value never travels."""
        return keyed_sha256(sa.literal(self.mask_key, sa.String()), column)

    @property
    def mask_key(self) -> str:
        """The key of the `mask` strategy: the configured one, or one derived from the secret key."""
        if self._mask_key is None:
            from django.conf import settings

            self._mask_key = hashlib.sha256(f"mask:{self.name}:{settings.SECRET_KEY}".encode()).hexdigest()
        return self._mask_key

    def _staying(self, table: Table, t: sa.TableClause) -> sa.ColumnElement | None:
        """The condition that a row of `table` has a row under it. The tables under a table are erased
        before it (`Dataset.erase_order`), so a row still under it is one that stays: kept or only
        cleared by the file, of a category not asked for, kept by a retention rule, or over a row that
        stays in its turn. Deleting the row would take that row too, or be refused."""
        conditions = []
        for child in self.dataset.children(table.name):
            c = self._table(child)
            mine = _row([c.c[column] for column in child.parent.columns])
            conditions.append(sa.exists().where(mine == _row(self._key(table, t))))
        return sa.or_(*conditions) if conditions else None

    def _delete_rows(self, conn: sa.Connection, table: Table, params: dict, wanted: set[str], receipt: ErasureReceipt) -> None:
        where = f"{self.name}.{table.name}"
        t = self._table(table, *(c for c in (table.category_column, table.retain and table.retain.date_column) if c))
        condition = self._belongs(table, t)
        if table.category_column:
            condition &= t.c[table.category_column].in_(sorted(wanted))
        if table.retain:
            kept_from = table.retain.kept_from(self.now())
            date = t.c[table.retain.date_column]
            kept, newest = conn.execute(sa.select(sa.func.count(), sa.func.max(date)).where(condition, date >= kept_from), params).one()
            if kept:
                until = _day(table.retain.until(_utc(newest)))
                for category in sorted(table.categories & wanted):
                    receipt.record(ErasureStep(where, "kept", category, kept, f"{table.retain.reason} ({table.retain.basis})", until))
            condition &= (date < kept_from) | date.is_(None)  # a row the rule cannot date, it cannot keep
        if (staying := self._staying(table, t)) is not None:
            held = conn.execute(sa.select(sa.func.count()).select_from(t).where(condition, staying), params).scalar()
            for category in sorted(table.categories & wanted):
                receipt.record(ErasureStep(where, "kept", category, held, "kept while records under it are kept"))
            condition &= ~staying
        if table.category_column:
            counts = conn.execute(sa.select(t.c[table.category_column], sa.func.count()).where(condition).group_by(t.c[table.category_column]),
                                  params)
            for category, count in counts:
                receipt.record(ErasureStep(where, "deleted", category, count))
            conn.execute(sa.delete(t).where(condition), params)
            return
        count = conn.execute(sa.delete(t).where(condition), params).rowcount
        for category in sorted(table.categories):
            receipt.record(ErasureStep(where, "deleted", category, count))


@dataclass(frozen=True)
class TableRead:
    """How one table's rows are read and turned into records. Worked out once per table, since a
    subject's table can have millions of rows.

    `first` selects the subject's first BATCH + 1 rows and `rest` those past the key `after`, each
    row as: the key first, then the columns named in `at`, then each transformed column and each
    secret's "is set" in the dataset's order (their positions are in `columns` and `secrets`).
    """

    dated: sa.ColumnClause | None  # the column its rows are dated by (`collected_at`), if any
    first: sa.Select
    rest: sa.Select
    table: Table
    system: str
    columns: list[tuple[int, str, str, Callable[[Any], Any]]]  # position, name, category, how it is shown
    secrets: list[tuple[int, str, str, int | None]]  # position of "is set", name, category, position of changed-at
    at: dict[str, int]
    source: Source | None  # every row's, unless the rows name their own
    others: frozenset[str]  # the columns whose values may be other people's data (all, when the table's rows are)
    period: sa.ColumnElement | None = None  # the condition `within` added, for other queries of the same rows

    @property
    def categories(self) -> set[str]:
        return {category for _, _, category, _ in self.columns} | {category for _, _, category, _ in self.secrets}

    def within(self, period: Period) -> TableRead:
        """The same reads, of only the rows dated within `period` (or with no date); the same
        when the table is not dated, or the period open at both ends."""
        condition = period_condition(self.dated, period) if self.dated is not None else None
        if condition is None:
            return self
        return dataclasses.replace(self, first=self.first.where(condition), rest=self.rest.where(condition), period=condition)

    def records(self, rows: Iterable[sa.Row]) -> Iterator[Record]:
        """The records of `rows`: one per category a row holds a value in."""
        table, at = self.table, self.at
        collected_at = at[table.collected_at] if table.collected_at else None
        if (self.source is not None and len(self.categories) == 1 and not (table.category_column or self.secrets or table.retain)
                and len(self.others) in (0, len(self.columns))):  # none of its columns may be others' data, or all
            # The commonest table, and the one with millions of rows: each row is one record.
            (category,) = self.categories
            others = bool(self.others)
            for row in rows:
                fields = {name: shown(row[index]) for index, name, _, shown in self.columns if row[index] is not None}
                if fields:
                    yield Record(category, fields, self.system, self.source, _utc(row[collected_at]) if collected_at is not None else None,
                                 others)
            return
        for row in rows:
            yield from self._row_records(row, _utc(row[collected_at]) if collected_at is not None else None)

    def _row_records(self, row: sa.Row, collected: dt.datetime | None) -> Iterator[Record]:
        table, at = self.table, self.at
        source = self.source or Source(
            row[at[table.source_column]] if table.source_column else table.source,
            row[at[table.source_name_column]] if table.source_name_column else None,
            row[at[table.source_kind_column]] if table.source_kind_column else None,
        )
        by_category: dict[str, dict[str, Any]] = {}
        if table.category_column:
            by_category[row[at[table.category_column]]] = dict(row[at[table.data_column]] or {})
        flagged = set()  # the categories holding a value that may be other people's data
        for index, name, category, shown in self.columns:
            value = row[index]
            if value is not None:
                by_category.setdefault(category, {})[name] = shown(value)
                if name in self.others:
                    flagged.add(category)
        for index, name, category, changed_at in self.secrets:
            if row[index]:
                fields = by_category.setdefault(category, {})
                fields[name] = SECRET_SET
                if changed_at is not None:
                    fields[f"{name}_last_changed"] = _plain(row[changed_at])
        until = None
        if table.retain and row[at[table.retain.date_column]] is not None:
            until = table.retain.until(_utc(row[at[table.retain.date_column]]))
            shown = _plain(until)
            for fields in by_category.values():
                fields["retained_until"] = shown
                fields["retained_because"] = table.retain.reason
        for category, fields in by_category.items():
            yield Record(category, fields, self.system, source, collected, table.others or category in flagged, until)


LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock not had within lock_timeout


@contextlib.contextmanager
def database_errors(system: str) -> Iterator[None]:
    """The database's errors as the connector's: a lost connection, or a lock held too long by
    another session, is worth retrying; anything else the database refuses is not."""
    try:
        yield
    except OperationalError as error:
        if getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise TransientError(f"{system}: a row is locked by another session: {error.orig}") from error
        raise TransientError(f"{system}: database unavailable: {error.orig}") from error
    except DBAPIError as error:
        raise PermanentError(f"{system}: {error.orig}") from error


# The drivers the product ships: psycopg 3 for PostgreSQL, PyMySQL for MySQL and MariaDB (SQLite's is Python's own).
DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg", "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}


def with_driver(url: str) -> str:
    """A URL naming only its database (`postgresql://`, `mysql://`, `mariadb://`) as SQLAlchemy
    reaches it through the driver the product ships; a URL naming a driver as it is."""
    parsed = sa.engine.make_url(url)
    if parsed.drivername in DRIVERS:
        parsed = parsed.set(drivername=DRIVERS[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


def sibling_database_url(system: str) -> str:
    """The SQLAlchemy URL of the database `<product database>_<system>` on the product's own
    PostgreSQL server: where an SQL system lives when its configuration names no URL (the demo
    estate's systems do). Read from Django's connection settings when first needed, so a test run's
    database gives its own systems."""
    from django.db import connections

    db = connections["default"].settings_dict
    on_socket = str(db.get("HOST", "")).startswith("/")
    url = sa.engine.URL.create(
        "postgresql+psycopg",
        username=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=None if on_socket else (db.get("HOST") or None),
        port=int(db["PORT"]) if db.get("PORT") else None,
        database=f"{db['NAME']}_{system}",
        query={"host": db["HOST"]} if on_socket else {},
    )
    return url.render_as_string(hide_password=False)


def period_condition(column: sa.ColumnElement, period: Period) -> sa.ColumnElement | None:
    """The condition that the time or day in `column` falls in `period`, or is not known (such a
    row cannot be left out); None when the period is open at both ends. A `date` column is compared
    with the period's days, a time with its moments (a time without a zone is UTC, `_UtcTime`)."""
    kind = column.type
    if isinstance(kind, sa.Date):
        low, high = period.first_day, period.last_day
        bounds = [column >= sa.bindparam("period_first_day", low, type_=kind) if low else None,
                  column <= sa.bindparam("period_last_day", high, type_=kind) if high else None]
    else:
        kind = kind if isinstance(kind, sa.DateTime | sa.types.TypeDecorator) else sa.DateTime(timezone=True)
        low, high = period.start, period.end
        bounds = [column >= sa.bindparam("period_start", low, type_=kind) if low else None,
                  column < sa.bindparam("period_end", high, type_=kind) if high else None]
    bounds = [bound for bound in bounds if bound is not None]
    return sa.or_(column.is_(None), sa.and_(*bounds)) if bounds else None


def _row(columns: list[sa.ColumnElement]) -> sa.ColumnElement:
    """One column as itself, several as a row value `(a, b)`: how a composite key is compared."""
    return columns[0] if len(columns) == 1 else sa.tuple_(*columns)


def after_key(key: list[sa.ColumnClause]) -> sa.ColumnElement:
    """The condition that a row's key comes after the key bound as `after_0`, `after_1`, …"""
    return _row(key) > _row([sa.bindparam(f"after_{index}") for index in range(len(key))])


def _utc(value: Any) -> Any:
    """A time with a zone in UTC, whatever zone the database answered in: an export's times are then
    unambiguous. Anything else as it is (a time already at UTC's offset too: it is written the same).
    MySQL's, MariaDB's and SQLite's times have no zone and are taken as UTC (`_UtcTime`); a
    PostgreSQL `timestamp` without a zone stays as written."""
    return value.astimezone(dt.UTC) if isinstance(value, dt.datetime) and value.utcoffset() else value


def _day(value: dt.datetime | dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _plain(value: Any) -> Any:
    """A database value as the export shows it: JSON's types as they are, times as ISO 8601 text
    (in UTC when they have a zone), anything else (decimals, UUIDs) as text."""
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return _utc(value).isoformat()
    return str(value)
