"""The fast path (connectors/sql_rendered.py) writes the archive's data files byte for byte as the
plain SQL connector does, on the same rows, awkward values and times of every kind included."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest
import sqlalchemy as sa
from django.core.files.storage import default_storage

from connectors.base import Identity, TransientError
from connectors.sql import BATCH, SqlConnector, dataset_load
from connectors.sql_rendered import RenderedRecords, RenderedSqlConnector
from dsar import exports
from dsar.models import ConnectorTask
from estate.loader import estate_load, estate_parse
from estate.stores import estate_database_url

from ..factories import request_make

pytestmark = [pytest.mark.usefixtures("estate"), pytest.mark.django_db(transaction=True)]

# Text a spreadsheet would take for a formula: the CSV writes it with a leading quote, the JSON as it is.
FORMULA_LIKE = ['=HYPERLINK("https://evil.example","x")', "+1+1", "-2+3", "-5", "@SUM(A1)", "\tcmd", "\rcmd", "\r\nstarts"]
AWKWARD = [
    "plain", "", " leading and trailing ", "comma, here", 'quote " here', '""', "line\nbreak", "cr\rhere", "crlf\r\nhere",
    "tab\there", "back\\slash", "\\.", "controls " + "".join(chr(c) for c in range(1, 32)), "unicode é ß 日本 🙂",
    "\u2028\u2029", "del \x7f", "</script>", "x" * 5000,
    *FORMULA_LIKE, "'quoted",
]
TABLES = {  # table: (its value column, its time column)
    "probe_tz": ("note text", "seen timestamptz"),
    "probe_local": ("label varchar(6000)", "at timestamp"),
    "probe_day": ("word text", "day date"),
    "probe_plain": ("remark text", None),
    "probe_int": ("n integer", "seen timestamptz"),  # not text: the plain way
}
ROWS = BATCH + 300


def _time(n: int, kind: str | None) -> dt.date | dt.datetime | None:
    """Row n's time: with microseconds on every third row, NULL on every eleventh of those with a zone."""
    at = dt.datetime(999 + n * 7 % 9000, 1 + n % 12, 1 + n % 28, n % 24, n % 60, n % 60, 0 if n % 3 else n * 37 % 1000000, tzinfo=dt.UTC)
    if kind == "seen":
        return None if n % 11 == 4 else at
    return at.date() if kind == "day" else at.replace(tzinfo=None)


def _number(n: int) -> int:
    """Row n's number: negative on odd rows."""
    return -n if n % 2 else n


