"""`systems scan`: a proposed system file (kind `sql`) for a database, from its schema and a sample
of its values.

What it reads: SQLAlchemy's inspector (tables, columns, types, primary and foreign keys) and, for
each column it weighs, at most SAMPLE_SIZE non-null values, examined in memory and dropped when the
scan ends. No value is ever printed, kept or logged: the reasons written beside each proposal name
columns, types and counts only.

How it decides:

- the subject's table is the one named with `--identity`, or the one whose email-like column holds
  values that look like email addresses (a table named like customer, user or account first);
- a table joins the file when it references a table already in it through a foreign key to that
  table's primary key (it becomes that table's child), hop after hop; a table the subject's rows
  point at (customer.address_id -> address) cannot be a child, and is listed with the reason, as is
  every other table linked to the file's tables; tables not linked at all are named at the end;
- each column is a secret (password hashes, tokens, keys, card security codes), a category id
  (from its name, its type and what its sampled values look like: email addresses, phone numbers,
  IP addresses, card numbers passing the Luhn check, coordinates, birth dates, URLs, free text), or
  left out with a comment saying what it is.

The functions over the inspector's shapes (`identity_find`, `system_propose`, `column_propose`)
reach no database themselves, only through the sampler they are given; `database_scan` connects.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from .sql import with_driver

SAMPLE_SIZE = 200  # non-null values read of each column weighed
MOST = 0.8  # the share of sampled values a pattern must match on its own
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # a system's name, as the system files want it
LOGGER = "systems_scan"  # the scan's engine logs under sqlalchemy.engine.Engine.systems_scan
# Table names that say their rows are people, most telling first.
SUBJECT_TABLES = ("customer", "user", "account", "member", "person", "people", "profile", "client", "subscriber", "patient",
                  "student", "contact")

Sampler = Callable[[str, str], list[Any]]  # (table, column) -> sampled non-null values


class ScanError(ValueError):
    """The scan cannot go on: a bad argument, an unreachable database, no subject's table."""


# --- What the inspector says -----------------------------------------------------------------------


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    table: str  # the referred table
    referred: tuple[str, ...]
    on_delete: str | None = None  # the rule when the database reports it (SQLite's reflection does not)


@dataclass(frozen=True)
class TableShape:
    """A table as the inspector describes it."""

    name: str
    columns: dict[str, sa.types.TypeEngine]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()

    @property
    def key(self) -> str | None:
        """The primary key's column when it has exactly one (what the system file can name)."""
        return self.primary_key[0] if len(self.primary_key) == 1 else None


def schema_read(inspector: sa.Inspector, schema: str | None = None) -> dict[str, TableShape]:
    """Every table of the schema (the connection's default when None), by name. Foreign keys to
    another schema are left out: the file reaches one schema."""
    tables = {}
    with warnings.catch_warnings():
        # A type SQLite does not know (inet, jsonb...) is read as NullType, and the values decide.
        warnings.filterwarnings("ignore", "Did not recognize type", sa.exc.SAWarning)
        for name in inspector.get_table_names(schema=schema):
            columns = {c["name"]: c["type"] for c in inspector.get_columns(name, schema=schema)}
            key = tuple(inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or ())
            foreign = tuple(ForeignKey(tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]),
                                       (f.get("options", {}).get("ondelete") or "").upper() or None)
                            for f in inspector.get_foreign_keys(name, schema=schema)
                            if f.get("referred_schema") in (None, schema) and f["referred_columns"])
            tables[name] = TableShape(name, columns, key, foreign)
    return tables


def sampler(conn: sa.Connection, tables: dict[str, TableShape], schema: str | None = None) -> Sampler:
    """A reader of up to SAMPLE_SIZE non-null values of a column, each column read once. Binary
    columns and types the scan does not know (tsvector, domains) are not read: nothing would be
    learnt from their values that their name does not say."""
    read: dict[tuple[str, str], list[Any]] = {}

    def sample(table: str, column: str) -> list[Any]:
        if (table, column) not in read:
            column_type = tables[table].columns[column]
            if _kind(column_type, []) in ("binary", "other"):
                read[table, column] = []
            else:
                c = sa.column(column)  # untyped: a value SQLite holds against its column's type is read as it is
                query = sa.select(c).select_from(sa.table(table, c, schema=schema)).where(c.isnot(None)).limit(SAMPLE_SIZE)
                read[table, column] = list(conn.execute(query).scalars())
        return read[table, column]

    return sample


# --- The subject's table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    table: str
    column: str
    why: str


def identity_find(tables: dict[str, TableShape], sample: Sampler, named: str | None = None) -> Identity:
    """The subject's table and email column: `named` ("TABLE.COLUMN") when given, else the table
    whose email-like column holds email addresses, a table named like a person first."""
    if named:
        return _identity_named(tables, sample, named)
    found = _email_columns(tables, sample, lambda column: "mail" in column.lower())
    found = found or _email_columns(tables, sample, lambda column: True)
    if not found:
        raise ScanError("no table has a column of email addresses: name the subject's table and email column with --identity TABLE.COLUMN")
    keyed = [candidate for candidate in found if tables[candidate[0]].key]
    if not keyed:
        table = found[0][0]
        raise ScanError(f"{table} holds email addresses but has no single-column primary key, which the system file needs")
    children = {name: sum(1 for t in tables.values() for f in t.foreign_keys if f.table == name) for name in tables}

    def rank(candidate: tuple[str, str, str, bool]) -> tuple:
        table, column, _, evidence = candidate
        return (not evidence, _subject_rank(table), column.lower() != "email", -children[table], table, column)

    table, column, why, _ = min(keyed, key=rank)
    if _subject_rank(table) < len(SUBJECT_TABLES):
        why += f"; the table's name says its rows are people ({table})"
    return Identity(table, column, why)


