"""dsar/apps.py: what the product sets up at start and on each database session of its own."""

from __future__ import annotations

import pytest
from django.db import connections

pytestmark = pytest.mark.django_db


@pytest.fixture
def session_over_tcp():
    """A session of the product's, made as its others are but over TCP to this machine's PostgreSQL
    (the suite's own is reached over a Unix socket, where keepalives mean nothing)."""
    default = connections["default"]
    wrapper = type(default)({**default.settings_dict, "HOST": "127.0.0.1", "PORT": "5432", "NAME": "postgres", "USER": "postgres"},
                            alias="over_tcp")
    yield wrapper
    wrapper.close()


def test_each_session_asks_the_server_to_drop_a_silent_client_within_25_seconds(session_over_tcp):
    with session_over_tcp.cursor() as cursor:
        cursor.execute("SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_interval'),"
                       " current_setting('tcp_keepalives_count'), current_setting('tcp_user_timeout')")
        assert cursor.fetchone() == ("10", "5", "3", "25000")


def test_each_session_gives_up_on_a_silent_server_within_25_seconds(session_over_tcp):
    session_over_tcp.ensure_connection()
    parameters = session_over_tcp.connection.info.get_parameters()
    assert {name: parameters.get(name) for name in ("keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
                                                     "tcp_user_timeout")} == {
        "keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3", "tcp_user_timeout": "25000"}
