"""The SQL connectors (accounts, payments, third-party) against their real PostgreSQL databases."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from connectors.base import Cell, Connector, Identity, RecordRun, TransientError
from estate.loader import EstateError, estate_load, estate_parse
from estate.stores import estate_database_url
from connectors.registry import connector_get

pytestmark = pytest.mark.usefixtures("estate")


def _load(*subjects: dict) -> None:
    estate_load(estate_parse({"subjects": list(subjects)}))


def _records(connector: str, email: str) -> list:
    return list(connector_get(connector).gather(Identity(email=email)))


def _count(system: str, sql: str, **params) -> int:
    engine = sa.create_engine(estate_database_url(system))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


@pytest.fixture
def twins(unique_email):
    """A subject, and one whose email differs only by a plus-suffix."""
    email = unique_email("twin")
    other = email.replace("@", "+promo@")
    full = {
        "accounts": {"name": "Twin", "password": "s3cret-pass", "searches": ["one", "two"], "contacts": [{"name": "Kim"}]},
        "payments": {"cards": [{"number": "5555555555554444", "cvc": "987", "exp": "01/30"}],
                     "transactions": [{"amount": 5, "currency": "GBP", "at": "2026-01-01T00:00:00Z", "item": "x"},
                                      {"amount": 7, "currency": "GBP", "at": "2010-01-01T00:00:00Z", "item": "old"}],
                     "subscriptions": [{"product": "Music", "status": "active"}]},
        "third_party": [{"source": "Northwind Insights", "source_type": "data_broker", "category": "demographic",
                         "acquired_at": "2026-01-01T00:00:00Z", "data": {"income_band": "B"}}],
    }
    _load({"email": email, **full}, {"email": other, **full})
    return email, other


@pytest.mark.django_db
def test_gather_finds_exactly_the_subject_and_not_a_plus_suffixed_twin(twins):
    email, other = twins
    for connector in ("accounts", "payments", "third_party"):
        mine = _records(connector, email)
        assert mine, connector
        theirs = _records(connector, other)
        assert len(mine) == len(theirs)
    searches = [r.fields["query"] for r in _records("accounts", email) if r.category == "searches_commands"]
    assert sorted(searches) == ["one", "two"]
    assert all(r.fields.get("email") != other for r in _records("accounts", email))


@pytest.mark.django_db
def test_secrets_never_leave_the_database_and_cards_show_four_digits(twins):
    email, _ = twins
    records = _records("accounts", email) + _records("payments", email)
    text = repr([r.fields for r in records])
    assert "s3cret-pass" not in text and "sha256$" not in text and "5555555555554444" not in text
    values = [value for r in records for value in r.fields.values()]
    assert "987" not in values and not any("cvc" in r.fields for r in records)  # the security code, too short to grep for
    card = next(r.fields for r in records if r.system == "payments.cards")
    assert card["number"] == "**** 4444"
    assert card["security_code"].startswith("set")
    credentials = next(r.fields for r in records if r.category == "credentials")
    assert credentials["password"].startswith("set") and credentials["password_last_changed"]


@pytest.mark.django_db
def test_third_party_records_carry_their_source_name_and_kind(twins):
    email, _ = twins
    (record,) = _records("third_party", email)
    assert record.category == "demographic"
    assert record.source.as_dict() == {"type": "third_party", "name": "Northwind Insights", "kind": "data_broker"}
    assert record.fields == {"income_band": "B"}


@pytest.mark.django_db
def test_erase_keeps_invoices_under_retention_and_leaves_the_twin_untouched(twins):
    email, other = twins
    receipt = connector_get("payments").erase(Identity(email=email))
    assert receipt.erased["payment"] == 2  # the customer row and the card
    assert receipt.erased["subscription"] == 1
    assert receipt.erased["interactions.account_history"] == 1  # the invoice past its 10 years
    (kept,) = receipt.retained
    assert (kept.category, kept.count) == ("interactions.account_history", 1)
    assert "tax law" in kept.reason and "legal_obligation" in kept.reason
    assert kept.until.year == 2036
    left = _records("payments", email)
    assert [r.system for r in left] == ["payments.transactions"]
    assert left[0].fields["retained_until"].startswith("2036-01-01")
    assert len(_records("payments", other)) == len(_records("payments", other)) > 1


@pytest.mark.django_db
def test_erase_twice_is_harmless_and_finds_nothing_the_second_time(twins):
    email, other = twins
    first = connector_get("accounts").erase(Identity(email=email))
    assert first.erased["searches_commands"] == 2
    second = connector_get("accounts").erase(Identity(email=email))
    assert second.erased == {}
    assert _records("accounts", email) == []
    assert _records("accounts", other)


@pytest.mark.django_db
def test_erasing_third_party_data_suppresses_the_source_and_a_reimport_is_refused(twins):
    email, other = twins
    receipt = connector_get("third_party").erase(Identity(email=email))
    assert receipt.suppressed_sources == ["Northwind Insights"]
    assert _count("third_party", "SELECT count(*) FROM suppressions") >= 1
    assert _count("third_party", "SELECT count(*) FROM suppressions WHERE identity_hash = :e", e=email) == 0  # never the email
    again = {"email": email, "third_party": [{"source": "Northwind Insights", "source_type": "data_broker", "category": "demographic",
                                              "acquired_at": "2026-02-01T00:00:00Z"}]}
    with pytest.raises(EstateError, match=r"subjects\[0\]\.third_party\[0\]\.source"):
        _load(again)
    assert _records("third_party", email) == []
    _load({"email": other, "third_party": again["third_party"]})  # the twin was not erased: allowed


@pytest.mark.django_db
def test_a_partial_deletion_erases_only_the_requested_categories(twins):
    email, _ = twins
    receipt = connector_get("accounts").erase(Identity(email=email), frozenset({"searches_commands"}))
    assert receipt.erased == {"searches_commands": 2}
    categories = {r.category for r in _records("accounts", email)}
    assert "searches_commands" not in categories and "name_contact" in categories


@pytest.mark.django_db
def test_a_mask_strategy_replaces_values_with_a_keyed_hash_and_keeps_the_row(tmp_path, unique_email):
    from connectors.sql import SqlConnector

    email = unique_email("masked")
    _load({"email": email, "accounts": {"name": "Maria Masked", "phone": "+44 1"}})
    dataset = tmp_path / "masked.yaml"
    dataset.write_text(
        "system: accounts\ntables:\n  - name: users\n    identity: {email: email}\n    erase: mask\n"
        "    columns: {name: name_contact, phone: name_contact}\n"
    )
    connector = SqlConnector(name="masked", dataset=str(dataset), mask_key="k")
    try:
        receipt = connector.erase(Identity(email=email))
        assert receipt.erased == {"name_contact": 1}
        (record,) = list(connector.gather(Identity(email=email)))
        assert record.fields["name"] != "Maria Masked" and len(record.fields["name"]) == 64
        assert record.fields["phone"] != record.fields["name"]
        assert connector.erase(Identity(email=email)).erased == {}  # masked already: nothing left to mask
    finally:
        connector.close()


@pytest.mark.django_db
def test_a_table_with_more_rows_than_one_batch_streams_on_from_its_last_key(unique_email):
    from connectors.sql import BATCH

    email = unique_email("many")
    searches = [f"query {n:05d}" for n in range(2 * BATCH + 7)]
    _load({"email": email, "accounts": {"searches": searches}})
    found = [r.fields["query"] for r in _records("accounts", email) if r.category == "searches_commands"]
    assert found == searches


AWKWARD = [
    "plain", "", " leading and trailing ", "comma, here", 'quote " here', '""', "line\nbreak", "cr\rhere", "crlf\r\nhere",
    "tab\there", "back\\slash", "\\.", "controls " + "".join(chr(c) for c in range(1, 32)), "unicode é ß 日本 🙂",
    "\u2028\u2029", "del \x7f", "</script>", "x" * 5000,
]
PROBES = {  # table: (value column and type, collected-at column and type, category)
    "probe_tz": ("note text", "seen timestamptz"),
    "probe_local": ("label varchar(6000)", "at timestamp"),
    "probe_day": ("word text", "day date"),
    "probe_plain": ("remark text", None),
    "probe_int": ("n integer", "seen timestamptz"),
}


@pytest.fixture
def probes(tmp_path, unique_email):
    """A subject with more than a batch of rows in tables of each kind a run can render (and one it
    cannot), all in one category, and a connector to a server whose default time zone is not UTC."""
    from connectors.sql import BATCH, SqlConnector

    email = unique_email("probe")
    _load({"email": email, "accounts": {"name": "Pat Probe"}})
    url = sa.engine.make_url(estate_database_url("accounts"))
    engine = sa.create_engine(url)
    rows = BATCH + 300
    with engine.begin() as conn:
        user = conn.execute(sa.text("SELECT id FROM users WHERE email = :e"), {"e": email}).scalar()
        for table, (value, when) in PROBES.items():
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
            conn.execute(sa.text(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, user_id bigint NOT NULL, {value}{f', {when}' if when else ''})"))
            value_name, when_name = value.split()[0], when and when.split()[0]
            for n in range(rows):
                at = dt.datetime(999 + n * 7 % 9000, 1 + n % 12, 1 + n % 28, n % 24, n % 60, n % 60, 0 if n % 3 else n * 37 % 1000000, tzinfo=dt.UTC)
                params = {"u": user, "v": None if n % 17 == 5 else (n if value_name == "n" else AWKWARD[n % len(AWKWARD)]),
                          "w": None if n % 11 == 4 and when_name == "seen" else (at.date() if when_name == "day" else at.replace(tzinfo=None) if when_name == "at" else at)}
                conn.execute(sa.text(f"INSERT INTO {table} (user_id, {value_name}{f', {when_name}' if when else ''}) VALUES (:u, :v{', :w' if when else ''})"), params)
    engine.dispose()
    dataset = tmp_path / "probes.yaml"
    tables = "".join(
        f"  - name: {table}\n    parent: {{table: users, column: user_id}}\n    source: observed\n"
        + (f"    collected_at: {when.split()[0]}\n" if when else "") + f"    columns: {{{value.split()[0]}: searches_commands}}\n"
        for table, (value, when) in PROBES.items()
    )
    dataset.write_text(f"system: accounts\ntables:\n  - name: users\n    identity: {{email: email}}\n    columns: {{name: name_contact}}\n{tables}")
    zoned = url.update_query_dict({"options": "-c TimeZone=America/St_Johns"}).render_as_string(hide_password=False)
    connector = SqlConnector(name="accounts", dataset=str(dataset), url=zoned)
    yield connector, email, rows
    connector.close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in PROBES:
            conn.execute(sa.text(f"DROP TABLE {table}"))
    engine.dispose()


class _RecordsOnly(Connector):
    """A connector's records, never a run: the staging that writes each record itself."""

    def __init__(self, inner: Connector) -> None:
        super().__init__(name=inner.name)
        self.inner = inner

    def gather(self, identity):
        return self.inner.gather(identity)


