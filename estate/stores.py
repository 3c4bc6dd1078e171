"""Where the estate's SQL systems live: the URL each system's connector is configured with, by
default a database of its own beside the product's (connectors.sql.sibling_database_url)."""

from __future__ import annotations

import psycopg
import sqlalchemy as sa
from django.conf import settings
from django.db import connections
from psycopg import sql

from connectors.sql import sibling_database_url, with_driver


def _configured_url(system: str) -> str | None:
    configured = settings.DSAR_SYSTEMS.get(system)
    return configured.options.get("url") if configured else None


def estate_database_url(system: str) -> str:
    """The SQLAlchemy URL of an estate system's database, as its connector reaches it."""
    configured = _configured_url(system)
    return with_driver(configured) if configured else sibling_database_url(system)


def _server() -> psycopg.Connection:
    """An autocommit connection to the product's database server, for CREATE/DROP DATABASE."""
    db = connections["default"].settings_dict
    params = {"dbname": db["NAME"], "user": db.get("USER"), "password": db.get("PASSWORD"), "host": db.get("HOST"), "port": db.get("PORT")}
    return psycopg.connect(**{key: value for key, value in params.items() if value}, autocommit=True)


def estate_database_ensure(system: str) -> None:
    """Create the system's database beside the product's if it does not exist yet (a system
    configured with a URL of its own is left to its owner)."""
    if _configured_url(system):
        return
    name = sa.engine.make_url(estate_database_url(system)).database
    with _server() as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def estate_database_drop(system: str) -> None:
    """Drop the system's database (tests)."""
    name = sa.engine.make_url(estate_database_url(system)).database
    with _server() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
