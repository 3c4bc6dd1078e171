"""The SQL connector's one fast path: PostgreSQL writes a long table's records as the export's text.

What it bypasses. For a table whose rows are each one text value in one category from a fixed
source (searches, pages visited: the tables that reach millions of rows for one person), the rows
after the first batch never become Records. PostgreSQL renders each of them as the export's JSON
line and CSV row: `to_json` for the JSON string, `replace` and a regular expression for the CSV
quoting of Python's csv module, a leading quote for text a spreadsheet would take for a formula (as
the staging writes it), `to_char` for the time as `datetime.isoformat()` writes it. The
export's staging (dsar/exports/staging.py) copies that text instead of calling Python's json and
csv writers once per record; beside it, PostgreSQL gives the time of each row collected before
the date its category's retention allows, for the staging's retention check (NULL for the others).
Any other table, and every first batch, goes the plain way.

Why. A record costs the plain path a few microseconds of Python: about six seconds of a worker for
a million rows, most of an export that large. See docs/decisions/0201-postgresql-renders-long-tables.md
for the measured gain. tests/connectors/test_sql_rendered.py proves the archive's data files come
out byte for byte as the plain path writes them, awkward values included.

A deployment chooses it by naming `connectors.sql_rendered.RenderedSqlConnector` as a PostgreSQL
system's class; everything else about the system (its tables, its erasure) is SqlConnector's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .base import Identity, Period, Record, Source
from .sql import SqlConnector, TableRead, after_key, database_errors

RENDER_BLOCK = 5000  # rows fetched and joined into one text at a time
CSV_QUOTED = '[",\r\n]'  # what makes Python's csv writer (the excel dialect) quote a cell
# The text the staging's csv_cell writes with a leading single quote (every value here is text).
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class RenderedRecords:
    """Records of one category, system and source, each the one text field `field`, that PostgreSQL
    writes out as text. It reads from the gather that yielded it: use it before that gather goes on."""

    category: str
    system: str
    source: Source
    field: str
    query: sa.Select
    connection: sa.Connection
    params: dict[str, Any]

    def texts(self, *, line_start: str, fields_start: str, row_start: str, cells_before: int, cells_after: int,
              kept_from: dt.datetime | None = None) -> Iterator[tuple[str, str, int, list[dt.datetime | dt.date]]]:
        """The records in blocks: each block's JSON lines, its CSV rows, how many records it holds,
        and the times of those collected before `kept_from` (none without it).

        A record's JSON line is `line_start`, its time as JSON (a string or null), `fields_start`, its
        value as a JSON string, and `}}` and a newline. Its CSV row is `row_start`, its time (or
        nothing), `cells_before` + 1 commas, its value as a CSV cell, `cells_after` commas and CRLF.
        """
        params = {**self.params, "line_start": line_start, "fields_start": fields_start, "row_start": row_start,
                  "before": "," * (cells_before + 1), "end": "," * cells_after + "\r\n", "kept_from": kept_from}
        with database_errors(self.system):
            for rows in self.connection.execute(self.query, params).partitions():
                older = [row[2] for row in rows if row[2] is not None] if kept_from is not None else []
                yield "".join([row[0] for row in rows]), "".join([row[1] for row in rows]), len(rows), older


class RenderedSqlConnector(SqlConnector):
    """An SQL system on PostgreSQL whose long single-text-column tables it renders as export text."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._rendered: dict[str, sa.Select | None] = {}

    def gather_rendered(self, identity: Identity, period: Period | None = None) -> Iterator[Record | RenderedRecords]:
        """What `gather` (or `gather_period`) yields, except that the rows of a table past its first
        batch come as one RenderedRecords when PostgreSQL can write them exactly as the export would."""
        return self._gather(identity, self._rest_rendered, period)

    def _rest_rendered(self, conn: sa.Connection, read: TableRead, params: dict) -> Iterator[Record | RenderedRecords]:
        if read.period is not None:  # rows limited to a period, rarely asked for, go the plain way
            return self._rest_records(conn, read, params)
        if read.table.name not in self._rendered:
            self._rendered[read.table.name] = self._render_query(conn, read)
        query = self._rendered[read.table.name]
        if query is None:
            return self._rest_records(conn, read, params)
        (column,) = read.table.columns
        return iter([RenderedRecords(column.category, read.system, read.source, column.name, query, conn, params)])

    def _render_query(self, conn: sa.Connection, read: TableRead) -> sa.Select | None:
        """The query rendering a table's rows past the key `after`; None unless each row is one plain
        text value in one category from a fixed source, and its time (if any) a date or a timestamp.
        Rows that may be other people's data go the plain way: their records carry the flag."""
        table = read.table
        if (read.source is None or len(table.columns) != 1 or table.columns[0].transform or table.category_column or table.secrets
                or table.retain or read.others):
            return None
        types = {column["name"]: column["type"] for column in sa.inspect(conn).get_columns(table.name)}
        column = table.columns[0]
        value_type, time_type = types.get(column.name), types.get(table.collected_at) if table.collected_at else None
        # Text as Python reads it: char(n) loses its padding when cast, an enum is not text.
        if not isinstance(value_type, sa.String) or isinstance(value_type, (sa.CHAR, sa.Enum)):
            return None
        if table.collected_at and not isinstance(time_type, (sa.DateTime, sa.Date)):
            return None
        t = self._table(table, column.name, *([table.collected_at] if table.collected_at else []))
        value = sa.cast(t.c[column.name], sa.Text)
        if table.collected_at:
            when = _iso(t.c[table.collected_at], time_type)
            when_json, when_csv = sa.func.coalesce('"' + when + '"', "null"), sa.func.coalesce(when, "")
            older = sa.case((_before_kept_from(t.c[table.collected_at], time_type), t.c[table.collected_at]))
        else:
            when_json, when_csv, older = sa.literal("null", sa.Text), sa.literal("", sa.Text), sa.null()
        line = sa.func.concat(sa.bindparam("line_start", type_=sa.Text), when_json, sa.bindparam("fields_start", type_=sa.Text),
                              sa.func.to_json(value), "}}\n")
        # The formula's quote goes inside the CSV quoting: a single quote never makes a cell quoted.
        mark = sa.case((sa.func.left(value, 1, type_=sa.Text).in_(CSV_FORMULA_STARTS), "'"), else_="")
        cell = sa.case((value.regexp_match(CSV_QUOTED), '"' + mark + sa.func.replace(value, '"', '""', type_=sa.Text) + '"'),
                       else_=mark + value)
        row = sa.func.concat(sa.bindparam("row_start", type_=sa.Text), when_csv, sa.bindparam("before", type_=sa.Text), cell,
                             sa.bindparam("end", type_=sa.Text))
        key = self._key(table, t)
        condition = self._belongs(table, t) & after_key(key) & t.c[column.name].isnot(None)
        return sa.select(line, row, older).select_from(t).where(condition).order_by(*key).execution_options(yield_per=RENDER_BLOCK)


