"""One generic connector for SQL systems, driven by a dataset file (YAML).

The dataset names the tables, how each reaches the subject (a root table by an email column, the
others through a foreign key to a parent), the category of each column, the secrets that are
reported but never read, how each table is erased, and what a retention rule keeps. Results are
streamed from a server-side cursor; nothing holds a whole subject in memory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
# SQLAlchemy loads a dialect on the first create_engine(). Loaded with this module instead, a
# worker's parent holds PostgreSQL's before it forks its pool, and no pool process spends its first
# task importing it (0.4 s of CPU each, 4 % of a throughput run's worker time).
import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401
import yaml
from dateutil.relativedelta import relativedelta
from sqlalchemy.engine import Compiled
from sqlalchemy.exc import DBAPIError, OperationalError

from .base import Cell, Connector, ErasureReceipt, Identity, PermanentError, Record, RecordRun, Retained, Source, TransientError
from .taxonomy import LEGAL_BASES, SOURCE_TYPES, category_ids, category_known

BATCH = 1000
TRANSFORMS = {
    # Only the last four digits of a card number ever leave the database.
    "last4": lambda column: sa.func.right(column, 4),
}
TRANSFORM_PRESENT = {"last4": lambda value: f"**** {value}"}
# delete: remove the rows; null: clear the requested columns; mask: replace them with a keyed hash
# (text columns), so records stay countable and joinable but no longer say who the person is.
ERASE_STRATEGIES = ("delete", "null", "mask")

# A RecordRun's rows are fetched RUN_BLOCK at a time, and each block is rendered into one text.
RUN_BLOCK = 5000
TEXT_TYPES = {25, 1043}  # PostgreSQL's text and varchar, by type OID
# How to_char spells a collected-at time as datetime.isoformat() does, by type OID: timestamptz (in
# UTC, see _session_in_utc), timestamp and date. isoformat() leaves out a fraction of zero microseconds.
ISO_FORMATS = {1184: ('YYYY-MM-DD"T"HH24:MI:SS', '"+00:00"'), 1114: ('YYYY-MM-DD"T"HH24:MI:SS', ""), 1082: ("YYYY-MM-DD", None)}
CSV_QUOTED = '[",\r\n]'  # what makes Python's csv writer quote a cell (the excel dialect)


class DatasetError(ValueError):
    """The dataset file is wrong; the message names the key."""


@dataclass(frozen=True)
class Column:
    name: str
    category: str
    transform: str | None = None
    erase: str | None = None  # null | mask; None: the table's strategy


@dataclass(frozen=True)
class Secret:
    name: str
    column: str
    category: str
    changed_at: str | None


@dataclass(frozen=True)
class Retention:
    years: int
    basis: str
    reason: str
    date_column: str


@dataclass
class Table:
    name: str
    primary_key: str
    columns: list[Column]
    secrets: list[Secret] = field(default_factory=list)
    identity_email: str | None = None
    parent: tuple[str, str] | None = None  # (parent table, this table's column referencing its key)
    source: str = "provided"
    source_column: str | None = None
    source_name_column: str | None = None
    source_kind_column: str | None = None
    category_column: str | None = None  # per-row category (with data_column holding the fields)
    data_column: str | None = None
    collected_at: str | None = None
    erase: str = "delete"
    retain: Retention | None = None

    @property
    def single_column(self) -> Column | None:
        """The column, when each row is one record of one plain field from a fixed source: the
        commonest table, and the one that has millions of rows."""
        fixed_source = not (self.source_column or self.source_name_column or self.source_kind_column)
        if fixed_source and not (self.category_column or self.secrets or self.retain) and len(self.columns) == 1:
            return None if self.columns[0].transform else self.columns[0]
        return None

    @property
    def categories(self) -> set[str]:
        if self.category_column:
            return set(category_ids())
        return {c.category for c in self.columns} | {s.category for s in self.secrets}


@dataclass
class Dataset:
    system: str
    tables: list[Table]
    organization: tuple[str, str] | None = None

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)

    def children(self, name: str) -> list[Table]:
        return [t for t in self.tables if t.parent and t.parent[0] == name]

    def ordered(self) -> list[Table]:
        """Tables with every parent before its children."""
        ordered: list[Table] = []
        pending = list(self.tables)
        while pending:
            ready = next(t for t in pending if not t.parent or t.parent[0] in {o.name for o in ordered})
            ordered.append(ready)
            pending.remove(ready)
        return ordered


def dataset_load(path: str | Path) -> Dataset:
    """Parse and check a dataset file; DatasetError names the bad key."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise DatasetError(f"{path}: not YAML: {error}") from None

    def fail(where: str, problem: str) -> DatasetError:
        return DatasetError(f"{path}: {where}{': ' if where else ''}{problem}")

    def need(mapping: dict, key: str, where: str) -> Any:
        if key not in mapping or mapping[key] is None:
            raise fail(f"{where}.{key}".lstrip("."), "is required")
        return mapping[key]

    def mapping(value: Any, where: str, *, optional: bool = False) -> dict:
        if value is None and optional:
            return {}
        if not isinstance(value, dict):
            raise fail(where, "must be a mapping")
        return value

    def text(value: Any, where: str, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value:
            raise fail(where, "must be a non-empty string")
        return value

    def category(value: Any, where: str) -> str:
        if not isinstance(value, str) or not category_known(value):
            raise fail(where, f"{value!r} is not a category of the taxonomy")
        return value

    def one_of(value: Any, allowed, where: str) -> Any:
        if not isinstance(value, str) or value not in allowed:
            raise fail(where, f"must be one of {', '.join(sorted(allowed))}")
        return value

    raw = mapping(raw, "the file")
    specs = need(raw, "tables", "")
    if not isinstance(specs, list) or not specs:
        raise fail("tables", "must be a non-empty list")
    tables = []
    for index, spec in enumerate(specs):
        where = f"tables[{index}]"
        spec = mapping(spec, where)
        columns = []
        for name, value in mapping(spec.get("columns"), f"{where}.columns", optional=True).items():
            at = f"{where}.columns.{name}"
            spec_col = mapping(value, at) if not isinstance(value, str) else {"category": value}
            transform = spec_col.get("transform")
            if transform is not None:
                one_of(transform, TRANSFORMS, f"{at}.transform")
            column_erase = spec_col.get("erase")
            if column_erase is not None:
                one_of(column_erase, ("null", "mask"), f"{at}.erase")
            columns.append(Column(text(name, at), category(need(spec_col, "category", at), f"{at}.category"), transform, column_erase))
        secrets = []
        for name, value in mapping(spec.get("secrets"), f"{where}.secrets", optional=True).items():
            at = f"{where}.secrets.{name}"
            secret = mapping(value, at)
            secrets.append(Secret(text(name, at), text(need(secret, "column", at), f"{at}.column"),
                                  category(need(secret, "category", at), f"{at}.category"),
                                  text(secret.get("changed_at"), f"{at}.changed_at", optional=True)))
        identity = mapping(spec.get("identity"), f"{where}.identity", optional=True)
        parent = mapping(spec.get("parent"), f"{where}.parent", optional=True)
        if bool(identity) == bool(parent):
            raise fail(where, "needs exactly one of identity or parent")
        retain = None
        if spec.get("retain"):
            r = mapping(spec["retain"], f"{where}.retain")
            years = need(r, "years", f"{where}.retain")
            if not isinstance(years, int) or isinstance(years, bool) or not 0 < years <= 100:
                raise fail(f"{where}.retain.years", "must be a whole number of years from 1 to 100")
            if not identity:
                raise fail(f"{where}.retain", "needs a table reached by identity, so its parent is never erased under it")
            retain = Retention(years, one_of(need(r, "basis", f"{where}.retain"), LEGAL_BASES, f"{where}.retain.basis"),
                               text(need(r, "reason", f"{where}.retain"), f"{where}.retain.reason"),
                               text(need(r, "date_column", f"{where}.retain"), f"{where}.retain.date_column"))
        optional_columns = {
            key: text(spec.get(key), f"{where}.{key}", optional=True)
            for key in ("source_column", "source_name_column", "source_kind_column", "category_column", "data_column", "collected_at")
        }
        if optional_columns["category_column"] and not optional_columns["data_column"]:
            raise fail(f"{where}.category_column", "needs a data_column holding the fields")
        tables.append(
            Table(
                name=text(need(spec, "name", where), f"{where}.name"),
                primary_key=text(spec.get("primary_key", "id"), f"{where}.primary_key"),
                columns=columns,
                secrets=secrets,
                identity_email=text(need(identity, "email", f"{where}.identity"), f"{where}.identity.email") if identity else None,
                parent=(text(need(parent, "table", f"{where}.parent"), f"{where}.parent.table"),
                        text(need(parent, "column", f"{where}.parent"), f"{where}.parent.column")) if parent else None,
                source=one_of(spec.get("source", "provided"), SOURCE_TYPES, f"{where}.source"),
                erase=one_of(spec.get("erase", "delete"), ERASE_STRATEGIES, f"{where}.erase"),
                retain=retain,
                **optional_columns,
            )
        )
    names = [t.name for t in tables]
    if len(set(names)) != len(names):
        raise fail("tables", "two tables have the same name")
    reachable = {t.name for t in tables if t.identity_email}
    pending = [t for t in tables if t.parent]
    for t in pending:
        if t.parent[0] not in names:
            raise fail(f"table {t.name}", f"parent {t.parent[0]} is not a table of this dataset")
    while pending:  # every table must reach an identity table through its parents: no cycles
        ready = [t for t in pending if t.parent[0] in reachable]
        if not ready:
            raise fail(f"table {pending[0].name}", "its parents never reach a table with an identity (a cycle)")
        reachable.update(t.name for t in ready)
        pending = [t for t in pending if t not in ready]
    org = raw.get("organization")
    if org is not None:
        org = mapping(org, "organization")
        org = (text(need(org, "table", "organization"), "organization.table"), text(need(org, "column", "organization"), "organization.column"))
    return Dataset(system=text(need(raw, "system", ""), "system"), tables=tables, organization=org)


class SqlConnector(Connector):
    """Reads and erases a subject's rows in one SQL database, as its dataset file describes."""

    def __init__(self, *, name: str | None = None, dataset: str, url: str | None = None, mask_key: str | None = None, **options: Any) -> None:
        super().__init__(name=name, **options)
        self.dataset = dataset_load(dataset)
        self._mask_key = mask_key
        self.categories = frozenset(c for t in self.dataset.tables for c in t.categories)
        self._url = url
        self._engine: sa.Engine | None = None
        self._compiled: list[tuple[Table, sa.Select, Compiled]] | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            url = with_driver(self._url) if self._url else sibling_database_url(self.dataset.system)
            self._engine = sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)
            sa.event.listen(self._engine, "connect", _session_in_utc)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # --- Reaching the subject ---------------------------------------------------------------

    def _table(self, table: Table, *columns: str) -> sa.TableClause:
        """The table with its key, the column that reaches the subject, and `columns`."""
        reach = table.identity_email or table.parent[1]
        return sa.table(table.name, *(sa.column(c) for c in dict.fromkeys([table.primary_key, reach, *columns])))

    def _belongs(self, table: Table, t: sa.TableClause, email: str) -> sa.ColumnElement:
        """The condition that a row of `table` (as `t`) is the subject's: its email, or its parent's
        key. A condition rather than `key IN (...)`, so the planner reads each table once."""
        if table.identity_email:
            return sa.func.lower(sa.func.trim(t.c[table.identity_email])) == email
        parent_table, column = table.parent
        return t.c[column].in_(self._keys(self.dataset.table(parent_table), email))

    def _keys(self, table: Table, email: str) -> sa.Select:
        """SELECT of `table`'s primary keys that belong to the subject."""
        t = self._table(table)
        return sa.select(t.c[table.primary_key]).where(self._belongs(table, t, email))

    def _run(self, work):
        """Run `work(connection)`, turning driver errors into the connector's error types."""
        with self._errors(), self.engine.connect() as conn:
            return work(conn)

    def managing_organization(self, identity: Identity) -> str | None:
        query = self._organization_query
        if query is None:
            return None
        with self._errors(), self.engine.connect() as conn:
            ((_, _, rows),) = _first_batches(conn, [query], {"email": identity.email})
        return rows[0][0] if rows else None

    @cached_property
    def _organization_query(self) -> Compiled | None:
        """The organisation managing the subject's account, if any: compiled once, as the gather
        queries are (building and compiling it was a tenth of verifying a request)."""
        if not self.dataset.organization:
            return None
        table_name, column = self.dataset.organization
        table = self.dataset.table(table_name)
        t = self._table(table, column)
        email = sa.bindparam("email", type_=sa.String)
        query = sa.select(t.c[column]).where(self._belongs(table, t, email), t.c[column].isnot(None)).limit(1)
        return query.compile(dialect=self.engine.dialect)

    # --- Gathering ---------------------------------------------------------------------------

    def gather(self, identity: Identity) -> Iterator[Record]:
        return self._gather(identity, runs=False)

    def gather_runs(self, identity: Identity) -> Iterator[Record | RecordRun]:
        return self._gather(identity, runs=True)

    def _gather(self, identity: Identity, *, runs: bool) -> Iterator[Record | RecordRun]:
        """Every table's first BATCH rows in one round trip (psycopg's pipeline mode): a typical
        subject costs one round trip per system. A table with more rows goes on streaming from
        the last key it returned, so memory stays bounded at any size; with `runs`, a simple
        table's rest is one RecordRun that the database renders."""
        params = {"email": identity.email}
        with self._errors(), self.engine.connect() as conn:
            queries = self._gather_queries()
            firsts = _first_batches(conn, [first for _, _, first in queries], params)
            for (table, query, _first), (names, types, rows) in zip(queries, firsts, strict=True):
                records = self._row_reader(table, names)
                yield from records(rows[:BATCH])
                if len(rows) > BATCH:
                    key = query.selected_columns[table.primary_key]
                    last = rows[BATCH - 1][names.index(table.primary_key)]
                    run = self._record_run(conn, table, dict(zip(names, types, strict=True)), last, params) if runs and types else None
                    if run is not None:
                        yield run
                    else:
                        yield from records(_stream(conn, query.where(key > last), params))

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The database's errors as the connector's: a lost connection is worth retrying."""
        try:
            yield
        except (OperationalError, psycopg.OperationalError) as error:
            raise TransientError(f"{self.name}: database unavailable: {getattr(error, 'orig', error)}") from error
        except (DBAPIError, psycopg.Error) as error:
            raise PermanentError(f"{self.name}: {getattr(error, 'orig', error)}") from error

    def _record_run(self, conn: sa.Connection, table: Table, types: dict[str, int], last: Any, params: dict) -> RecordRun | None:
        """The subject's rows of `table` past the key `last` as a RecordRun, when the database can write
        them exactly as the product would: one text column in one category, a fixed source, and a
        collected-at time (if any) of a type whose ISO form it can spell. None otherwise."""
        column = table.single_column
        if column is None or types.get(column.name) not in TEXT_TYPES or (table.collected_at and types.get(table.collected_at) not in ISO_FORMATS):
            return None
        t = self._table(table, column.name, *([table.collected_at] if table.collected_at else []))
        value = sa.cast(t.c[column.name], sa.Text)
        when = _iso_sql(t.c[table.collected_at], types[table.collected_at]) if table.collected_at else None
        cells = {
            Cell.VALUE_JSON: sa.cast(sa.func.to_json(value), sa.Text),
            Cell.VALUE_CSV: sa.case((value.regexp_match(CSV_QUOTED), '"' + sa.func.replace(value, '"', '""', type_=sa.Text) + '"'), else_=value),
            Cell.COLLECTED_AT_JSON: sa.func.coalesce('"' + when + '"', "null") if when is not None else sa.literal("null", sa.Text),
            Cell.COLLECTED_AT_CSV: sa.func.coalesce(when, "") if when is not None else sa.literal("", sa.Text),
        }
        key = t.c[table.primary_key]
        condition = self._belongs(table, t, sa.bindparam("email", type_=sa.String)) & (key > last) & t.c[column.name].isnot(None)

        def render(templates):
            parts = [sa.func.concat(*(cells[p] if isinstance(p, Cell) else sa.cast(sa.literal(p, sa.Text), sa.Text) for p in template)).label(f"t{n}")
                     for n, template in enumerate(templates)]
            compiled = sa.select(*parts).select_from(t).where(condition).order_by(key).compile(dialect=conn.dialect)
            driver = conn.connection.driver_connection
            with self._errors(), driver.cursor(name=f"run_{table.name}") as cursor:
                cursor.execute(str(compiled), compiled.construct_params(params))
                while rows := cursor.fetchmany(RUN_BLOCK):
                    yield tuple("".join([row[n] for row in rows]) for n in range(len(parts))), len(rows)

        return RecordRun(category=column.category, system=f"{self.name}.{table.name}", field_name=column.name,
                         source=Source(table.source), render=render)

    def _gather_queries(self) -> list[tuple[Table, sa.Select, Compiled]]:
        """Each table's gather query, and its first batch compiled. Compiled once per connector:
        SQLAlchemy's compiler cost a fifth of a typical gather; the subject is a bound parameter."""
        if self._compiled is None:
            email = sa.bindparam("email", type_=sa.String)
            self._compiled = []
            for table in self.dataset.tables:
                query = self._gather_query(table, email)
                self._compiled.append((table, query, query.limit(BATCH + 1).compile(dialect=self.engine.dialect)))
        return self._compiled

    def _gather_query(self, table: Table, email: str | sa.BindParameter) -> sa.Select:
        """The subject's rows of one table, in key order, secrets reduced to whether they are set."""
        plain = [c.name for c in table.columns if not c.transform]
        extra = [table.source_column, table.source_name_column, table.source_kind_column, table.category_column,
                 table.data_column, table.collected_at, table.retain and table.retain.date_column]
        extra += [s.changed_at for s in table.secrets]
        t = self._table(table, *plain, *(c for c in extra if c), *(c.name for c in table.columns if c.transform))
        selected = [t.c[name] for name in dict.fromkeys([table.primary_key, *plain, *(c for c in extra if c)])]
        selected += [TRANSFORMS[c.transform](t.c[c.name]).label(f"__t_{c.name}") for c in table.columns if c.transform]
        for secret in table.secrets:
            # Only whether the secret is set leaves the database, never the secret itself.
            selected.append(sa.literal_column(secret.column).isnot(None).label(f"__has_{secret.name}"))
        query = sa.select(*selected).select_from(t).where(self._belongs(table, t, email))
        return query.order_by(t.c[table.primary_key])

    def _row_reader(self, table: Table, names: list[str]) -> Callable[[Iterable[tuple]], Iterator[Record]]:
        """A function turning rows of `table` (tuples, columns named `names`) into their records.
        Worked out once per table, since a subject's table can have millions of rows."""
        at = {name: index for index, name in enumerate(names)}
        system = f"{self.name}.{table.name}"
        fixed_source = None if (table.source_column or table.source_name_column or table.source_kind_column) else Source(table.source)
        source_at = [at[c] if c else None for c in (table.source_column, table.source_name_column, table.source_kind_column)]
        collected_at = at[table.collected_at] if table.collected_at else None
        columns = [(at[f"__t_{c.name}"] if c.transform else at[c.name], c.name, c.category, TRANSFORM_PRESENT.get(c.transform))
                   for c in table.columns]
        secrets = [(at[f"__has_{s.name}"], s.name, s.category, at[s.changed_at] if s.changed_at else None) for s in table.secrets]
        retain_at = at[table.retain.date_column] if table.retain else None
        # The common table: its columns in one category, nothing computed. Its rows are one record each.
        simple = (len({c.category for c in table.columns}) == 1 and not table.category_column and not secrets and retain_at is None
                  and all(shown is None for *_, shown in columns))
        only_category = table.columns[0].category if simple else None
        plain_columns = [(index, name) for index, name, *_ in columns]

        def records(row: tuple) -> list[Record]:
            if fixed_source is not None:
                source = fixed_source
            else:
                values = [row[i] if i is not None else None for i in source_at]
                source = Source(values[0] if source_at[0] is not None else table.source, values[1], values[2])
            collected = row[collected_at] if collected_at is not None else None
            if simple:
                fields = {name: _plain(row[index]) for index, name in plain_columns if row[index] is not None}
                return [Record(category=only_category, fields=fields, system=system, source=source, collected_at=collected)] if fields else []
            by_category: dict[str, dict[str, Any]] = {}
            if table.category_column:
                by_category[row[at[table.category_column]]] = dict(row[at[table.data_column]] or {})
            for index, name, category, shown in columns:
                value = row[index]
                if value is not None:
                    by_category.setdefault(category, {})[name] = shown(value) if shown else _plain(value)
            for has_index, name, category, changed_index in secrets:
                if row[has_index]:
                    fields = by_category.setdefault(category, {})
                    fields[name] = "set (never exported)"
                    if changed_index is not None:
                        fields[f"{name}_last_changed"] = _plain(row[changed_index])
            if retain_at is not None and row[retain_at] is not None:
                until = row[retain_at] + relativedelta(years=table.retain.years)
                for fields in by_category.values():
                    fields["retained_until"] = _plain(until)
                    fields["retained_because"] = table.retain.reason
            return [Record(category=category, fields=fields, system=system, source=source, collected_at=collected)
                    for category, fields in by_category.items()]

        def stream(rows: Iterable[tuple]) -> Iterator[Record]:
            if table.single_column is not None:
                (index, name), = plain_columns
                for row in rows:
                    value = row[index]
                    if value is not None:
                        collected = row[collected_at] if collected_at is not None else None
                        yield Record(only_category, {name: value if type(value) is str else _plain(value)}, system, fixed_source, collected)
                return
            for row in rows:
                yield from records(row)

        return stream

    # --- Erasing -----------------------------------------------------------------------------

    def erase(self, identity: Identity, categories: frozenset[str] | None = None) -> ErasureReceipt:
        """Children before parents, in one transaction. A table is deleted when all its categories,
        and all its descendants', are requested; otherwise only the requested columns are set to
        NULL. Rows a retention rule covers are kept and listed in the receipt."""
        wanted = set(categories) if categories else set(self.categories)
        receipt = ErasureReceipt()

        def work(conn: sa.Connection) -> ErasureReceipt:
            with conn.begin():
                self.before_erase(conn, identity, wanted, receipt)
                for table in reversed(self.dataset.ordered()):
                    self._erase_table(conn, table, identity.email, wanted, receipt)
            return receipt

        return self._run(work)

    def before_erase(self, conn: sa.Connection, identity: Identity, wanted: set[str], receipt: ErasureReceipt) -> None:
        """A hook for systems that must record something in the erasure's own transaction."""

    def _whole_subtree_wanted(self, table: Table, wanted: set[str]) -> bool:
        return table.categories <= wanted and all(self._whole_subtree_wanted(c, wanted) for c in self.dataset.children(table.name))

    def _erase_table(self, conn: sa.Connection, table: Table, email: str, wanted: set[str], receipt: ErasureReceipt) -> None:
        if not table.categories & wanted:
            return
        if table.erase == "delete" and (table.category_column or self._whole_subtree_wanted(table, wanted)):
            self._delete_rows(conn, table, email, wanted, receipt)
            return
        columns = [c.name for c in table.columns if c.category in wanted] + [s.column for s in table.secrets if s.category in wanted]
        if not columns:
            return
        t = self._table(table, *columns)
        strategy = {c.name: c.erase or table.erase for c in table.columns}
        values = {c: self._mask(t.c[c]) if strategy.get(c) == "mask" else None for c in columns}
        # A masked value is 64 hex digits: rows already masked or cleared are left alone.
        pending = sa.or_(*(t.c[c].isnot(None) & ~t.c[c].regexp_match("^[0-9a-f]{64}$") if strategy.get(c) == "mask" else t.c[c].isnot(None) for c in columns))
        count = conn.execute(sa.update(t).where(self._belongs(table, t, email), pending).values(values)).rowcount
        erased = {c.category for c in table.columns if c.name in columns} | {s.category for s in table.secrets if s.column in columns}
        for category in erased:
            receipt.add_erased(category, count)

    def _mask(self, column: sa.ColumnClause) -> sa.ColumnElement:
        """A keyed SHA-256 of the value, computed in the database so the value never travels."""
        return sa.func.encode(sa.func.sha256(sa.func.convert_to(sa.literal(self.mask_key) + sa.cast(column, sa.Text), "UTF8")), "hex")

    @property
    def mask_key(self) -> str:
        if self._mask_key is None:
            from django.conf import settings

            self._mask_key = hashlib.sha256(f"mask:{self.name}:{settings.SECRET_KEY}".encode()).hexdigest()
        return self._mask_key

    def _delete_rows(self, conn: sa.Connection, table: Table, email: str, wanted: set[str], receipt: ErasureReceipt) -> None:
        t = self._table(table, *(c for c in (table.category_column, table.retain and table.retain.date_column) if c))
        condition = self._belongs(table, t, email)
        if table.category_column:
            condition &= t.c[table.category_column].in_(sorted(wanted))
        if table.retain:
            kept_from = dt.datetime.now(dt.UTC) - relativedelta(years=table.retain.years)
            date = t.c[table.retain.date_column]
            kept = conn.execute(sa.select(sa.func.count(), sa.func.max(date)).where(condition, date >= kept_from)).one()
            if kept[0]:
                until = (kept[1] + relativedelta(years=table.retain.years)).date()
                for category in sorted(table.categories & wanted):
                    receipt.retained.append(Retained(category, kept[0], f"{table.retain.reason} ({table.retain.basis})", until))
            condition &= date < kept_from
        if table.category_column:
            counts = conn.execute(sa.select(t.c[table.category_column], sa.func.count()).where(condition).group_by(t.c[table.category_column]))
            for category, count in counts:
                receipt.add_erased(category, count)
            conn.execute(sa.delete(t).where(condition))
            return
        count = conn.execute(sa.delete(t).where(condition)).rowcount
        for category in table.categories:
            receipt.add_erased(category, count)