@pytest.mark.django_db
def test_rows_the_database_renders_in_a_run_are_the_bytes_the_staging_writes_for_their_records(probes):
    from dsar import exports

    connector, email, rows = probes
    identity = Identity(email=email)
    runs = [item for item in connector.gather_runs(identity) if isinstance(item, RecordRun)]
    assert [run.system for run in runs] == ["accounts.probe_tz", "accounts.probe_local", "accounts.probe_day", "accounts.probe_plain"]

    categories = frozenset({"searches_commands", "name_contact"})
    by_runs = exports.stage_gather(connector, identity, categories, request_id="runs", attempt=1)
    by_records = exports.stage_gather(_RecordsOnly(connector), identity, categories, request_id="records", attempt=1)
    try:
        assert by_runs["inline"] is None  # spilled to the work area, as a big subject's are
        assert {k: v for k, v in by_runs.items() if k != "prefix"} == {k: v for k, v in by_records.items() if k != "prefix"}
        per_table = rows - len(range(5, rows, 17))
        assert by_runs["counts"] == {"searches_commands": 5 * per_table, "name_contact": 1}
        assert by_runs["categories"]["searches_commands"]["columns"] == ["note", "label", "word", "remark", "n"]
        for stream in ("searches_commands.jsonl", "searches_commands.csv", "name_contact.jsonl", "name_contact.csv"):
            staged = b"".join(exports._blocks(exports._staged(by_runs, stream)))
            assert staged == b"".join(exports._blocks(exports._staged(by_records, stream))), stream
        lines = b"".join(exports._blocks(exports._staged(by_runs, "searches_commands.jsonl"))).decode().split("\n")[:-1]
        records = [json.loads(line) for line in lines]
        assert {r["fields"].get("note") for r in records} >= set(AWKWARD)  # every awkward value made it
        zoned = {r["collected_at"] for r in records if r["system"] == "accounts.probe_tz"}
        # In UTC, whatever the server's default zone.
        assert None in zoned and "0999-01-01T00:00:00+00:00" in zoned and all(t is None or t.endswith("+00:00") for t in zoned)
    finally:
        exports.stage_discard("runs")
        exports.stage_discard("records")


@pytest.mark.django_db
def test_a_connection_lost_in_the_middle_of_a_run_is_a_transient_error(probes):
    connector, email, _ = probes
    items = connector.gather_runs(Identity(email=email))
    run = next(item for item in items if isinstance(item, RecordRun))
    blocks = run.render([[Cell.VALUE_JSON]])
    (text,), count = next(blocks)
    assert count > 0 and text.startswith('"')
    engine = sa.create_engine(estate_database_url("accounts"))
    with engine.connect() as conn:  # the system drops the connector's connection
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    engine.dispose()
    with pytest.raises(TransientError, match="database unavailable"):
        next(blocks)
    items.close()
