"""`systems check` for an SQL system: its file fitted against the live schema.

What it reads: SQLAlchemy's inspector (tables, columns, types, NOT NULL, foreign keys), the
database's own query plan for each table's lookup (the same statement the connector runs), and the
triggers the database lists. What it reports:

- problems, which mean the system cannot serve as its file says: a table or column that is not
  there, a time column that holds no time, `last4` or `mask` on a column that holds no text, a
  `null` erasure of a NOT NULL column, a delete that another table's foreign key would refuse;
- advice, which does not: a lookup no index serves (with the statement that makes one serve it),
  and the triggers that run when the erasure writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .base import Finding, Identity
from .sql_dataset import Table

if TYPE_CHECKING:
    from .sql import SqlConnector

# The lookups are planned for these values, never run.
PROBE_EMAIL = "systems-check@example.invalid"
PROBE_VALUE = "systems-check"
TIMES = (sa.Date, sa.DateTime)
MASK_LENGTH = 64  # a keyed SHA-256 in hex
# What refuses a parent's delete while a child row still points at it.
REFUSING = {"NO ACTION", "RESTRICT"}
MYSQL = ("mysql", "mariadb")  # the names of MySQL's dialect, which reaches MariaDB too


@dataclass(frozen=True)
class _Schema:
    """What the inspector says of the tables the file names."""

    conn: sa.Connection
    inspector: sa.Inspector
    tables: set[str]

    def columns(self, table: str) -> dict[str, dict]:
        return {column["name"]: column for column in self.inspector.get_columns(table)}


def schema_findings(connector: SqlConnector, conn: sa.Connection) -> list[Finding]:
    """Every problem and piece of advice for the connector's tables, in the file's order."""
    inspector = sa.inspect(conn)
    schema = _Schema(conn, inspector, set(inspector.get_table_names()))
    findings: list[Finding] = []
    for index, table in enumerate(connector.dataset.tables):
        where = f"tables[{index}]"
        if table.name not in schema.tables:
            findings.append(Finding(f"{where}.name", f"no table {table.name} in the database"))
            continue
        table_findings = list(_key_findings(table, schema, where)) or list(_column_findings(table, schema.columns(table.name), where))
        findings += table_findings
        if any(f.problem for f in table_findings):
            continue  # the statements below would name what is not there
        findings += _erase_findings(connector, table, schema, where)
        findings += _lookup_findings(connector, conn, schema, table, where)
        findings += _trigger_findings(conn, table, where)
    return findings


def _key_findings(table: Table, schema: _Schema, where: str) -> Iterator[Finding]:
    """A file's key that the table lacks. A table with no primary key at all is refused: nothing
    then names one row, to read past a batch or to erase."""
    columns = schema.columns(table.name)
    if all(column in columns for column in table.primary_key):
        return
    key = schema.inspector.get_pk_constraint(table.name)["constrained_columns"]
    if key:
        yield Finding(f"{where}.primary_key", f"{table.name} has no column {', '.join(c for c in table.primary_key if c not in columns)}; "
                                              f"its primary key is {', '.join(key)}: write `primary_key: {_listed(key)}`")
    else:
        yield Finding(f"{where}.primary_key", f"{table.name} has no primary key: add one to the table (the product needs a key that "
                                              "names one row, to read on past a batch and to erase)")


def _listed(columns: list[str]) -> str:
    return columns[0] if len(columns) == 1 else f"[{', '.join(columns)}]"


def _column_findings(table: Table, columns: dict[str, dict], where: str) -> Iterator[Finding]:
    named = {column: "primary_key" for column in table.primary_key}
    named |= {column: "identity" if table.identity else "parent" for column in table.reach}
    named |= {column: f"provides.{name}" for name, column in table.provides.items()}
    named |= {c.name: f"columns.{c.name}" for c in table.columns}
    named |= {s.column: f"secrets.{s.name}" for s in table.secrets}
    named |= {getattr(table, key): key for key in ("source_column", "source_name_column", "source_kind_column", "category_column",
                                                    "data_column", "collected_at") if getattr(table, key)}
    times = {table.collected_at: "collected_at", table.retain and table.retain.date_column: "retain.date_column"}
    times |= {s.changed_at: f"secrets.{s.name}.changed_at" for s in table.secrets if s.changed_at}
    named |= {column: key for column, key in times.items() if column}
    for column, key in named.items():
        if column not in columns:
            yield Finding(f"{where}.{key}", f"{table.name} has no column {column}")
    for column, key in times.items():
        if column in columns and not _is(columns[column]["type"], TIMES):
            yield Finding(f"{where}.{key}", f"{table.name}.{column} holds {columns[column]['type']}, not a date or time")
    texts = {c.name: f"columns.{c.name}" for c in table.columns if c.transform == "last4" or (c.erase or table.erase) == "mask"}
    for column, key in texts.items():
        if column in columns and not _is(columns[column]["type"], (sa.String,)):
            yield Finding(f"{where}.{key}", f"{table.name}.{column} holds {columns[column]['type']}, not text: `last4` and `mask` need text")
    masked = [c.name for c in table.columns if (c.erase or table.erase) == "mask"]
    for column in masked:
        length = getattr(columns.get(column, {}).get("type"), "length", None)
        if length is not None and length < MASK_LENGTH:
            yield Finding(f"{where}.{texts[column]}", f"{table.name}.{column} holds {columns[column]['type']}: a mask is {MASK_LENGTH} "
                                                      "characters (widen the column, or erase it by `null` or `delete`)")


def _erase_findings(connector: SqlConnector, table: Table, schema: _Schema, where: str) -> Iterator[Finding]:
    columns = schema.columns(table.name)
    nulled = {c.name: f"columns.{c.name}.erase" if c.erase else "erase" for c in table.columns if (c.erase or table.erase) == "null"}
    nulled |= {s.column: "erase" for s in table.secrets if table.erase != "delete"}
    for column, key in nulled.items():
        if not columns[column]["nullable"]:
            yield Finding(f"{where}.{key}", f"`null` cannot clear {table.name}.{column}: the column is NOT NULL (erase the table by "
                                            "`delete`, or the column by `mask`)")
    if table.erase != "delete":
        return
    # Rows erased before this table's: its children, and the tables providing the identity it is found by.
    children = {(child.name, child.parent.columns) for child in connector.dataset.children(table.name)}
    if table.identity:
        children |= {(t.name, (t.provides[table.identity.name],)) for t in connector.dataset.tables if table.identity.name in t.provides}
    for other in sorted(schema.tables):
        for key in schema.inspector.get_foreign_keys(other):
            if key["referred_table"] != table.name or (other, tuple(key["constrained_columns"])) in children:
                continue
            on_delete = _on_delete(schema.conn, other, key)
            if on_delete in REFUSING:
                yield Finding(f"{where}.erase", f"deleting from {table.name} would be refused while {other}.{', '.join(key['constrained_columns'])} "
                                                f"points at the row (ON DELETE {on_delete}): add {other} to the file with {table.name} as its "
                                                "parent, or erase this table by `null` or `mask`")


def _on_delete(conn: sa.Connection, table: str, key: dict) -> str:
    """The rule of a foreign key (SQLite's and MySQL's reflection leave out the refusing ones:
    SQLite's pragma and MySQL's information schema have them)."""
    rule = key.get("options", {}).get("ondelete")
    if rule is None and conn.dialect.name == "sqlite":
        for row in conn.exec_driver_sql(f"PRAGMA foreign_key_list({_quoted(conn, table)})"):
            if row[2] == key["referred_table"] and row[3] == key["constrained_columns"][0]:
                rule = row[6]
    if rule is None and conn.dialect.name in MYSQL:
        rule = conn.execute(sa.text("SELECT delete_rule FROM information_schema.referential_constraints WHERE constraint_schema = DATABASE() "
                                    "AND table_name = :t AND constraint_name = :name"), {"t": table, "name": key["name"]}).scalar()
    return (rule or "NO ACTION").upper()


def _probe(connector: SqlConnector, schema: _Schema) -> Identity:
    """A subject to plan the lookups for: a value of each identity that its columns' type takes."""
    ids = {}
    for table in connector.dataset.tables:
        if table.identity and table.identity.name != "email" and table.name in schema.tables:
            column_type = schema.columns(table.name).get(table.identity.column, {}).get("type")
            ids[table.identity.name] = [0 if isinstance(column_type, (sa.Integer, sa.Numeric)) else PROBE_VALUE]
    return Identity(email=PROBE_EMAIL, ids=ids)


