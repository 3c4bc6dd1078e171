"""Load subjects into the demo estate's systems (contract §7).

The whole file is validated before anything is written: an unknown key or a bad value is an
error naming its path (`subjects[0].accounts.devices[1].imei`), a re-import from a source that a
subject's erasure suppressed is refused, and in either case nothing is loaded. Each system is then
written through its own protocol: SQL for accounts, payments and third-party data, the storage
API for content, the helpdesk's HTTP API for support chats.

Beyond contract §7, a time may be written as so many days before the load ("40 days ago"), so that
an estate file keeps the retention its categories promise whatever day it is loaded, and a content
file may say when it was stored (`at`, on a local store).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from connectors.taxonomy import category_known, source_kinds
from connectors.third_party import suppressed_sources
from .stores import estate_database_ensure, estate_database_url

SCHEMAS = Path(__file__).parent
SQL_SYSTEMS = ("accounts", "payments", "third_party")
ACCOUNT_CHILD_TABLES = ("interests", "searches", "browse_history", "devices", "locations", "contacts", "sign_ins", "usage_events", "error_reports", "social")
CONTENT_CATEGORIES = ("content", "images", "voice", "video_recordings", "text_inking_typing")


class EstateError(ValueError):
    """The estate file is wrong; the message names every bad key by its path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- The estate file's shape ------------------------------------------------------------------------

DAYS_AGO = re.compile(r"(\d{1,5}) days? ago")


def _days_ago(value: Any) -> Any:
    """"40 days ago" as that time before now; anything else as given, for pydantic to read."""
    if isinstance(value, str) and (match := DAYS_AGO.fullmatch(value)):
        return dt.datetime.now(dt.UTC) - dt.timedelta(days=int(match[1]))
    return value


# A time in ISO 8601, or so many days before the load.
Time = Annotated[dt.datetime, BeforeValidator(_days_ago)]


class BrowseVisit(_Strict):
    url: str
    at: Time


class Device(_Strict):
    os: str | None = None
    ip: str | None = None
    imei: str | None = None
    product_key: str | None = None


