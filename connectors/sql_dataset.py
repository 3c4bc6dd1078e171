"""The dataset file of an SQL system (YAML), parsed and checked.

The dataset names the tables, how each reaches the subject (a root table by an email column, the
others through a foreign key to a parent), the category of each column, the secrets that are
reported but never read, how each table is erased, and what a retention rule keeps. A mistake in
the file is a DatasetError naming the key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dateutil.relativedelta import relativedelta

from .taxonomy import LEGAL_BASES, SOURCE_TYPES, category_ids, category_known

# Transforms a column may declare; the SQL connector applies them in the database.
TRANSFORMS = ("last4",)
# delete: remove the rows; null: clear the requested columns; mask: replace them with a keyed hash
# (text columns), so records stay countable and joinable but no longer say who the person is.
ERASE_STRATEGIES = ("delete", "null", "mask")


class DatasetError(ValueError):
    """The dataset file is wrong; the message names the key."""


@dataclass(frozen=True)
class Column:
    """A column holding personal data, its category, and how it leaves the database."""

    name: str
    category: str
    transform: str | None = None
    erase: str | None = None  # null | mask; None: the table's strategy


@dataclass(frozen=True)
class Secret:
    """A column that is never read: the export says only whether it is set, and when it changed."""

    name: str
    column: str
    category: str
    changed_at: str | None


@dataclass(frozen=True)
class Retention:
    """A rule that keeps a table's rows for `years` after the date in `date_column`, erasure or not."""

    years: int
    basis: str
    reason: str
    date_column: str

    def kept_from(self, now: dt.datetime) -> dt.datetime:
        """The earliest date a row can have and still be kept at `now`: `years` before it."""
        return now - relativedelta(years=self.years)

    def until(self, date: dt.datetime | dt.date) -> dt.datetime | dt.date:
        """Until when a row dated `date` is kept: `years` after it."""
        return date + relativedelta(years=self.years)


@dataclass
class Table:
    """One table of the system: how it reaches the subject, what it holds, how it is erased."""

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
    def categories(self) -> set[str]:
        """The categories the table can hold (every one, when each row names its own)."""
        if self.category_column:
            return set(category_ids())
        return {c.category for c in self.columns} | {s.category for s in self.secrets}


@dataclass
class Dataset:
    """A system's tables, and where it says which organisation manages an account."""

    system: str
    tables: list[Table]
    organization: tuple[str, str] | None = None

    def table(self, name: str) -> Table:
        """The table called `name`."""
        return next(t for t in self.tables if t.name == name)

    def children(self, name: str) -> list[Table]:
        """The tables whose parent is `name`."""
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
    """Parse and check a dataset file (a mapping with `system`, `tables` and `organization`)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise DatasetError(f"{path}: not YAML: {error}") from None
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: the file: must be a mapping")
    if not isinstance(raw.get("system"), str) or not raw["system"]:
        raise DatasetError(f"{path}: system: must be a non-empty string")
    return dataset_parse(raw, source=str(path), system=raw["system"])


def dataset_parse(raw: dict, *, source: str, system: str) -> Dataset:
    """Check a dataset's `tables` (and `organization`) of system `system`, read from `source`;
    DatasetError says `source: path: what`."""

    def fail(where: str, problem: str) -> DatasetError:
        return DatasetError(f"{source}: {where}{': ' if where else ''}{problem}")

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
            column_erase = _erase_spelled(spec_col)
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
                erase=one_of(_erase_spelled(spec) or "delete", ERASE_STRATEGIES, f"{where}.erase"),
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
    return Dataset(system=system, tables=tables, organization=org)


def _erase_spelled(spec: dict) -> Any:
    """The `erase` a table or column declares, None when it declares none. YAML reads an unquoted
    `erase: null` (or `~`, or nothing after the colon) as no value: that is the `null` strategy."""
    if "erase" not in spec:
        return None
    return "null" if spec["erase"] is None else spec["erase"]