@pytest.fixture
def subject(tmp_path, unique_email):
    """A subject with more than a batch of rows in each table, and both connectors to a server whose
    session is in Newfoundland's time zone."""
    email = unique_email("rendered")
    estate_load(estate_parse({"subjects": [{"email": email, "accounts": {"name": "Pat Probe"}}]}))
    engine = sa.create_engine(estate_database_url("accounts"))
    with engine.begin() as conn:
        user = conn.execute(sa.text("SELECT id FROM users WHERE email = :e"), {"e": email}).scalar()
        for table, (value, when) in TABLES.items():
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
            conn.execute(sa.text(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, user_id bigint NOT NULL, {value}{f', {when}' if when else ''})"))
            value_name, when_name = value.split()[0], when and when.split()[0]
            rows = [{"u": user, "v": None if n % 17 == 5 else (_number(n) if value_name == "n" else AWKWARD[n % len(AWKWARD)]),
                     "w": _time(n, when_name)} for n in range(ROWS)]
            conn.execute(sa.text(f"INSERT INTO {table} (user_id, {value_name}{f', {when_name}' if when else ''})"
                                 f" VALUES (:u, :v{', :w' if when else ''})"), rows)
    engine.dispose()
    dataset = tmp_path / "probes.yaml"
    dataset.write_text("system: accounts\ntables:\n  - name: users\n    identity: {email: email}\n    columns: {name: name_contact}\n" + "".join(
        f"  - name: {table}\n    parent: {{table: users, column: user_id}}\n    source: observed\n"
        + (f"    collected_at: {when.split()[0]}\n" if when else "") + f"    columns: {{{value.split()[0]}: searches_commands}}\n"
        for table, (value, when) in TABLES.items()))
    zoned = sa.engine.make_url(estate_database_url("accounts")).update_query_dict({"options": "-c TimeZone=America/St_Johns"})
    url = zoned.render_as_string(hide_password=False)
    plain, rendered = SqlConnector(name="accounts", dataset=dataset_load(dataset), url=url), RenderedSqlConnector(name="accounts", dataset=dataset_load(dataset), url=url)
    yield email, plain, rendered
    plain.close()
    rendered.close()
    engine = sa.create_engine(estate_database_url("accounts"))
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(sa.text(f"DROP TABLE {table}"))
    engine.dispose()


def _export(email: str, connector) -> exports.Archive:
    request = request_make(status="processing", email=email)
    staged = exports.stage_gather(connector, Identity(email=email), frozenset(request.categories), request_id=request.id, attempt=1)
    return exports.archive_build(request, [ConnectorTask(request=request, connector="accounts", output=staged.as_json())])


def _data_files(email: str, connector) -> dict[str, bytes]:
    archive = _export(email, connector)
    with default_storage.open(archive.path, "rb") as handle:
        opened = zipfile.ZipFile(io.BytesIO(handle.read()))
    return {name: opened.read(name) for name in opened.namelist() if name.startswith("data/")}


def test_the_rendered_data_files_are_the_plain_ones_byte_for_byte(subject):
    email, plain, rendered = subject
    gathered = [item for item in rendered.gather_rendered(Identity(email=email)) if isinstance(item, RenderedRecords)]
    assert [item.system for item in gathered] == ["accounts.probe_tz", "accounts.probe_local", "accounts.probe_day", "accounts.probe_plain"]

    by_plain, by_rendered = _data_files(email, plain), _data_files(email, rendered)
    assert by_rendered.keys() == by_plain.keys() >= {"data/searches_commands.json", "data/searches_commands.csv"}
    for name, data in by_plain.items():
        assert by_rendered[name] == data, name
    written = by_plain["data/searches_commands.csv"].decode()
    assert written.count("\r\n") > 5 * (ROWS - ROWS // 17)  # every table's rows, some of them holding CRLF
    assert "accounts,accounts.probe_tz,observed,,,0999-01-01T00:00:00+00:00,plain,,,,\r\n" in written  # row 0
    assert 'accounts,accounts.probe_tz,observed,,,,"quote "" here",,,,\r\n' in written  # row 4, whose time is NULL
    assert 'accounts,accounts.probe_local,observed,,,1020-04-04T03:03:03.000111,,"comma, here",,,\r\n' in written  # row 3
    assert "accounts,accounts.probe_day,observed,,,1006-02-02,,,,,\r\n" in written  # row 1, an empty text
    # Text that starts like a formula gets a leading quote; a negative number (the integer column) does not.
    assert 'accounts,accounts.probe_plain,observed,,,,,,,"\'=HYPERLINK(""https://evil.example"",""x"")",\r\n' in written
    assert "accounts,accounts.probe_plain,observed,,,,,,,'+1+1,\r\n" in written
    assert "accounts,accounts.probe_plain,observed,,,,,,,'-2+3,\r\n" in written
    assert "accounts,accounts.probe_plain,observed,,,,,,,'-5,\r\n" in written
    assert "accounts,accounts.probe_plain,observed,,,,,,,'@SUM(A1),\r\n" in written
    assert "accounts,accounts.probe_plain,observed,,,,,,,'\tcmd,\r\n" in written
    assert 'accounts,accounts.probe_plain,observed,,,,,,,"\'\rcmd",\r\n' in written
    assert 'accounts,accounts.probe_plain,observed,,,,,,,"\'\r\nstarts",\r\n' in written
    assert "accounts,accounts.probe_plain,observed,,,,,,,'quoted,\r\n" in written  # a quote of its own is not a formula
    assert "accounts,accounts.probe_int,observed,,,1006-02-02T01:01:01+00:00,,,,,-1\r\n" in written  # row 1
    records = json.loads(by_plain["data/searches_commands.json"])
    values = {record["fields"]["remark"] for record in records if record["system"] == "accounts.probe_plain"}
    assert set(FORMULA_LIKE) <= values  # the JSON keeps them as they were


def test_the_rendered_rows_past_their_categorys_retention_are_found_as_the_plain_way_finds_them(subject):
    email, plain, rendered = subject
    by_plain, by_rendered = _export(email, plain).retention_finding, _export(email, rendered).retention_finding
    assert by_rendered == by_plain
    # Searches are kept at most 18 months: every row dated before 2022 (the next are in 2028) is past
    # that, whatever kind of time the table keeps; rows without a time or a value are not counted.
    found = {entry["system"]: (entry["reason"], entry["records"], entry["oldest_collected_at"]) for entry in by_plain}
    assert found == {
        "accounts.probe_day": ("older_than_promised", 151, "0999-01-01T00:00:00+00:00"),
        "accounts.probe_int": ("older_than_promised", 137, "0999-01-01T00:00:00+00:00"),
        "accounts.probe_local": ("older_than_promised", 151, "0999-01-01T00:00:00+00:00"),
        "accounts.probe_tz": ("older_than_promised", 137, "0999-01-01T00:00:00+00:00"),
    }


def test_a_connection_lost_while_rows_are_rendered_is_a_transient_error(subject):
    email, _, rendered = subject
    items = rendered.gather_rendered(Identity(email=email))
    run = next(item for item in items if isinstance(item, RenderedRecords))
    texts = run.texts(line_start="", fields_start="", row_start="", cells_before=0, cells_after=0)
    lines, _, count, _ = next(texts)
    assert count == 282 and lines.count("\n") >= count  # the rows past the first batch, less the NULL values
    engine = sa.create_engine(estate_database_url("accounts"))
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    engine.dispose()
    with pytest.raises(TransientError, match="database unavailable"):
        list(items)