class Location(_Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    at: Time
    precision: Literal["precise", "imprecise"]


class Contact(_Strict):
    name: str | None = None
    email: str | None = None


class SignIn(_Strict):
    at: Time
    ip: str | None = None
    device: str | None = None
    succeeded: bool = True


class UsageEvent(_Strict):
    product: str
    feature: str | None = None
    at: Time


class ErrorReport(_Strict):
    product: str
    summary: str | None = None
    at: Time


class SocialLink(_Strict):
    kind: Literal["like", "dislike", "follow", "event"]
    target: str
    at: Time


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
    organization_contact: str | None = None  # beyond contract §7: how to reach that organisation about privacy requests
    interests: list[str] = []
    searches: list[str] = []
    browse_history: list[BrowseVisit] = []
    devices: list[Device] = []
    locations: list[Location] = []
    contacts: list[Contact] = []
    # Beyond contract §7: product activity the accounts system also keeps.
    sign_ins: list[SignIn] = []
    usage: list[UsageEvent] = []
    error_reports: list[ErrorReport] = []
    social: list[SocialLink] = []

    @field_validator("organization_contact")
    @classmethod
    def _of_an_organization(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("organization") is None:
            raise ValueError("needs the organization it reaches")
        return value


class Card(_Strict):
    number: str = Field(pattern=r"^\d{12,19}$")
    cvc: str | None = Field(default=None, pattern=r"^\d{3,4}$")
    exp: str | None = Field(default=None, pattern=r"^(0[1-9]|1[0-2])/\d{2}(\d{2})?$")


class Transaction(_Strict):
    amount: float
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    at: Time
    item: str | None = None


class Subscription(_Strict):
    product: str
    status: Literal["active", "canceled", "past_due", "trialing"]
    renews_at: dt.datetime | None = None


class Payments(_Strict):
    cards: list[Card] = []
    transactions: list[Transaction] = []
    subscriptions: list[Subscription] = []


class ContentFile(_Strict):
    path: str = Field(min_length=1, max_length=500)
    base64: str | None = None
    size_bytes: int | None = Field(default=None, ge=0, le=64 * 1024**3)
    category: Literal[CONTENT_CATEGORIES]  # type: ignore[valid-type]
    at: Time | None = None  # when it was stored (beyond contract §7); unset: when it is loaded

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        """A path every storage can hold as it is: relative, of named parts (no '', '.' or '..'),
        each at most 255 bytes, with no backslash or control character."""
        parts = value.split("/")
        if value.startswith("/") or "\\" in value or any(part in ("", ".", "..") for part in parts):
            raise ValueError("must be a relative path of named parts, without '.', '..' or empty parts")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must not hold a control character")
        if any(len(part.encode()) > 255 for part in parts):
            raise ValueError("has a part longer than 255 bytes")
        return value

    @field_validator("base64")
    @classmethod
    def _decodes(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("is not valid base64") from None
        return value

    @model_validator(mode="after")
    def _one_body(self) -> ContentFile:
        if (self.base64 is None) == (self.size_bytes is None):
            raise ValueError("give exactly one of base64 or size_bytes")
        return self


class Content(_Strict):
    files: list[ContentFile] = []


def _email_address(value: str | None) -> str | None:
    """An email address trimmed and lower-cased; ValueError if it is not one."""
    from django.core.exceptions import ValidationError as DjangoValidationError
    from django.core.validators import validate_email

    if value is None:
        return None
    value = value.strip().lower()
    try:
        validate_email(value)
    except DjangoValidationError:
        raise ValueError("is not an email address") from None
    return value


class Message(_Strict):
    from_: Literal["customer", "agent", "bot", "other"] = Field(alias="from")
    agent_name: str | None = None
    # Beyond contract §7: `other` is another customer on a ticket shared with the subject, by name and address.
    name: str | None = Field(default=None, min_length=1)
    email: str | None = None
    body: str

    @model_validator(mode="after")
    def _other_named(self) -> Message:
        if (self.from_ == "other") != (self.name is not None and self.email is not None):
            raise ValueError("a message from another person names them, with name and email; no other message does")
        return self

    _email = field_validator("email")(_email_address)


class Chat(_Strict):
    topic: str
    at: Time
    messages: list[Message] = []


class Feedback(_Strict):
    rating: int = Field(ge=1, le=5)
    text: str | None = None
    at: Time


class Support(_Strict):
    chats: list[Chat] = []
    feedback: list[Feedback] = []


class ThirdPartyRecord(_Strict):
    source: str = Field(min_length=1, max_length=200)
    source_type: str
    category: str
    acquired_at: Time
    data: dict[str, Any] = {}

    @field_validator("source_type")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in source_kinds():
            raise ValueError(f"must be one of {', '.join(source_kinds())}")
        return value

    @field_validator("category")
    @classmethod
    def _category(cls, value: str) -> str:
        if not category_known(value):
            raise ValueError("is not a category of the taxonomy")
        return value


class Subject(_Strict):
    email: str = Field(max_length=254)
    accounts: Accounts | None = None
    payments: Payments | None = None
    content: Content | None = None
    support: Support | None = None
    third_party: list[ThirdPartyRecord] | None = None

    _email = field_validator("email")(_email_address)


class Estate(_Strict):
    subjects: list[Subject]


# --- Validation ---------------------------------------------------------------------------------------


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
    return estate


def estate_check_suppressions(estate: Estate) -> None:
    """Refuse third-party records from a source that an erasure suppressed for that subject."""
    wanted = [(i, s) for i, s in enumerate(estate.subjects) if s.third_party]
    if not wanted:
        return
    with _engine("third_party") as engine, engine.connect() as conn:
        for index, subject in wanted:
            suppressed = suppressed_sources(conn, subject.email)
            for position, record in enumerate(subject.third_party or []):
                if record.source in suppressed:
                    raise EstateError(
                        f"subjects[{index}].third_party[{position}].source: {record.source!r} may not re-import this person, "
                        "who asked for erasure (suppressed)"
                    )


# --- Writing -------------------------------------------------------------------------------------------


class _engine:
    """A short-lived engine on one estate system's database, its schema created."""

    def __init__(self, system: str) -> None:
        estate_database_ensure(system)
        self.engine = sa.create_engine(estate_database_url(system))
        with self.engine.begin() as conn:
            conn.exec_driver_sql((SCHEMAS / f"{system}.sql").read_text())

    def __enter__(self) -> sa.Engine:
        return self.engine

    def __exit__(self, *exc) -> None:
        self.engine.dispose()


def estate_load(estate: Estate) -> int:
    """Write every subject into the estate's systems. A subject already present is replaced.
    Returns the number of subjects written."""
    estate_check_suppressions(estate)
    writers = {"accounts": _accounts_write, "payments": _payments_write, "third_party": _third_party_write}
    for system, write in writers.items():
        with _engine(system) as engine, engine.begin() as conn:
            for subject in estate.subjects:
                write(conn, subject)
    _content_write(estate)
    _support_write(estate)
    return len(estate.subjects)


COPY_FROM = 500  # rows; above this a table is loaded with COPY, many times faster than INSERTs


def _insert(conn: sa.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    if len(rows) < COPY_FROM:
        conn.execute(sa.text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"), rows)
        return
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def _password_hash(password: str) -> str:
    salt = secrets.token_hex(8)
    return f"sha256${salt}${hashlib.sha256((salt + password).encode()).hexdigest()}"


def _accounts_write(conn: sa.Connection, subject: Subject) -> None:
    existing = conn.execute(sa.text("SELECT id FROM users WHERE lower(trim(email)) = :e"), {"e": subject.email}).scalar()
    if existing is not None:
        for table in ACCOUNT_CHILD_TABLES:
            conn.execute(sa.text(f"DELETE FROM {table} WHERE user_id = :u"), {"u": existing})
        conn.execute(sa.text("DELETE FROM users WHERE id = :u"), {"u": existing})
    if subject.accounts is None:
        return
    a = subject.accounts
    now = dt.datetime.now(dt.UTC)
    user_id = conn.execute(
        sa.text(
            "INSERT INTO users (email, name, phone, address, birth_year, gender, country, language, password_hash,"
            " password_changed_at, password_hint, organization, organization_contact) VALUES (:email, :name, :phone, :address,"
            " :birth_year, :gender, :country, :language, :password_hash, :changed, :hint, :org, :org_contact) RETURNING id"
        ),
        {
            "email": subject.email, "name": a.name, "phone": a.phone, "address": a.address, "birth_year": a.birth_year,
            "gender": a.gender, "country": a.country, "language": a.language,
            "password_hash": _password_hash(a.password) if a.password else None,
            "changed": now if a.password else None, "hint": a.password_hint, "org": a.organization,
            "org_contact": a.organization_contact,
        },
    ).scalar_one()
    owned = {"user_id": user_id}
    _insert(conn, "interests", [{**owned, "topic": t, "source": "provided"} for t in a.interests])
    _insert(conn, "searches", [{**owned, "query": q} for q in a.searches])
    _insert(conn, "browse_history", [{**owned, **v.model_dump()} for v in a.browse_history])
    _insert(conn, "devices", [{**owned, **d.model_dump()} for d in a.devices])
    _insert(conn, "locations", [{**owned, **loc.model_dump()} for loc in a.locations])
    _insert(conn, "contacts", [{**owned, **c.model_dump()} for c in a.contacts])
    _insert(conn, "sign_ins", [{**owned, **x.model_dump()} for x in a.sign_ins])
    _insert(conn, "usage_events", [{**owned, **x.model_dump()} for x in a.usage])
    _insert(conn, "error_reports", [{**owned, **x.model_dump()} for x in a.error_reports])
    _insert(conn, "social", [{**owned, **x.model_dump()} for x in a.social])


def _payments_write(conn: sa.Connection, subject: Subject) -> None:
    existing = conn.execute(sa.text("SELECT id FROM customers WHERE lower(trim(email)) = :e"), {"e": subject.email}).scalar()
    if existing is not None:
        for table in ("cards", "subscriptions"):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE customer_id = :c"), {"c": existing})
        conn.execute(sa.text("DELETE FROM customers WHERE id = :c"), {"c": existing})
    conn.execute(sa.text("DELETE FROM transactions WHERE lower(trim(billing_email)) = :e"), {"e": subject.email})
    if subject.payments is None:
        return
    p = subject.payments
    billing_name = subject.accounts.name if subject.accounts else None
    billing_address = subject.accounts.address if subject.accounts else None
    customer_id = conn.execute(
        sa.text("INSERT INTO customers (email, billing_name, billing_address) VALUES (:e, :n, :a) RETURNING id"),
        {"e": subject.email, "n": billing_name, "a": billing_address},
    ).scalar_one()
    owned = {"customer_id": customer_id}
    _insert(conn, "cards", [{**owned, **c.model_dump()} for c in p.cards])
    _insert(conn, "subscriptions", [{**owned, **s.model_dump()} for s in p.subscriptions])
    _insert(conn, "transactions", [{**owned, "billing_email": subject.email, **t.model_dump()} for t in p.transactions])


def _third_party_write(conn: sa.Connection, subject: Subject) -> None:
    conn.execute(sa.text("DELETE FROM records WHERE lower(trim(email)) = :e"), {"e": subject.email})
    _insert(
        conn,
        "records",
        [
            {"email": subject.email, "source": r.source, "source_kind": r.source_type, "category": r.category,
             "acquired_at": r.acquired_at, "data": Jsonb(r.data)}
            for r in subject.third_party or []
        ],
    )


def _content_write(estate: Estate) -> None:
    from django.conf import settings

    from connectors.content import content_storage_from_options
    from .content_load import content_load

    options = settings.DSAR_SYSTEMS["content"].options
    storage = content_storage_from_options(options.get("backend"), options.get("storage_options"))
    for subject in estate.subjects:
        files = [f.model_dump(exclude_none=True) for f in subject.content.files] if subject.content else []
        content_load(storage=storage, subject_email=subject.email, files=files)


def _support_write(estate: Estate) -> None:
    from django.conf import settings

    from .support_load import support_load_many

    subjects = [
        (subject.email, [c.model_dump(by_alias=True) for c in support.chats], [f.model_dump() for f in support.feedback])
        for subject in estate.subjects
        for support in [subject.support or Support()]
    ]
    support_load_many(system=settings.DSAR_SYSTEMS["support"], subjects=subjects)

