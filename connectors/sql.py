"""One generic connector for SQL systems, driven by a dataset file (YAML).

The dataset names the tables, how each reaches the subject (the root table by email, the others
through a foreign key to a parent), the category of each column, the secrets that are reported but
never read, and how each table is erased. Results are streamed from a server-side cursor.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.exc import DBAPIError, OperationalError

from .base import Connector, ErasureReceipt, Identity, PermanentError, Record, Source, TransientError
from .estate.stores import estate_database_url

BATCH = 1000


class DatasetError(ValueError):
    """The dataset file is wrong; the message names the key."""


@dataclass(frozen=True)
class Secret:
    name: str
    column: str
    category: str
    changed_at: str | None


@dataclass
class Table:
    name: str
    primary_key: str
    columns: dict[str, str]
    secrets: list[Secret] = field(default_factory=list)
    identity_email: str | None = None
    parent: tuple[str, str] | None = None  # (parent table, this table's column referencing its key)
    source: str = "provided"
    source_column: str | None = None
    collected_at: str | None = None
    erase: str = "delete"

    @property
    def categories(self) -> set[str]:
        return set(self.columns.values()) | {s.category for s in self.secrets}


@dataclass
class Dataset:
    system: str
    tables: list[Table]
    organization: tuple[str, str] | None = None

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)

    def children(self, name: str) -> list[Table]:
        return [t for t in self.tables if t.parent and t.parent[0] == name]


def dataset_load(path: str | Path) -> Dataset:
    """Parse and check a dataset file; DatasetError names the bad key."""
    raw = yaml.safe_load(Path(path).read_text())

    def need(mapping: dict, key: str, where: str) -> Any:
        if not isinstance(mapping, dict) or key not in mapping:
            raise DatasetError(f"{path}: {where}.{key} is required")
        return mapping[key]

    tables = []
    for index, spec in enumerate(need(raw, "tables", "")):
        where = f"tables[{index}]"
        secrets = [
            Secret(name, need(s, "column", f"{where}.secrets.{name}"), need(s, "category", f"{where}.secrets.{name}"), s.get("changed_at"))
            for name, s in (spec.get("secrets") or {}).items()
        ]
        identity, parent = spec.get("identity"), spec.get("parent")
        if bool(identity) == bool(parent):
            raise DatasetError(f"{path}: {where} needs exactly one of identity or parent")
        erase = spec.get("erase", "delete")
        if erase not in ("delete", "null"):
            raise DatasetError(f"{path}: {where}.erase must be delete or null")
        tables.append(
            Table(
                name=need(spec, "name", where),
                primary_key=spec.get("primary_key", "id"),
                columns=dict(spec.get("columns") or {}),
                secrets=secrets,
                identity_email=identity and need(identity, "email", f"{where}.identity"),
                parent=parent and (need(parent, "table", f"{where}.parent"), need(parent, "column", f"{where}.parent")),
                source=spec.get("source", "provided"),
                source_column=spec.get("source_column"),
                collected_at=spec.get("collected_at"),
                erase=erase,
            )
        )
    names = {t.name for t in tables}
    for t in tables:
        if t.parent and t.parent[0] not in names:
            raise DatasetError(f"{path}: table {t.name}: parent {t.parent[0]} is not a table of this dataset")
    org = raw.get("organization")
    return Dataset(system=need(raw, "system", ""), tables=tables, organization=org and (org["table"], org["column"]))


class SqlConnector(Connector):
    """Reads and erases a subject's rows in one SQL database, as its dataset file describes."""

    def __init__(self, *, name: str | None = None, dataset: str, url: str | None = None, **options: Any) -> None:
        super().__init__(name=name, **options)
        self.dataset = dataset_load(dataset)
        self.categories = frozenset(c for t in self.dataset.tables for c in t.categories)
        self._url = url
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            url = self._url or estate_database_url(self.dataset.system)
            self._engine = sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # --- Reaching the subject ---------------------------------------------------------------

    def _keys(self, table: Table, email: str) -> sa.Select:
        """SELECT of `table`'s primary keys that belong to the subject."""
        t = sa.table(table.name, sa.column(table.primary_key))
        if table.identity_email:
            email_column = sa.column(table.identity_email)
            t.append_column(email_column)
            return sa.select(t.c[table.primary_key]).where(sa.func.lower(sa.func.trim(email_column)) == email)
        parent_table, column = table.parent
        t.append_column(sa.column(column))
        return sa.select(t.c[table.primary_key]).where(t.c[column].in_(self._keys(self.dataset.table(parent_table), email)))

    def _run(self, work):
        try:
            with self.engine.connect() as conn:
                return work(conn)
        except OperationalError as error:
            raise TransientError(f"{self.name}: database unavailable: {error.orig}") from error
        except DBAPIError as error:
            raise PermanentError(f"{self.name}: {error.orig}") from error

    def managing_organization(self, identity: Identity) -> str | None:
        if not self.dataset.organization:
            return None
        table_name, column = self.dataset.organization
        table = self.dataset.table(table_name)
        t = sa.table(table.name, sa.column(table.primary_key), sa.column(column))
        query = sa.select(t.c[column]).where(t.c[table.primary_key].in_(self._keys(table, identity.email)), t.c[column].isnot(None))
        return self._run(lambda conn: conn.execute(query.limit(1)).scalar())

    # --- Gathering ---------------------------------------------------------------------------

    def gather(self, identity: Identity) -> Iterator[Record]:
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(stream_results=True, yield_per=BATCH)
                for table in self.dataset.tables:
                    yield from self._gather_table(conn, table, identity.email)
        except OperationalError as error:
            raise TransientError(f"{self.name}: database unavailable: {error.orig}") from error
        except DBAPIError as error:
            raise PermanentError(f"{self.name}: {error.orig}") from error

    def _gather_table(self, conn: sa.Connection, table: Table, email: str) -> Iterator[Record]:
        names = [table.primary_key, *table.columns]
        extra = [c for c in (table.source_column, table.collected_at) if c and c not in names]
        secret_columns = [s.changed_at for s in table.secrets if s.changed_at and s.changed_at not in names + extra]
        t = sa.table(table.name, *(sa.column(n) for n in dict.fromkeys(names + extra + secret_columns)))
        selected = [t.c[n] for n in dict.fromkeys(names + extra + secret_columns)]
        for secret in table.secrets:
            # Only whether the secret is set leaves the database, never the secret itself.
            selected.append(sa.literal_column(secret.column).isnot(None).label(f"__has_{secret.name}"))
        query = sa.select(*selected).select_from(t).where(t.c[table.primary_key].in_(self._keys(table, email)))
        query = query.order_by(t.c[table.primary_key])
        for row in conn.execute(query):
            values = row._mapping
            source = Source(values[table.source_column] if table.source_column else table.source)
            collected = values[table.collected_at] if table.collected_at else None
            by_category: dict[str, dict[str, Any]] = {}
            for column, category in table.columns.items():
                value = values[column]
                if value is not None:
                    by_category.setdefault(category, {})[column] = _plain(value)
            for secret in table.secrets:
                if values[f"__has_{secret.name}"]:
                    fields = by_category.setdefault(secret.category, {})
                    fields[secret.name] = "set (not included: secrets are never exported)"
                    if secret.changed_at:
                        fields[f"{secret.name}_last_changed"] = _plain(values[secret.changed_at])
            for category, fields in by_category.items():
                yield Record(category=category, fields=fields, system=f"{self.name}.{table.name}", source=source, collected_at=collected)

    # --- Erasing -----------------------------------------------------------------------------

    def erase(self, identity: Identity, categories: frozenset[str] | None = None) -> ErasureReceipt:
        """Children before parents. A table is deleted when all its categories, and all its
        descendants', are requested; otherwise only the requested columns are set to NULL."""
        wanted = set(categories) if categories else set(self.categories)
        receipt = ErasureReceipt()

        def work(conn: sa.Connection) -> ErasureReceipt:
            with conn.begin():
                for table in reversed(self._ordered()):
                    self._erase_table(conn, table, identity.email, wanted, receipt)
            return receipt

        return self._run(work)

    def _ordered(self) -> list[Table]:
        """Tables with every parent before its children."""
        ordered: list[Table] = []
        pending = list(self.dataset.tables)
        while pending:
            for table in pending:
                if not table.parent or table.parent[0] in {t.name for t in ordered}:
                    ordered.append(table)
                    pending.remove(table)
                    break
        return ordered

    def _whole_subtree_wanted(self, table: Table, wanted: set[str]) -> bool:
        return table.categories <= wanted and all(self._whole_subtree_wanted(c, wanted) for c in self.dataset.children(table.name))

    def _erase_table(self, conn: sa.Connection, table: Table, email: str, wanted: set[str], receipt: ErasureReceipt) -> None:
        if not table.categories & wanted:
            return
        t = sa.table(table.name, sa.column(table.primary_key))
        keys = self._keys(table, email)
        if table.erase == "delete" and self._whole_subtree_wanted(table, wanted):
            count = conn.execute(sa.delete(t).where(t.c[table.primary_key].in_(keys))).rowcount
            for category in table.categories:
                receipt.add_erased(category, count)
            return
        columns = [c for c, category in table.columns.items() if category in wanted]
        columns += [s.column for s in table.secrets if s.category in wanted]
        if not columns:
            return
        for column in columns:
            t.append_column(sa.column(column))
        any_set = sa.or_(*(t.c[c].isnot(None) for c in columns))
        update = sa.update(t).where(t.c[table.primary_key].in_(keys), any_set).values({c: None for c in columns})
        count = conn.execute(update).rowcount
        for category in {table.columns.get(c) for c in columns} - {None} | {s.category for s in table.secrets if s.column in columns}:
            receipt.add_erased(category, count)


def _plain(value: Any) -> Any:
    """Database values as JSON-friendly values."""
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)