def _identity_named(tables: dict[str, TableShape], sample: Sampler, named: str) -> Identity:
    table, _, column = named.partition(".")
    if not table or not column:
        raise ScanError(f"--identity: {named!r} must be TABLE.COLUMN")
    if table not in tables:
        raise ScanError(f"--identity: no table {table} in the database")
    if column not in tables[table].columns:
        raise ScanError(f"--identity: {table} has no column {column}")
    if not tables[table].key:
        raise ScanError(f"--identity: {table} has no single-column primary key, which the system file needs")
    values = sample(table, column)
    share = _share(values, _is_email)
    return Identity(table, column, f"named with --identity; {_percent(share, values)} look like email addresses" if values
                    else "named with --identity; no values to sample")


def _email_columns(tables: dict[str, TableShape], sample: Sampler, considered: Callable[[str], bool]) -> list[tuple[str, str, str, bool]]:
    """(table, column, why, whether values back it) of each text column holding email addresses;
    a column named email in an empty table counts, on its name alone."""
    found = []
    for table in sorted(tables):
        for column, column_type in tables[table].columns.items():
            if not considered(column) or _kind(column_type, []) not in ("text", "unknown"):
                continue
            values = sample(table, column)
            share = _share(values, _is_email)
            if values and share >= MOST:
                found.append((table, column, f"{_percent(share, values)} look like email addresses", True))
            elif not values and "mail" in column.lower():
                found.append((table, column, f"{_named(column)}; the table has no rows to sample", False))
    return found


def _subject_rank(table: str) -> int:
    words = _words(table).split("_")
    for rank, name in enumerate(SUBJECT_TABLES):
        if any(word == name or word == f"{name}s" for word in words):
            return rank
    return len(SUBJECT_TABLES)


# --- The proposal ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnProposal:
    """What to do with one column: a category (with a transform), a secret, or nothing (left out)."""

    column: str
    why: str
    category: str | None = None
    transform: str | None = None
    secret: bool = False
    changed_at: str | None = None  # for a secret: the column saying when it last changed