def with_driver(url: str) -> str:
    """A PostgreSQL URL as SQLAlchemy reaches it through psycopg 3 (the driver the product ships)."""
    parsed = sa.engine.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
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


def _first_batches(conn: sa.Connection, statements: list[Compiled], params: dict) -> list[tuple[list[str], list[int] | None, list[tuple]]]:
    """Run several small compiled queries in one round trip (psycopg's pipeline mode), or one by
    one; each result is its column names, their PostgreSQL type OIDs (None from another driver),
    and its rows as tuples."""
    driver = conn.connection.driver_connection
    if not hasattr(driver, "pipeline"):
        results = []
        for statement in statements:
            result = conn.execute(statement.statement, params)
            results.append((list(result.keys()), None, [tuple(row) for row in result]))
        return results
    cursors = []
    with driver.pipeline():
        for statement in statements:
            cursor = driver.cursor()
            cursor.execute(str(statement), statement.construct_params(params))
            cursors.append(cursor)
    results = []
    for cursor in cursors:
        results.append(([column.name for column in cursor.description], [column.type_code for column in cursor.description], cursor.fetchall()))
        cursor.close()
    return results


def _session_in_utc(dbapi_connection, _record) -> None:
    """Times with a zone are read in UTC, whatever the server's default: an export's times are
    then unambiguous, and the same whether the database or the product writes them."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True  # a SET in a transaction is undone by its rollback
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
    dbapi_connection.autocommit = autocommit


def _iso_sql(column: sa.ColumnElement, type_oid: int) -> sa.ColumnElement:
    """The column's value as datetime.isoformat() writes what psycopg reads (NULL stays NULL)."""
    date_time, zone = ISO_FORMATS[type_oid]
    if zone is None:
        return sa.func.to_char(column, date_time, type_=sa.Text)
    if zone:
        column = sa.func.timezone("UTC", column)  # the session's zone is UTC (_session_in_utc)
    return sa.case((sa.func.to_char(column, "US", type_=sa.Text) == "000000", sa.func.to_char(column, date_time + zone, type_=sa.Text)),
                   else_=sa.func.to_char(column, f"{date_time}.US{zone}", type_=sa.Text))


def _stream(conn: sa.Connection, query: sa.Select, params: dict) -> Iterator[tuple]:
    """Rows (tuples, in the query's column order) as they arrive, in batches of BATCH, in one round
    trip (psycopg's chunked streaming): constant memory at any size, without the extra round trips
    of a server-side cursor."""
    driver = conn.connection.driver_connection
    if not hasattr(driver, "cursor") or not hasattr(driver.cursor(), "stream"):
        # Another driver: SQLAlchemy's own streaming.
        for row in conn.execution_options(stream_results=True, yield_per=BATCH).execute(query, params):
            yield tuple(row)
        return
    compiled = query.compile(dialect=conn.dialect)
    with driver.cursor() as cursor:
        yield from cursor.stream(str(compiled), compiled.construct_params(params), size=BATCH)


def _plain(value: Any) -> Any:
    """Database values as JSON-friendly values."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (int, float, str, bool)):
        return value
    return str(value)
