"""Load subjects into the demo estate's systems (contract §7).

The whole file is validated before anything is written: an unknown key or a bad value is an
error naming its path (`subjects[0].accounts.devices[1].imei`), and nothing is loaded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .stores import estate_database_ensure, estate_database_url

SCHEMAS = Path(__file__).parent


class EstateError(ValueError):
    """The estate file is wrong; the message names every bad key by its path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrowseVisit(_Strict):
    url: str
    at: dt.datetime


class Device(_Strict):
    os: str | None = None
    ip: str | None = None
    imei: str | None = None
    product_key: str | None = None


class Location(_Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    at: dt.datetime
    precision: Literal["precise", "imprecise"]


class Contact(_Strict):
    name: str | None = None
    email: str | None = None


class Accounts(_Strict):
    name: str | None = None
    phone: str | None = None
    address: str | None = None
    birth_year: int | None = Field(default=None, ge=1900, le=2100)
    gender: str | None = None
    country: str | None = None
    language: str | None = None
    password: str | None = None
    password_hint: str | None = None
    organization: str | None = None
    interests: list[str] = []
    searches: list[str] = []
    browse_history: list[BrowseVisit] = []
    devices: list[Device] = []
    locations: list[Location] = []
    contacts: list[Contact] = []


class Subject(_Strict):
    email: str
    accounts: Accounts | None = None
    payments: dict[str, Any] | None = None
    content: dict[str, Any] | None = None
    support: dict[str, Any] | None = None
    third_party: list[dict[str, Any]] | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip().lower()
        if "@" not in value or value.startswith("@") or value.endswith("@") or " " in value:
            raise ValueError("not an email address")
        return value


class Estate(_Strict):
    subjects: list[Subject]


def _path(location: tuple) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def estate_parse(data: Any) -> Estate:
    """Validate a whole estate document; EstateError lists each bad key by path."""
    try:
        estate = Estate.model_validate(data)
    except ValidationError as error:
        problems = [f"{_path(e['loc'])}: {e['msg']}" for e in error.errors()]
        raise EstateError("; ".join(problems)) from None
    seen: dict[str, int] = {}
    for index, subject in enumerate(estate.subjects):
        if subject.email in seen:
            raise EstateError(f"subjects[{index}].email: the same address as subjects[{seen[subject.email]}]")
        seen[subject.email] = index
        for system in ("payments", "content", "support", "third_party"):
            if getattr(subject, system) is not None:
                raise EstateError(f"subjects[{index}].{system}: this estate has no {system} system yet")
    return estate


def _password_hash(password: str) -> str:
    salt = secrets.token_hex(8)
    return f"sha256${salt}${hashlib.sha256((salt + password).encode()).hexdigest()}"


def estate_load(estate: Estate) -> int:
    """Write every subject into the estate's systems, in one transaction per system. Returns the
    number of subjects written. A subject already present is replaced."""
    estate_database_ensure("accounts")
    engine = sa.create_engine(estate_database_url("accounts"))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql((SCHEMAS / "accounts.sql").read_text())
            for subject in estate.subjects:
                _accounts_write(conn, subject)
    finally:
        engine.dispose()
    return len(estate.subjects)


def _accounts_write(conn: sa.Connection, subject: Subject) -> None:
    existing = conn.execute(sa.text("SELECT id FROM users WHERE lower(trim(email)) = :e"), {"e": subject.email}).scalar()
    if existing is not None:
        for table in ("interests", "searches", "browse_history", "devices", "locations", "contacts"):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE user_id = :u"), {"u": existing})
        conn.execute(sa.text("DELETE FROM users WHERE id = :u"), {"u": existing})
    a = subject.accounts or Accounts()
    now = dt.datetime.now(dt.UTC)
    user_id = conn.execute(
        sa.text(
            "INSERT INTO users (email, name, phone, address, birth_year, gender, country, language, password_hash,"
            " password_changed_at, password_hint, organization) VALUES (:email, :name, :phone, :address, :birth_year,"
            " :gender, :country, :language, :password_hash, :changed, :hint, :org) RETURNING id"
        ),
        {
            "email": subject.email, "name": a.name, "phone": a.phone, "address": a.address, "birth_year": a.birth_year,
            "gender": a.gender, "country": a.country, "language": a.language,
            "password_hash": _password_hash(a.password) if a.password else None,
            "changed": now if a.password else None, "hint": a.password_hint, "org": a.organization,
        },
    ).scalar_one()
    rows = {
        "interests": [{"topic": t, "source": "provided"} for t in a.interests],
        "searches": [{"query": q} for q in a.searches],
        "browse_history": [v.model_dump() for v in a.browse_history],
        "devices": [d.model_dump() for d in a.devices],
        "locations": [loc.model_dump() for loc in a.locations],
        "contacts": [c.model_dump() for c in a.contacts],
    }
    for table, items in rows.items():
        if items:
            columns = list(items[0])
            statement = sa.text(
                f"INSERT INTO {table} (user_id, {', '.join(columns)}) VALUES (:user_id, {', '.join(':' + c for c in columns)})"
            )
            conn.execute(statement, [{"user_id": user_id, **item} for item in items])
