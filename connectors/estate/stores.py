"""Where the estate's systems live. Each SQL system is a database of its own on the server that
holds the product's database, unless DSAR_<SYSTEM>_DATABASE_URL points elsewhere."""

from __future__ import annotations

import os

import psycopg
from django.db import connections
from psycopg import sql
from sqlalchemy.engine import URL


def _default_settings() -> dict:
    return connections["default"].settings_dict


def estate_database_name(system: str) -> str:
    return f"{_default_settings()['NAME']}_{system}"


def estate_database_url(system: str) -> str:
    """The SQLAlchemy URL of an estate system's database."""
    configured = os.environ.get(f"DSAR_{system.upper()}_DATABASE_URL")
    if configured:
        return configured.replace("postgresql://", "postgresql+psycopg://", 1).replace("postgres://", "postgresql+psycopg://", 1)
    db = _default_settings()
    url = URL.create(
        "postgresql+psycopg",
        username=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=None if str(db.get("HOST", "")).startswith("/") else (db.get("HOST") or None),
        port=int(db["PORT"]) if db.get("PORT") else None,
        database=estate_database_name(system),
        query={"host": db["HOST"]} if str(db.get("HOST", "")).startswith("/") else {},
    )
    return url.render_as_string(hide_password=False)


def _server() -> psycopg.Connection:
    """An autocommit connection to the product's database server, for CREATE/DROP DATABASE."""
    db = _default_settings()
    params = {"dbname": db["NAME"], "user": db.get("USER"), "password": db.get("PASSWORD"), "host": db.get("HOST"), "port": db.get("PORT")}
    return psycopg.connect(**{key: value for key, value in params.items() if value}, autocommit=True)


def estate_database_ensure(system: str) -> None:
    """Create the system's database if it does not exist yet (default server only)."""
    if os.environ.get(f"DSAR_{system.upper()}_DATABASE_URL"):
        return
    with _server() as conn:
        name = estate_database_name(system)
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def estate_database_drop(system: str) -> None:
    """Drop the system's database (tests)."""
    with _server() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(estate_database_name(system))))