def _lookup_findings(connector: SqlConnector, conn: sa.Connection, schema: _Schema, table: Table, where: str) -> Iterator[Finding]:
    """Advice when the database would read the whole table to find the subject's rows."""
    query = connector.lookup(table).params(connector.identity_params(_probe(connector, schema)))
    if table.name not in _scanned(conn, query):
        return
    columns = [_quoted(conn, column) for column in table.reach]
    name = _quoted(conn, f"{table.name}_{'_'.join(table.reach)}_dsar")
    advice = f"CREATE INDEX {name} ON {_quoted(conn, table.name)} ({', '.join(columns)});"
    if table.identity and table.identity.match == "case_insensitive":
        folded = f"lower(trim({columns[0]}))"
        plain, advice = advice, f"CREATE INDEX {name} ON {_quoted(conn, table.name)} ({folded});"
        if conn.dialect.name in MYSQL:
            advice = _folded_column_advice(conn, schema, table, folded, plain=plain)
    yield Finding(f"{where}.{'identity' if table.identity else 'parent'}",
                  f"no index serves the lookup, so each request reads the whole table: {advice}", problem=False)


def _folded_column_advice(conn: sa.Connection, schema: _Schema, table: Table, folded: str, *, plain: str) -> str:
    """MariaDB indexes no expression such as lower(trim(email)), nor does its planner (10.11) see
    one in an indexed generated column. What serves the lookup there is a generated column holding
    the folded value, indexed, and found exactly: the subject's email is trimmed and lower-cased
    already. Another identity's values come as the system providing them holds them: they are
    found exactly only where this column holds them so too."""
    if table.identity.name != "email":
        return (f"MariaDB indexes no expression such as {folded}: if the column holds its values as the system providing them does, "
                f"write `match: exact` and {plain}")
    column = f"{table.identity.column}_dsar"
    kind = schema.columns(table.name)[table.identity.column]["type"]
    # The column's own type; a TEXT column's (no length, which an index needs) as long as an email can be.
    kind = kind.compile(conn.dialect) if isinstance(kind, sa.String) and kind.length else "VARCHAR(320)"
    return (f"ALTER TABLE {_quoted(conn, table.name)} ADD COLUMN {_quoted(conn, column)} {kind} AS ({folded}) VIRTUAL, "
            f"ADD INDEX {_quoted(conn, f'{table.name}_{column}')} ({_quoted(conn, column)}); then find the subject by it: "
            f"`identity: {{email: {column}, match: exact}}` (MariaDB indexes no expression such as {folded})")