@dataclass
class TableProposal:
    """One table of the proposed file."""

    name: str
    primary_key: str
    reach: str  # how it reaches the subject, as a comment
    identity: str | None = None  # the email column (the subject's table)
    parent: tuple[str, str] | None = None  # (parent table, this table's column referencing its key)
    collected_at: tuple[str, str] | None = None  # (column, why)
    columns: list[ColumnProposal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Proposal:
    """A proposed system file: its tables, the linked tables left out (with why), and the rest."""

    name: str
    schema: str | None
    tables: list[TableProposal]
    left_out: list[tuple[str, str]]
    unlinked: list[str]


def system_propose(tables: dict[str, TableShape], sample: Sampler, *, name: str, identity: str | None = None,
                   schema: str | None = None) -> Proposal:
    """The proposed file for a database whose tables are `tables`, weighing `sample`d values."""
    if not NAME.match(name):
        raise ScanError(f"--name: {name!r} must be lower case letters, digits and underscores, starting with a letter (at most 40)")
    if not tables:
        raise ScanError(f"no tables in schema {schema}" if schema else "no tables in the database")
    subject = identity_find(tables, sample, identity)
    placed = _placed(tables, subject)
    proposals = [_table_propose(tables[table], placement, sample, subject) for table, placement in placed.items()]
    for proposal in proposals:
        proposal.notes += _delete_notes(tables, placed, proposal.name)
    left_out = _left_out(tables, placed, sample)
    linked = set(placed) | {table for table, _ in left_out}
    return Proposal(name, schema, proposals, left_out, sorted(set(tables) - linked))


@dataclass(frozen=True)
class _Placement:
    parent: tuple[str, str] | None  # (parent table, column)
    reach: str
    notes: tuple[str, ...] = ()


def _placed(tables: dict[str, TableShape], subject: Identity) -> dict[str, _Placement]:
    """The subject's table and every table below it through foreign keys to a placed table's
    primary key, breadth first: each table hangs from the nearest one."""
    placed = {subject.table: _Placement(None, subject.why)}
    pending = deque([subject.table])
    while pending:
        parent = pending.popleft()
        for child in sorted(tables):
            if child in placed or not tables[child].key:
                continue
            keys = [f.columns[0] for f in tables[child].foreign_keys if _joins(f, tables[parent])]
            if not keys:
                continue
            column = min(keys, key=lambda c: _owner_rank(c, parent))
            notes = tuple(f"{child}.{other} also references {parent}: a table has one parent in the file, so rows that reach the "
                          f"subject only through {other} are not found" for other in keys if other != column)
            placed[child] = _Placement((parent, column), f"{child}.{column} references {parent}.{tables[parent].key}", notes)
            pending.append(child)
    return placed


def _joins(key: ForeignKey, parent: TableShape) -> bool:
    """Whether a foreign key reaches `parent` the way a child's `parent:` does: one column, to its key."""
    return key.table == parent.name and len(key.columns) == 1 and parent.key is not None and key.referred == (parent.key,)


def _owner_rank(column: str, parent: str) -> tuple[int, str]:
    """How plainly a child's column names the row's owner, best first: `user_id` or `<parent>_id`,
    then a name of an owner (sender, author...), then any other; ties by name, whatever the dialect's order."""
    words, singular = _words(column), re.sub(r"(ies|s)$", lambda m: "y" if m[0] == "ies" else "", _words(parent))
    if words in (f"{singular}_id", f"{_words(parent)}_id", "user_id", "customer_id", "account_id", "owner_id"):
        return 0, column
    if re.search(r"(^|_)(user|customer|owner|account|member|person|author|sender|from|creator|created_by)($|_)", words):
        return 1, column
    return 2, column


def _left_out(tables: dict[str, TableShape], placed: dict[str, _Placement], sample: Sampler) -> list[tuple[str, str]]:
    """Each table linked to the placed ones by foreign keys (either way, any number of hops) but not
    placed, with the reason; a table next to a placed one also says which of its columns look personal."""
    links: dict[str, set[str]] = {name: set() for name in tables}
    for table in tables.values():
        for key in table.foreign_keys:
            if key.table in tables and key.table != table.name:
                links[table.name].add(key.table)
                links[key.table].add(table.name)
    reasons: dict[str, str] = {}
    pending = deque(sorted(placed))
    seen = set(placed)
    while pending:
        near = pending.popleft()
        for table in sorted(links[near] - seen):
            seen.add(table)
            pending.append(table)
            reasons[table] = _why_left_out(tables, tables[table], near, placed, sample) if near in placed else \
                f"linked to the subject's tables only through {near}, which is left out"
    return sorted(reasons.items())


def _why_left_out(tables: dict[str, TableShape], table: TableShape, near: str, placed: dict[str, _Placement], sample: Sampler) -> str:
    pointing = [f"{name}.{key.columns[0]}" if len(key.columns) == 1 else f"{name}.({', '.join(key.columns)})"
                for name in sorted(placed) for key in tables[name].foreign_keys if key.table == table.name]
    if pointing:
        why = (f"{', '.join(pointing)} {'points' if len(pointing) == 1 else 'point'} at it, so its rows are not below the "
               "subject's and the file cannot reach it as a child (an `identity` that another table `provides` could)")
    elif not table.key:
        why = (f"it references {near}, but has no single-column primary key ({', '.join(table.primary_key) or 'none'}), "
               "which the file needs to read it in batches")
    else:
        to = [f for f in table.foreign_keys if f.table == near]
        why = (f"its foreign key to {near} ({', '.join(to[0].columns)} -> {', '.join(to[0].referred)}) is not to {near}'s "
               "single-column primary key, which a child's `parent` needs")
    personal = [p for p in (column_propose(table, column, sample(table.name, column), subject=False, by_table=False)
                            for column in table.columns if column not in _keys(table)) if p.category or p.secret]
    if personal:
        why += "; columns that look personal: " + ", ".join(f"{p.column} ({'secret' if p.secret else p.category})" for p in personal)
    return why


def _delete_notes(tables: dict[str, TableShape], placed: dict[str, _Placement], name: str) -> list[str]:
    """A warning when rows of `name` are pointed at by a foreign key the file does not follow as a
    parent: erasing them by `delete` (the default) would be refused unless that key cascades."""
    pointing = [f"{other}.{', '.join(key.columns)}" for other in sorted(tables) for key in tables[other].foreign_keys
                if key.table == name and key.on_delete not in ("CASCADE", "SET NULL", "SET DEFAULT")
                and not (other in placed and placed[other].parent == (name, key.columns[0]) and len(key.columns) == 1)]
    if not pointing:
        return []
    return [f"{', '.join(pointing)} also {'points' if len(pointing) == 1 else 'point'} at these rows: deleting them may be refused "
            "unless that key cascades (`systems check` says); if so, erase this table by `null` or `mask`"]


def _keys(table: TableShape) -> set[str]:
    return set(table.primary_key) | {c for f in table.foreign_keys for c in f.columns}


def _table_propose(table: TableShape, placement: _Placement, sample: Sampler, subject: Identity) -> TableProposal:
    """The table's place in the file and a proposal for each of its columns but its key and the
    column reaching its parent (the file names those already)."""
    is_subject = placement.parent is None
    skipped = set(table.primary_key) | ({placement.parent[1]} if placement.parent else set())
    foreign = {f.columns[0]: f for f in table.foreign_keys if len(f.columns) == 1 and f.columns[0] not in skipped}
    secrets = {c for c in table.columns if c not in skipped | set(foreign) and _secret_why(c, table.columns[c])}
    changed = {c: _changed_at(c, table) for c in secrets}
    times = {c for c in changed.values() if c}
    collected = _collected_at(table, skipped | set(foreign) | secrets | times)
    proposal = TableProposal(table.name, table.key, placement.reach, identity=subject.column if is_subject else None,
                             parent=placement.parent, collected_at=collected, notes=list(placement.notes))
    for column in table.columns:
        if column in skipped:
            continue
        if column in foreign:
            key = foreign[column]
            proposal.columns.append(ColumnProposal(column, f"a foreign key to {key.table}.{key.referred[0]}: a key, not personal data"))
        elif column in secrets:
            proposal.columns.append(ColumnProposal(column, _secret_why(column, table.columns[column]), category=_secret_category(column),
                                                   secret=True, changed_at=changed[column]))
        elif column in times:
            proposal.columns.append(ColumnProposal(column, "when a secret changed (its `changed_at`)"))
        elif collected and column == collected[0]:
            proposal.columns.append(ColumnProposal(column, "the table's `collected_at`"))
        else:
            proposal.columns.append(column_propose(table, column, sample(table.name, column), subject=is_subject))
    return proposal


# --- One column ------------------------------------------------------------------------------------

_TEXT = ("text", "code", "unknown", "array", "json")


@dataclass(frozen=True)
class _Rule:
    """A column name (its words joined by "_", read with `search`) that says what the column holds."""

    pattern: str
    category: str
    what: str
    kinds: tuple[str, ...] = _TEXT


# Read in order; the first that matches the column's name and kind decides. Billing details are
# `payment` whatever else they are (a billing address, a billing name), as the taxonomy says.
NAME_RULES = [
    _Rule(r"(^|_)(ip|ip_?addr(ess)?|ipv[46]|remote_?addr(ess)?|client_?ip)($|_)", "interactions.device_config", "an IP address",
          (*_TEXT, "network")),
    _Rule(r"e_?mail", "name_contact", "an email address"),
    _Rule(r"(^|_)(user_?agent|device(_?(name|model|type))?|imei|mac_?addr(ess)?|os|os_?version|operating_?system|platform|browser)($|_)",
          "interactions.device_config", "a device or connection detail"),
    _Rule(r"(^|_)(phone|mobile|cell_?phone|tele?phone|tel|fax|msisdn)(_?(number|num|no))?($|_)", "name_contact", "a phone number",
          (*_TEXT, "integer")),
    _Rule(r"(^|_)(first|given|last|family|middle|full|display|nick|maiden|legal|contact|user|login|screen|real|customer|person|sur)"
          r"_?name($|_)|^(login|handle)$", "name_contact", "a person's name"),
    _Rule(r"(courtesy|salutation|honorific)", "name_contact", "a form of address"),
    _Rule(r"(^|_)(address|addr|street|address_?line_?\d*|address\d|city|town|postal_?code|post_?code|zip(_?code)?|district|county|"
          r"province|suburb|house_?(number|no)|apartment)($|_|\d)", "name_contact", "part of a postal address"),
    _Rule(r"(^|_)(company|company_?name|organi[sz]ation|employer)($|_)", "name_contact", "the organisation a person belongs to"),
    _Rule(r"(birth|(^|_)(dob|born)($|_))", "demographic", "a birth date or year", ("time", "text", "unknown", "integer")),
    _Rule(r"(^|_)(gender|sex|marital(_?status)?|nationality|citizenship|ethnicity|religion|locale|language|lang|languages|"
          r"age|age_?range|country|country_?code)($|_)", "demographic", "a basic fact about a person", (*_TEXT, "integer")),
    _Rule(r"(^|_)(time_?zone|tz)($|_)", "interactions.device_config", "a region setting"),
    _Rule(r"(^|_)(o?auth_?(provider|uid)|identity_?provider|provider_?uid)($|_)", "credentials", "how the person signs in elsewhere"),
    _Rule(r"(^|_)(lat|latitude|lng|lon|long|longitude)(_?e\d)?($|_)", "location", "a coordinate", ("number", "integer", "unknown", "text")),
    _Rule(r"(^|_)(geo|geom|geometry|geography|coordinates?|gps|geo_?location|location)($|_)", "location", "a place",
          ("text", "unknown", "json", "geo")),
    _Rule(r"(^|_)(card_?(type|brand|holder|expiry|exp)|exp(iry|iration)?(_?(month|year|date))?|cc_?(type|exp)|last_?(4|four|digits)|"
          r"iban|bic|swift|account_?(number|no)|routing_?number|sort_?code|bank(_?(name|account))?|cardholder(_?name)?)($|_)",
          "payment", "a payment detail", (*_TEXT, "integer", "time")),
    _Rule(r"(^|_)(amount|total|price|unit_?price|sub_?total|tax|discount|freight|fee|cost|balance|currency|quantity|qty)($|_)",
          "interactions.account_history", "an amount or quantity of a purchase", ("number", "integer", "unknown", "text")),
    _Rule(r"(^|_)(last_?login|last_?sign_?in|current_?sign_?in|sign_?in_?count|login_?count|last_?seen|last_?active|last_?used|"
          r"last_?visit)", "interactions.account_history", "account activity", ("time", "integer", "unknown")),
    _Rule(r"(^|_)(search|query|search_?term|keywords?)($|_)", "searches_commands", "a search"),
    _Rule(r"(^|_)(photo|picture|avatar|image|img|portrait|selfie|headshot)", "images", "an image", (*_TEXT, "binary")),
    _Rule(r"(^|_)(settings?|preferences?|prefs)($|_)", "interactions.device_usage", "settings"),
    _Rule(r"(^|_)(interests?|hobbies|favou?rites?)($|_)", "interests", "interests"),
]
CARD_NAME = re.compile(r"(^|_)((credit_?)?card|cc)_?(number|num|no)($|_)|^(pan|card|credit_?card)$")
# A column that only keeps the row's books, whatever the table: not personal data in itself.
BOOKKEEPING = re.compile(r"(^|_)(updated|modified|last_?update|last_?modified|rowguid|row_?version|lock_?version|version|deleted|"
                         r"archived)(_?(at|on|date|time|by))?$")
COLLECTED = re.compile(r"(^|_)(created|added|registered|joined|signed_?up|inserted|creation|create)(_?(at|on|date|time|timestamp|dt))?$|"
                       r"^date_?(created|added|joined|registered)$")
SUPPORT = re.compile(r"(^|_)(support|tickets?|complaints?|help|cases?|chats?|inquir(y|ies)|enquir(y|ies))($|_)")
FREE_TEXT_NAMES = re.compile(r"(^|_)(message|body|comments?|content|text|notes?|bio|about|description|remarks|subject)($|_)")
# A name ending so holds a code about the thing named before it (description_format), not text.
CODE_NAMES = re.compile(r"_(format|type|kind|code|status|mode|flag|id|count|lang|language)$")
# In the subject's own table: the account's state, or a consent given.
ACCOUNT_STATE = re.compile(r"(^|_)(status|active|enabled|disabled|verified|confirmed|valid|approved|banned|suspended|terms|tos|tou|"
                           r"consent(ed)?|agreed|accepted|opt_?in|opt_?out|newsletter|marketing)")
# What a child table's name says its rows are, for its columns no rule above places.
TOPICS = [
    (SUPPORT, "interactions.support", "help and support"),
    (re.compile(r"(^|_)(reviews?|ratings?|feedbacks?|surveys?)($|_)"), "feedback_ratings", "feedback"),
    (re.compile(r"(^|_)(search(es)?|quer(y|ies))($|_)"), "searches_commands", "searches"),
    (re.compile(r"(^|_)(subscriptions?|plans?|licen[cs]es?|memberships?|entitlements?)($|_)"), "subscription", "subscriptions"),
    (re.compile(r"(^|_)(orders?|invoices?|payments?|rentals?|purchases?|transactions?|sales?|carts?|baskets?|bookings?|reservations?|"
                r"refunds?|charges?|receipts?|line_?items?)($|_)"), "interactions.account_history", "purchases"),
    (re.compile(r"(^|_)(logins?|sign_?ins?|login_?activit(y|ies)|audits?|activit(y|ies))($|_)"), "interactions.account_history",
     "account activity"),
    (re.compile(r"(^|_)(devices?|sessions?|session_?activations?|push_?subscriptions?)($|_)"), "interactions.device_config", "devices"),
    (re.compile(r"(^|_)(locations?|check_?ins?|positions?|places?)($|_)"), "location", "places"),
    (re.compile(r"(^|_)(messages?|comments?|posts?|statuses|notes?|conversations?)($|_)"), "content", "things people write"),
    (re.compile(r"(^|_)(contacts?|friends?|follows?|followers?|connections?)($|_)"), "contacts_relationships", "relationships"),
    (re.compile(r"(^|_)(settings?|preferences?|markers?)($|_)"), "interactions.device_usage", "settings"),
    (re.compile(r"(^|_)(history|visits?|page_?views?|browsing)($|_)"), "interactions.browse_history", "web pages visited"),
]
SECRET = re.compile(r"(^|_)(pass_?word|passwd|pwd|pass|passphrase|crypt|crypted|encrypted|salt|hint|token|secret|api_?key|private_?key|"
                    r"access_?key|otp|totp|mfa|"
                    r"backup_?codes?|recovery_?codes?|security_?answer|secret_?answer|session_?(id|key))($|_)|pass_?word|passwd")
CARD_SECRET = re.compile(r"(^|_)(cvc|cvv2?|csc|security_?code|card_?code|card_?verification)($|_)")


def column_propose(table: TableShape, column: str, values: list[Any], *, subject: bool, by_table: bool = True) -> ColumnProposal:
    """What one column of `table` holds, from its name, its type and its sampled `values` (never
    quoted: the reason says counts only). `subject`: the table is the subject's own; `by_table`:
    a column nothing else places may take the category its table's name says its rows hold."""
    words = _words(column)
    kind = _kind(table.columns[column], values)
    if secret := _secret_why(column, table.columns[column]):
        return ColumnProposal(column, secret, category=_secret_category(column), secret=True)
    if found := _by_values(column, f"{_words(table.name)}_{words}", kind, values):
        return found
    if found := _by_name(table, column, words, kind, values, subject=subject):
        return found
    if values and (share := _share(values, lambda v: _is_phone(v, formatted=True))) >= MOST:
        return ColumnProposal(column, f"{_percent(share, values)} look like phone numbers", category="name_contact")
    if kind in ("text", "unknown") and values and _share(values, _is_free_text) >= 0.5:
        return _free_text(table, column, words, f"{_percent(_share(values, _is_free_text), values)} are free text")
    if BOOKKEEPING.search(words):
        return ColumnProposal(column, "bookkeeping of the row, not personal data in itself")
    if by_table and not subject and kind not in ("binary", "flag", "code") and not CODE_NAMES.search(words) and (topic := _topic(table.name)):
        category, what = topic
        return ColumnProposal(column, f"a column of {table.name}, whose rows are {what}", category=category)
    return ColumnProposal(column, f"nothing in its name or its {_sampled(values)}values says personal data ({kind})")


def _by_values(column: str, words: str, kind: str, values: list[Any]) -> ColumnProposal | None:
    """A proposal from what most sampled values look like, whatever the name: card numbers, email
    addresses, IP addresses, URLs and coordinates are told apart by their values alone. `words`:
    the table's and the column's."""
    for check, looks, hint in VALUE_CHECKS:
        share = _share(values, check)
        if not values or share < MOST:
            continue
        why = f"{_named(column) + ' and ' if re.search(hint, _words(column)) else ''}{_percent(share, values)} {looks}"
        if check is _is_card:
            if kind not in ("text", "unknown"):
                return ColumnProposal(column, f"{why}, but `last4` needs a text column: make a view that keeps the last 4 digits")
            return ColumnProposal(column, f"{why}: only their last 4 digits leave the database", category="payment", transform="last4")
        if check is _is_email:
            return ColumnProposal(column, why, category="payment" if _words(column).startswith("bill") else "name_contact")
        if check is _is_ip:
            return ColumnProposal(column, why, category="interactions.device_config")
        if check is _is_url:
            browsed = re.search(r"(visit|brows|histor|page|referr?er|landing)", words)
            return ColumnProposal(column, why, category="interactions.browse_history" if browsed else "content")
        return ColumnProposal(column, why, category="location")
    return None


def _by_name(table: TableShape, column: str, words: str, kind: str, values: list[Any], *, subject: bool) -> ColumnProposal | None:
    if CARD_NAME.search(words) and kind in ("text", "unknown"):
        return ColumnProposal(column, f"{_named(column)}: a card number, of which only the last 4 digits leave the database",
                              category="payment", transform="last4")
    if words == "name" and subject:
        return ColumnProposal(column, f"{_named(column)} in the subject's own table: the person's name", category="name_contact")
    if re.search(r"(^|_)(state|region|area)($|_)", words) and kind in _TEXT and _has_address(table):
        return ColumnProposal(column, f"{_named(column)} beside a postal address: part of it",
                              category="payment" if words.startswith("bill") else "name_contact")
    for rule in NAME_RULES:
        if kind not in rule.kinds or not re.search(rule.pattern, words):
            continue
        why = f"{_named(column)}: {rule.what}"
        if rule.category == "demographic" and "birth" in rule.what and values:
            why += f"; {_percent(_share(values, _is_birth_date), values)} are plausible birth dates"
        elif rule.what == "a coordinate" and kind == "integer":
            why += " kept as a whole number (degrees times a power of ten)"
        elif rule.what == "a coordinate" and values:
            why += f"; {_percent(_share(values, _is_coordinate), values)} are within coordinate ranges"
        elif rule.what == "a phone number" and values:
            why += f"; {_percent(_share(values, lambda v: _is_phone(v, formatted=False)), values)} look like phone numbers"
        category = "payment" if words.startswith("bill") and rule.category in ("name_contact", "demographic") else rule.category
        if re.match(r"(ship|shipping|delivery)_", words) and rule.category == "demographic":
            category = "name_contact"
        return ColumnProposal(column, why, category=category)
    if FREE_TEXT_NAMES.search(words) and not CODE_NAMES.search(words) and kind in ("text", "unknown"):
        return _free_text(table, column, words, f"{_named(column)}: text a person writes")
    if subject and ACCOUNT_STATE.search(words) and kind in ("flag", "time", "code", "integer", "text", "unknown"):
        return ColumnProposal(column, f"{_named(column)} in the subject's own table: the account's state or a consent",
                              category="interactions.account_history")
    return None


def _free_text(table: TableShape, column: str, words: str, why: str) -> ColumnProposal:
    """Free text goes where its table or name says: support, feedback, searches, messages; else other input."""
    both = f"{_words(table.name)}_{words}"
    if SUPPORT.search(both):
        return ColumnProposal(column, f"{why}, in a support context", category="interactions.support")
    for pattern, category, what in TOPICS:
        if category in ("feedback_ratings", "searches_commands", "content") and pattern.search(both):
            return ColumnProposal(column, f"{why}, among {what}", category=category)
    if FREE_TEXT_NAMES.search(words):
        return ColumnProposal(column, why, category="content")
    return ColumnProposal(column, why, category="other_input")


def _secret_why(column: str, column_type: sa.types.TypeEngine) -> str:
    """Why the column is a secret (never read), or "" when it is not one."""
    words = _words(column)
    if _kind(column_type, []) not in ("text", "unknown", "array", "binary", "json"):
        return ""  # a time, a flag or a count about a secret is not the secret
    if CARD_SECRET.search(words):
        return f"{_named(column)}: a card security code, which is never exported"
    if SECRET.search(words) and not re.search(r"(^|_)public($|_)", words):
        return f"{_named(column)}: a password, token or key, reported as set but never read"
    return ""


def _secret_category(column: str) -> str:
    return "payment" if CARD_SECRET.search(_words(column)) else "credentials"


def _changed_at(column: str, table: TableShape) -> str | None:
    """The time column saying when a password-like secret changed, if the table has one."""
    if not re.search(r"pass_?word|passwd|pwd", _words(column)):
        return None
    for other, column_type in table.columns.items():
        if _kind(column_type, []) == "time" and re.search(r"(pass_?word|passwd|pwd).*(changed|updated|modified|set|reset)_?(at|on|date)?$",
                                                          _words(other)):
            return other
    return None


def _collected_at(table: TableShape, taken: set[str]) -> tuple[str, str] | None:
    for column, column_type in table.columns.items():
        if column not in taken and _kind(column_type, []) in ("time", "unknown") and COLLECTED.search(_words(column)):
            return column, f"{_named(column)}: when the row was made"
    return None


def _has_address(table: TableShape) -> bool:
    return any(re.search(r"(^|_)(address|addr|street|city|town|postal_?code|post_?code|zip(_?code)?)($|_|\d)", _words(c)) for c in table.columns)


def _topic(table: str) -> tuple[str, str] | None:
    words = _words(table)
    for pattern, category, what in TOPICS:
        if pattern.search(words):
            return category, what
    return None


# --- What values look like (each test takes one value and never keeps it) -------------------------

EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
URL = re.compile(r"https?://[^\s/$.?#][^\s]*", re.IGNORECASE)
COORDINATES = re.compile(r"\(?\s*(-?\d{1,3}\.\d+)\s*[, ]\s*(-?\d{1,3}\.\d+)\s*\)?")


def _is_email(value: Any) -> bool:
    return isinstance(value, str) and EMAIL.fullmatch(value.strip()) is not None


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and URL.fullmatch(value.strip()) is not None


def _is_ip(value: Any) -> bool:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return True
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_interface(value.strip())
    except ValueError:
        return False
    return True


def _is_phone(value: Any, *, formatted: bool) -> bool:
    """A phone number: 7 to 15 digits with the usual punctuation; with `formatted`, some
    punctuation or a leading + is required, since bare digits could be any number."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not re.fullmatch(r"\+?[\d\s().\-/]+", text) or re.match(r"\d{4}-\d{2}-\d{2}", text):
        return False
    digits = re.sub(r"\D", "", text)
    return 7 <= len(digits) <= 15 and (not formatted or text != digits)


def _is_card(value: Any) -> bool:
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not re.fullmatch(r"\d[\d -]{11,22}\d", text):
        return False
    digits = [int(d) for d in re.sub(r"\D", "", text)]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _is_coordinates(value: Any) -> bool:
    match = COORDINATES.fullmatch(value.strip()) if isinstance(value, str) else None
    return bool(match) and abs(float(match[1])) <= 90 and abs(float(match[2])) <= 180


def _is_coordinate(value: Any) -> bool:
    number = _number(value)
    return number is not None and abs(number) <= 180 and number != int(number)


def _is_birth_date(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            return False
    if isinstance(value, int) and not isinstance(value, bool):
        year = value
    elif isinstance(value, (dt.date, dt.datetime)):
        year = value.year
    else:
        return False
    return 1900 <= year <= dt.date.today().year - 13


def _is_free_text(value: Any) -> bool:
    return isinstance(value, str) and len(value.strip()) >= 25 and value.count(" ") >= 3


# Patterns that tell on their own, strongest first: (test, what matching values look like, the
# words of a column name that agree with it).
VALUE_CHECKS: list[tuple[Callable[[Any], bool], str, str]] = [
    (_is_card, "pass the card-number (Luhn) check", r"card|(^|_)(cc|pan)($|_)"),
    (_is_email, "look like email addresses", r"mail"),
    (_is_ip, "look like IP addresses", r"(^|_)ip($|_)|addr"),
    (_is_url, "look like URLs", r"url|uri|link|site|page|href"),
    (_is_coordinates, "look like coordinates", r"geo|coord|location|position|point"),
]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _share(values: list[Any], check: Callable[[Any], bool]) -> float:
    return sum(1 for value in values if check(value)) / len(values) if values else 0.0


def _percent(share: float, values: list[Any]) -> str:
    return f"{round(share * 100)}% of {len(values)} sampled values"


def _sampled(values: list[Any]) -> str:
    return f"{len(values)} sampled " if values else ""


def _named(column: str) -> str:
    return f'name "{column}"'


def _words(name: str) -> str:
    """A name's words, lower case, joined by "_": FirstName, first-name and first_name read first_name."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return "_".join(word for word in re.split(r"[^a-z0-9]+", spaced.lower()) if word)


def _type_name(column_type: sa.types.TypeEngine) -> str:
    return type(column_type).__name__.lower()


def _kind(column_type: sa.types.TypeEngine, values: list[Any]) -> str:
    """What a column holds, from its type, or from its values when the database does not say (SQLite)."""
    name = _type_name(column_type)
    if isinstance(column_type, sa.Boolean):
        return "flag"
    if isinstance(column_type, sa.Integer):
        return "integer"
    if isinstance(column_type, (sa.Numeric, sa.Float)):
        return "number"
    if isinstance(column_type, (sa.Date, sa.DateTime, sa.Time, sa.Interval)):
        return "time"
    if isinstance(column_type, sa.LargeBinary) or name in ("bytea", "blob"):
        return "binary"
    if isinstance(column_type, sa.JSON):
        return "json"
    if isinstance(column_type, sa.ARRAY):
        return "array"
    if name in ("inet", "cidr", "macaddr", "macaddr8"):
        return "network"
    if name in ("geometry", "geography", "point"):
        return "geo"
    if isinstance(column_type, sa.Enum):
        return "code"  # one of a few values the schema lists: a code, not free text
    if isinstance(column_type, (sa.String, sa.Uuid)):
        return "uuid" if isinstance(column_type, sa.Uuid) else "text"
    if isinstance(column_type, sa.types.NullType):
        return _kind_of_values(values)
    return "other"


def _kind_of_values(values: list[Any]) -> str:
    first = values[0] if values else None
    if isinstance(first, bool):
        return "flag"
    if isinstance(first, int):
        return "integer"
    if isinstance(first, (float, Decimal)):
        return "number"
    if isinstance(first, (bytes, memoryview)):
        return "binary"
    return "unknown"


# --- The file --------------------------------------------------------------------------------------


def system_render(proposal: Proposal) -> str:
    """The proposal as a system file, every choice commented with its reason."""
    variable = f"{proposal.name.upper()}_DATABASE_URL"
    lines = [
        "# Proposed by `manage.py systems scan` from the database's schema and a sample of at most "
        f"{SAMPLE_SIZE} values a column,",
        "# examined in memory: no value is printed or kept. Each choice says why: read them, correct what is",
        f"# wrong, then run `manage.py systems check {proposal.name}`.",
        f"name: {proposal.name}",
        "kind: sql",
        "connection:",
        f'  url: "${{{variable}}}"  # set {variable} to the database\'s URL (not written here: it may hold a password)',
    ]
    if proposal.schema:
        lines.append(f"  # The tables are in schema {proposal.schema}: the URL must make it the search path (PostgreSQL: end it with "
                     f"?options=-csearch_path%3D{proposal.schema})")
    lines.append("tables:")
    for table in proposal.tables:
        lines += _table_lines(table)
    if proposal.left_out:
        lines.append("# Linked to these tables by foreign keys, but left out:")
        lines += [f"# - {table}: {why}" for table, why in proposal.left_out]
    if proposal.unlinked:
        lines.append(f"# Not linked to {proposal.tables[0].name} by any foreign key, so left out: {', '.join(proposal.unlinked)}")
    return "\n".join(lines) + "\n"


def _table_lines(table: TableProposal) -> list[str]:
    lines = [f"  - name: {_scalar(table.name)}", f"    primary_key: {_scalar(table.primary_key)}"]
    if table.identity:
        lines.append(f"    identity: {{email: {_scalar(table.identity)}}}  # the subject's table: {table.reach}")
    else:
        parent, column = table.parent
        lines.append(f"    parent: {{table: {_scalar(parent)}, column: {_scalar(column)}}}  # {table.reach}")
    lines += [f"    # {note}" for note in table.notes]
    if table.collected_at:
        lines.append(f"    collected_at: {_scalar(table.collected_at[0])}  # {table.collected_at[1]}")
    placed = [c for c in table.columns if c.category and not c.secret]
    secrets = [c for c in table.columns if c.secret]
    left = [c for c in table.columns if not c.category and not c.secret]
    lines.append("    columns:" if placed else "    columns: {}  # no column was recognised as personal data")
    for c in placed:
        value = f"{{category: {c.category}, transform: {c.transform}}}" if c.transform else c.category
        lines.append(f"      {_scalar(c.column)}: {value}  # {c.why}")
    if secrets:
        lines.append("    secrets:  # reported as set, never read")
        for c in secrets:
            changed = f", changed_at: {_scalar(c.changed_at)}" if c.changed_at else ""
            secret = f"{{column: {_scalar(c.column)}, category: {c.category}{changed}}}"
            lines.append(f"      {_scalar(_words(c.column) or 'secret')}: {secret}  # {c.why}")
    if left:
        lines.append("    # Left out:")
        lines += [f"    #   {c.column}: {c.why}" for c in left]
    return lines


def _scalar(value: str) -> str:
    """A name as YAML reads it back unchanged (quoted when it would read as something else)."""
    return yaml.safe_dump([value], default_flow_style=True, width=10**6).strip()[1:-1]


# --- The database ----------------------------------------------------------------------------------


def database_scan(url: str, *, name: str, identity: str | None = None, schema: str | None = None) -> str:
    """The proposed system file for the database at `url`, read in a read-only transaction that is
    rolled back. The URL is never repeated: it may hold a password."""
    # The scan's statements and rows must never be logged, whatever level logging is configured at.
    logging.getLogger(f"sqlalchemy.engine.Engine.{LOGGER}").setLevel(logging.WARNING)
    try:
        parsed = sa.engine.make_url(with_driver(url))
    except sa.exc.ArgumentError:
        raise ScanError("URL: SQLAlchemy cannot read it as a database URL") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") and not Path(parsed.database).is_file():
        # SQLite would create an empty database there, and the scan would find no tables in it.
        raise ScanError(f"URL: no SQLite database at {parsed.database}")
    try:
        engine = sa.create_engine(parsed, logging_name=LOGGER, hide_parameters=True)
    except (sa.exc.NoSuchModuleError, ModuleNotFoundError):
        raise ScanError(f"URL: no driver installed for {parsed.drivername}") from None
    try:
        with engine.connect() as conn:
            _read_only(conn)
            inspector = sa.inspect(conn)
            if schema and schema not in inspector.get_schema_names():
                raise ScanError(f"--schema: no schema {schema} in the database")
            tables = schema_read(inspector, schema)
            return system_render(system_propose(tables, sampler(conn, tables, schema), name=name, identity=identity, schema=schema))
    except sa.exc.DBAPIError as error:
        raise ScanError(f"the database refused the scan: {error.orig}") from None
    finally:
        engine.dispose()


def _read_only(conn: sa.Connection) -> None:
    """Make the scan's transaction unable to write, where the database offers it."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
