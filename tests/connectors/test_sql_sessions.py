"""The SQL connector's pooled sessions: one the server ended (a restart, an administrator) is
replaced before use, whether it was used a moment ago or has sat idle, so no gather and no
verification fails for it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from connectors import sql
from connectors.base import Identity, Record
from connectors.sql import SqlConnector, dataset_load
from estate.loader import estate_load, estate_parse
from estate.stores import estate_database_url

pytestmark = [pytest.mark.usefixtures("estate"), pytest.mark.django_db]

DATASET = "system: accounts\ntables:\n  - name: users\n    identity: {email: email}\n    columns: {name: name_contact}\n"


@pytest.fixture
def subject(tmp_path, unique_email):
    email = unique_email("session")
    estate_load(estate_parse({"subjects": [{"email": email, "accounts": {"name": "Sam Session"}}]}))
    path = tmp_path / "accounts.yaml"
    path.write_text(DATASET)
    connector = SqlConnector(name="accounts", dataset=dataset_load(path))
    yield connector, email
    connector.close()


def _sessions_dropped() -> int:
    """Ends every other session of the accounts database, as a restart would; how many it ended."""
    engine = sa.create_engine(estate_database_url("accounts"))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                        " WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    finally:
        engine.dispose()


def test_a_session_the_server_ended_a_moment_after_its_last_use_is_replaced_before_the_gather_uses_it(subject):
    connector, email = subject
    assert list(connector.gather(Identity(email=email))) == [Record("name_contact", {"name": "Sam Session"}, "accounts.users")]
    assert _sessions_dropped() >= 1
    assert list(connector.gather(Identity(email=email))) == [Record("name_contact", {"name": "Sam Session"}, "accounts.users")]


def test_a_session_the_server_ended_after_it_sat_idle_is_replaced_before_the_gather_uses_it(subject, monkeypatch):
    connector, email = subject
    assert list(connector.gather(Identity(email=email))) == [Record("name_contact", {"name": "Sam Session"}, "accounts.users")]
    monkeypatch.setattr(sql, "PING_AFTER_IDLE_SECONDS", 0)  # every session counts as idle
    assert _sessions_dropped() >= 1
    assert list(connector.gather(Identity(email=email))) == [Record("name_contact", {"name": "Sam Session"}, "accounts.users")]
