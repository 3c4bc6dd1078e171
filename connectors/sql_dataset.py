"""The tables of an SQL system, as its system file describes them (connectors/systems.py), checked.

Each table says how it reaches the subject: found by an identity (a column holding the subject's
email, phone, or an identity another table `provides`), or through a foreign key to a parent
table. It names the category of each column, the secrets that are reported but never read, how it
is erased, and what a retention rule keeps. The models are pydantic's, so a mistake names its path
in the file (`tables[2].columns.email.category`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.utils.functional import lazy
from django.utils.translation import gettext
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from .ages import AgeKind
from .base import Label
from .taxonomy import LEGAL_BASES, SOURCE_TYPES, category_ids, category_known

# Transforms a column may declare; the SQL connector applies them in the database.
TRANSFORMS = ("last4",)
# delete: remove the rows; null: clear the requested columns; mask: replace them with a keyed hash
# (text columns), so records stay countable and joinable but no longer say who the person is;
# keep: leave them, and say so in the receipt.
ERASE_STRATEGIES = ("delete", "null", "mask", "keep")
# The identities a request carries itself; any other is one a table `provides`.
REQUEST_IDENTITIES = ("email",)
MATCHES = ("exact", "case_insensitive")


class DatasetError(ValueError):
    """The dataset is wrong; the message names the key."""


def _category(value: str) -> str:
    if not category_known(value):
        raise ValueError(f"{value!r} is not a category of the taxonomy")
    return value


def _label(value: Any) -> Label:
    """A `label:`, the same words in every language (`Your orders`), or words by language code
    (`{en: Your orders, de: Ihre Bestellungen}`) giving the product's own and only languages it offers."""
    if isinstance(value, Label):
        return value
    if isinstance(value, str) and value.strip():
        return Label(value.strip())
    if not isinstance(value, dict):
        raise ValueError("must be words, or words by language code such as {en: Your orders, de: Ihre Bestellungen}")
    offered = [code for code, _name in settings.LANGUAGES]
    if unknown := [language for language in value if language not in offered]:
        raise ValueError(f"{unknown[0]!r} is not a language the product offers ({', '.join(offered)})")
    own = settings.LANGUAGE_CODE
    if own not in value:
        raise ValueError(f"must give the words in {own}, the product's own language")
    if empty := [language for language, text in value.items() if not isinstance(text, str) or not text.strip()]:
        raise ValueError(f"gives no words in {empty[0]}")
    return Label(value[own].strip(), tuple((language, text.strip()) for language, text in value.items() if language != own))


def _last_changed(label: Label) -> str:
    # Translators: a field of the export's report beside a secret's name ("Password: last changed"): when it last changed.
    return gettext("%(label)s: last changed") % {"label": label}


# In the language of the report it is read in, not of the file's loading.
last_changed = lazy(_last_changed, str)

Category = Annotated[str, AfterValidator(_category)]
Name = Annotated[str, Field(min_length=1)]
LabelText = Annotated[Label, PlainValidator(_label)]
Erase = Literal["delete", "null", "mask", "keep"]


def _erase_spelled(data: Any) -> Any:
    """YAML reads an unquoted `erase: null` (or `~`, or nothing after the colon) as no value: that
    is the `null` strategy."""
    if isinstance(data, dict) and "erase" in data and data["erase"] is None:
        return {**data, "erase": "null"}
    return data


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Model):
    """A column holding personal data, its category, and how it leaves the database. `others`: its
    values may be other people's data too, so a record holding one is reviewed before release."""

    name: Name
    category: Category
    label: LabelText | None = None  # the column in words, as the export's report shows it
    transform: Literal["last4"] | None = None
    others: bool = False
    erase: Literal["null", "mask", "keep"] | None = None  # None: the table's strategy
    reason: Name | None = None  # why `keep` keeps it, as the receipt says

    _spelled = model_validator(mode="before")(_erase_spelled)


class Secret(_Model):
    """A column that is never read: the export says only whether it is set, and when it changed."""

    name: Name
    column: Name
    category: Category
    label: LabelText | None = None  # the secret in words, as the export's report shows it
    changed_at: Name | None = None


class Retention(_Model):
    """A rule that keeps a table's rows for `years` after the date in `date_column`, erasure or not."""

    years: int = Field(strict=True, ge=1, le=100)
    basis: Literal[LEGAL_BASES]  # type: ignore[valid-type]
    reason: Name
    date_column: Name

    def kept_from(self, now: dt.datetime) -> dt.datetime:
        """The earliest date a row can have and still be kept at `now`: `years` before it."""
        return now - relativedelta(years=self.years)

    def until(self, date: dt.datetime | dt.date) -> dt.datetime | dt.date:
        """Until when a row dated `date` is kept: `years` after it."""
        return date + relativedelta(years=self.years)