def _scanned(conn: sa.Connection, query: sa.Select) -> set[str]:
    """The tables the database's plan for `query` reads whole."""
    compiled = query.compile(conn)
    expanded = compiled.construct_expanded_state()  # the IN lists spelt out, with the values bound to the query
    params = expanded.positional_parameters if compiled.positional else expanded.parameters
    sql = expanded.statement
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # Any usable index, however small the table; and joined by nested loops, each probing its
        # table by the key it got, as it would with the table's real size (with few rows in the
        # statistics, a hash join walking a whole key index was chosen now and then).
        for setting in ("enable_seqscan", "enable_hashjoin", "enable_mergejoin"):
            conn.exec_driver_sql(f"SET LOCAL {setting} = off")
        [plan] = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}", params).scalar_one()
        for setting in ("enable_seqscan", "enable_hashjoin", "enable_mergejoin"):
            conn.exec_driver_sql(f"RESET {setting}")
        return set(_seq_scans(plan["Plan"]))
    if dialect == "sqlite":
        details = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
        return {detail.split()[1] for detail in details if detail.startswith("SCAN ") and " USING " not in detail}
    if dialect in MYSQL:
        # ALL reads the table, `index` the whole of an index. On a small table the planner reads it
        # whole even with a usable index, which it names in possible_keys: that table is served.
        rows = conn.exec_driver_sql(f"EXPLAIN {sql}", params).mappings()
        return {row["table"] for row in rows if row["type"] in ("ALL", "index") and not row["possible_keys"]}
    return set()  # a dialect whose plans the check does not read


def _seq_scans(node: dict) -> Iterator[str]:
    """Relations a plan reads whole: by a sequential scan, or by an index it walks end to end with
    no condition on it (what PostgreSQL falls back to when sequential scans are off)."""
    whole = node.get("Node Type") == "Seq Scan" or (node.get("Node Type") in ("Index Scan", "Index Only Scan") and "Index Cond" not in node)
    if whole:
        yield node["Relation Name"]
    for child in node.get("Plans", []):
        yield from _seq_scans(child)


def _trigger_findings(conn: sa.Connection, table: Table, where: str) -> Iterator[Finding]:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        rows = conn.execute(sa.text("SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(:t) AND NOT tgisinternal ORDER BY tgname"),
                            {"t": _quoted(conn, table.name)}).scalars()
    elif dialect == "sqlite":
        rows = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t ORDER BY name"),
                            {"t": table.name}).scalars()
    elif dialect in MYSQL:
        rows = conn.execute(sa.text("SELECT trigger_name FROM information_schema.triggers WHERE event_object_schema = DATABASE() "
                                    "AND event_object_table = :t ORDER BY trigger_name"), {"t": table.name}).scalars()
    else:
        return
    for name in rows:
        yield Finding(f"{where}.erase", f"trigger {name} on {table.name} runs when the erasure writes: make sure it neither blocks "
                                        "nor copies the data",
                      problem=False)


def _is(column_type: sa.types.TypeEngine, kinds: tuple[type, ...]) -> bool:
    """Whether a reflected type is one of `kinds`; a column of no declared type (SQLite) passes."""
    return isinstance(column_type, (*kinds, sa.types.NullType))


def _quoted(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)