def _before_kept_from(column: sa.ColumnElement, kind: sa.types.TypeEngine) -> sa.ColumnElement:
    """The condition that the column's time comes before the bound `kept_from` (never, when it is
    NULL), judged as the export's staging judges a record's: a time without a zone as UTC, a day
    once the whole day is before it."""
    kept_from = sa.bindparam("kept_from", type_=sa.DateTime(timezone=True))
    if not isinstance(kind, sa.DateTime):
        return column < sa.cast(sa.func.timezone("UTC", kept_from), sa.Date)
    if not kind.timezone:
        return sa.func.timezone("UTC", column) < kept_from
    return column < kept_from


def _iso(column: sa.ColumnElement, kind: sa.types.TypeEngine) -> sa.ColumnElement:
    """The column's time as Python's isoformat() writes what the plain path reads: a date as
    YYYY-MM-DD; a time with its microseconds only when there are some, and one with a zone in UTC,
    as +00:00. NULL stays NULL."""
    if not isinstance(kind, sa.DateTime):
        return sa.func.to_char(column, "YYYY-MM-DD", type_=sa.Text)
    zone = '"+00:00"' if kind.timezone else ""
    if kind.timezone:
        column = sa.func.timezone("UTC", column)
    seconds = 'YYYY-MM-DD"T"HH24:MI:SS'
    return sa.case((sa.func.to_char(column, "US", type_=sa.Text) == "000000", sa.func.to_char(column, seconds + zone, type_=sa.Text)),
                   else_=sa.func.to_char(column, f"{seconds}.US{zone}", type_=sa.Text))