class IdentityKey(_Model):
    """The column that finds the subject's rows by one identity, and how values are compared."""

    name: Name
    column: Name
    match: Literal["exact", "case_insensitive"]

    @model_validator(mode="before")
    @classmethod
    def _one_identity(cls, data: Any) -> Any:
        """`{email: column}` or `{customer_number: column, match: exact}`."""
        if not isinstance(data, dict) or "name" in data:
            return data
        named = {key: value for key, value in data.items() if key != "match"}
        if len(named) != 1:
            raise ValueError("must name one identity and its column, such as {email: email} or {customer_number: cust_no, match: exact}")
        [(name, column)] = named.items()
        default = "case_insensitive" if name == "email" else "exact"
        return {"name": name, "column": column, "match": data.get("match", default)}


class Parent(_Model):
    """The table a table reaches the subject through, and this table's columns holding its key."""

    table: Name
    columns: tuple[Name, ...] = Field(alias="column", min_length=1)

    @field_validator("columns", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class Organization(_Model):
    """Where a system says which organisation manages an account: the column of the subject's row
    naming it, and the column beside it holding how to reach it about privacy requests (a view can
    join it in from a table of organisations)."""

    table: Name
    column: Name
    contact_column: Name | None = None


class Age(_Model):
    """Where a system holds what it knows of the subject's age: a column of one of its tables, and
    whether it holds a birth date, a birth year or an age band ("13-15", "16+", "under 13")."""

    table: Name
    column: Name
    kind: AgeKind


class Table(_Model):
    """One table of the system: how it reaches the subject, what it holds, how it is erased."""

    name: Name
    label: LabelText | None = None  # what the table holds, in words, as the export's report names where a record is held
    primary_key: tuple[Name, ...] = Field(("id",), min_length=1)
    column_specs: dict[str, Column] = Field({}, alias="columns")
    secret_specs: dict[str, Secret] = Field({}, alias="secrets")
    identity: IdentityKey | None = None
    parent: Parent | None = None
    provides: dict[Name, Name] = {}  # identity name -> the column whose values are that identity
    source: Literal[SOURCE_TYPES] = "provided"  # type: ignore[valid-type]
    source_column: Name | None = None
    source_name_column: Name | None = None
    source_kind_column: Name | None = None
    category_column: Name | None = None  # per-row category (with data_column holding the fields)
    data_column: Name | None = None
    collected_at: Name | None = None
    erase: Erase = "delete"
    reason: Name | None = None  # why `keep` keeps the table (or its kept columns), as the receipt says
    retain: Retention | None = None
    others: bool = False  # every row may be other people's data too (a contact): reviewed before release

    @model_validator(mode="before")
    @classmethod
    def _named(cls, data: Any) -> Any:
        """Columns and secrets are written as mappings by name (a column's value may be just its
        category); each model holds its own name."""
        data = _erase_spelled(data)
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in ("columns", "secrets"):
            if isinstance(data.get(key), dict):
                data[key] = {name: {"name": name, "category": spec} if isinstance(spec, str) else
                             {"name": name, **spec} if isinstance(spec, dict) else spec for name, spec in data[key].items()}
        return data

    @field_validator("primary_key", mode="before")
    @classmethod
    def _key_columns(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _reached_once(self) -> Table:
        if (self.identity is None) == (self.parent is None):
            raise ValueError("needs exactly one of identity or parent")
        if self.category_column and not self.data_column:
            raise ValueError("category_column needs a data_column holding the fields")
        if not self.reason and (self.erase == "keep" or any(c.erase == "keep" and not c.reason for c in self.columns)):
            raise ValueError("`erase: keep` needs a `reason`, which the receipt gives")
        return self

    @property
    def columns(self) -> tuple[Column, ...]:
        return tuple(self.column_specs.values())

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return tuple(self.secret_specs.values())

    @property
    def categories(self) -> set[str]:
        """The categories the table can hold (every one, when each row names its own)."""
        if self.category_column:
            return set(category_ids())
        return {c.category for c in self.columns} | {s.category for s in self.secrets}

    @property
    def reach(self) -> tuple[str, ...]:
        """The columns that tie a row to the subject: its identity column, or its parent's key."""
        return (self.identity.column,) if self.identity else self.parent.columns


class Dataset(_Model):
    """A system's tables, where it says which organisation manages an account, and where it holds
    the subject's age."""

    system: Name
    tables: list[Table] = Field(min_length=1)
    organization: Organization | None = None
    age: Age | None = None

    @model_validator(mode="after")
    def _tables_reach_the_subject(self) -> Dataset:
        names = [t.name for t in self.tables]
        if len(set(names)) != len(names):
            raise ValueError("two tables have the same name")
        for t in self.tables:
            if t.parent and t.parent.table not in names:
                raise ValueError(f"table {t.name}: parent {t.parent.table} is not a table of this system")
        reachable = {t.name for t in self.tables if t.identity}
        pending = [t for t in self.tables if t.parent]
        while pending:  # every table must reach an identity table through its parents: no cycles
            ready = [t for t in pending if t.parent.table in reachable]
            if not ready:
                raise ValueError(f"table {pending[0].name}: its parents never reach a table with an identity (a cycle)")
            reachable.update(t.name for t in ready)
            pending = [t for t in pending if t not in ready]
        return self

    @field_validator("age")
    @classmethod
    def _age_declared(cls, age: Age | None, info: ValidationInfo) -> Age | None:
        """The age is read from a column the file declares, so the export holds it too."""
        tables = {t.name: t for t in info.data.get("tables", [])}
        if age and age.table not in tables:
            raise ValueError(f"table {age.table} is not a table of this system")
        if age and age.column not in tables[age.table].column_specs:
            raise ValueError(f"column {age.column} is not one of the columns table {age.table} declares")
        return age

    def table(self, name: str) -> Table:
        """The table called `name`."""
        return next(t for t in self.tables if t.name == name)

    def children(self, name: str) -> list[Table]:
        """The tables whose parent is `name`."""
        return [t for t in self.tables if t.parent and t.parent.table == name]

    def ordered(self) -> list[Table]:
        """Tables with every parent before its children."""
        ordered: list[Table] = []
        pending = list(self.tables)
        while pending:
            ready = next(t for t in pending if not t.parent or t.parent.table in {o.name for o in ordered})
            ordered.append(ready)
            pending.remove(ready)
        return ordered

    def erase_order(self, references: Mapping[str, Iterable[str]] | None = None) -> list[Table]:
        """The order an erasure goes in: each table before those it points at. A child goes before
        its parent, a table that provides an identity before the table found by it (a customer
        before the address row its address_id names), and, where the database says so
        (`references`: a table -> the tables its foreign keys point at), any table before those its
        keys point at. Otherwise, and in a cycle, the file's order, children first."""
        names = [t.name for t in reversed(self.ordered())]
        before: dict[str, set[str]] = {name: set() for name in names}
        for t in self.tables:
            if t.parent:
                before[t.name].add(t.parent.table)
            for identity in t.provides:
                before[t.name] |= {u.name for u in self.tables if u.identity and u.identity.name == identity and u is not t}
        for name, targets in (references or {}).items():
            before[name] |= {target for target in targets if target in before and target != name}
        order: list[str] = []
        pending = list(names)
        while pending:
            ready = next((n for n in pending if not any(n in before[m] for m in pending if m != n)), None)
            if ready is None:
                order += pending
                break
            order.append(ready)
            pending.remove(ready)
        return [self.table(name) for name in order]

    def labels(self) -> dict[str, tuple[Label | None, dict[str, Label | str]]]:
        """Each table's label and its fields' labels, where the file gives them, by table name;
        each reads in the active language."""
        labels = {}
        for t in self.tables:
            fields: dict[str, Label | str] = {c.name: c.label for c in t.columns if c.label}
            for s in t.secrets:
                if s.label:
                    fields[s.name] = s.label
                    fields[f"{s.name}_last_changed"] = last_changed(s.label)
            labels[t.name] = (t.label, fields)
        return labels

    def categories(self) -> frozenset[str]:
        """The categories the system's tables can hold."""
        return frozenset(c for t in self.tables for c in t.categories)

    def identities_needed(self) -> set[str]:
        """The identities the system's tables are found by."""
        return {t.identity.name for t in self.tables if t.identity}

    def identities_provided(self) -> set[str]:
        """The identities the system's tables provide to other systems."""
        return {name for t in self.tables for name in t.provides}


def dataset_load(path: str | Path) -> Dataset:
    """A dataset file (`system`, `tables`, `organization`, `age`) checked; DatasetError names the key."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise DatasetError(f"{path}: not YAML: {error}") from None
    try:
        return Dataset.model_validate(raw)
    except ValidationError as error:
        raise DatasetError("\n".join(f"{path}: {problem_where(p)}: {problem_what(p)}" for p in error.errors())) from None


def problem_where(problem: dict, skip: int = 0) -> str:
    """A pydantic error's place as a path in the file: `tables[2].columns.email.category`."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem["loc"][skip:]).lstrip(".")


def problem_what(problem: dict) -> str:
    """A pydantic error's message, in the words of a system file."""
    kind = problem["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known setting"
    return problem["msg"].removeprefix("Value error, ")
