"""Published sample schemas for the scanner's tests and its accuracy benchmark.

Each `NAME.sql` is a published schema, trimmed (its source and licence are in its header); the rows
put in it are made up here, a few dozen a table, in the style of each schema's own sample data but
copying none of it. `schema_load` creates a schema's tables in an empty database and fills them.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

HERE = Path(__file__).parent
FIRST = ["Mary", "Olivia", "Noah", "Liam", "Ava", "Ethan", "Chloe", "Lucas", "Maya", "Owen", "Zoe", "Hugo"]
LAST = ["Hartley", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Brennan", "Costa", "Weber"]
STREETS = ["Juniper Way", "Harbour Road", "Elm Parade", "Kestrel Lane", "Mill Street", "Orchard Close"]
CITIES = [("Lisbon", "Portugal"), ("Winnipeg", "Canada"), ("Osaka", "Japan"), ("Tromso", "Norway"), ("Perth", "Australia")]
WORDS = ("the path along the river was closed so I walked back over the hill and added the new footbridge "
         "with its steps and a bench near the old mill").split()


@dataclass(frozen=True)
class Schema:
    """A published schema: its DDL file, the dialects it runs on, and rows made up for it."""

    name: str
    dialects: tuple[str, ...]
    rows: Callable[[random.Random, int], dict[str, list[dict]]]

    @property
    def ddl(self) -> Path:
        return HERE / f"{self.name}.sql"


def schema_load(conn: sa.Connection, schema: Schema, subjects: int = 30) -> None:
    """Create the schema's tables on `conn` and insert its rows (`subjects` people, and theirs)."""
    text = re.sub(r"--[^\n]*", "", schema.ddl.read_text())
    for statement in (s.strip() for s in text.split(";")):
        if statement:
            conn.exec_driver_sql(statement)
    metadata = sa.MetaData()
    for table, rows in schema.rows(random.Random(7), subjects).items():
        if rows:
            conn.execute(sa.Table(table, metadata, autoload_with=conn).insert(), rows)


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def _when(rng: random.Random, year: int = 2023) -> dt.datetime:
    return dt.datetime(year, 1, 1) + dt.timedelta(minutes=rng.randrange(525_000))


def _person(rng: random.Random, number: int) -> tuple[str, str]:
    return FIRST[number % len(FIRST)], LAST[(number * 7 + rng.randrange(3)) % len(LAST)]


def _pagila(rng: random.Random, subjects: int) -> dict[str, list[dict]]:
    """A store with one manager, `subjects` customers who each rented two films and paid for them."""
    cities = [{"city_id": i + 1, "city": city, "country_id": i + 1} for i, (city, _) in enumerate(CITIES)]
    addresses = [{"address_id": i + 1, "address": f"{rng.randrange(1, 1999)} {rng.choice(STREETS)}", "address2": None,
                  "district": rng.choice(["Nordland", "Kansai", "Manitoba", "Lisboa"]), "city_id": rng.randrange(1, 6),
                  "postal_code": f"{rng.randrange(10000, 99999)}", "phone": f"{rng.randrange(10**9, 10**12)}"}
                 for i in range(subjects + 1)]
    customers = []
    for i in range(subjects):
        first, last = _person(rng, i)
        customers.append({"customer_id": i + 1, "store_id": 1, "first_name": first.upper(), "last_name": last.upper(),
                          "email": f"{first}.{last}{i}@sakilacustomer.org".upper(), "address_id": i + 2, "activebool": True,
                          "create_date": dt.date(2022, 2, 14) + dt.timedelta(days=i), "active": 1})
    rentals = [{"rental_id": i + 1, "rental_date": (at := _when(rng)), "inventory_id": rng.randrange(1, 4), "customer_id": i % subjects + 1,
                "return_date": at + dt.timedelta(days=rng.randrange(1, 9)), "staff_id": 1} for i in range(2 * subjects)]
    return {
        "language": [{"language_id": 1, "name": "English"}],
        "film": [{"film_id": i, "title": title, "language_id": 1, "rental_rate": 2.99, "replacement_cost": 19.99}
                 for i, title in enumerate(["ORCHARD NIGHTS", "HARBOUR OF GLASS", "KESTREL RUN"], start=1)],
        "country": [{"country_id": i + 1, "country": country} for i, (_, country) in enumerate(CITIES)],
        "city": cities,
        "address": addresses,
        "store": [{"store_id": 1, "manager_staff_id": 1, "address_id": 1}],
        "staff": [{"staff_id": 1, "first_name": "Ada", "last_name": "Quill", "address_id": 1, "email": "ada.quill@sakilastaff.com",
                   "store_id": 1, "active": True, "username": "ada", "password": f"{rng.getrandbits(160):040x}"}],
        "inventory": [{"inventory_id": i, "film_id": i, "store_id": 1} for i in range(1, 4)],
        "customer": customers,
        "rental": rentals,
        "payment": [{"payment_id": r["rental_id"], "customer_id": r["customer_id"], "staff_id": 1, "rental_id": r["rental_id"],
                     "amount": rng.choice([0.99, 2.99, 4.99]), "payment_date": r["rental_date"] + dt.timedelta(hours=2)} for r in rentals],
    }


def _chinook(rng: random.Random, subjects: int) -> dict[str, list[dict]]:
    """Two support staff, `subjects` customers, and their invoices for tracks."""
    def phone() -> str:
        return f"+{rng.choice([1, 44, 47, 55, 61])} ({rng.randrange(10, 999)}) {rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}"

    customers, invoices, lines = [], [], []
    for i in range(subjects):
        first, last = _person(rng, i)
        city, country = rng.choice(CITIES)
        customers.append({"customer_id": i + 1, "first_name": first, "last_name": last,
                          "company": rng.choice([None, None, "Northwind Surveys", "Kestrel Audio Ltd"]),
                          "address": f"{rng.randrange(1, 400)} {rng.choice(STREETS)}", "city": city, "state": rng.choice([None, "ON", "QC"]),
                          "country": country, "postal_code": rng.choice([f"{rng.randrange(1000, 9999)}", f"T{rng.randrange(1, 9)}K 2N1"]),
                          "phone": phone(), "fax": rng.choice([None, phone()]),
                          "email": f"{first.lower()}{i}@{rng.choice(['gmail.com', 'yahoo.co.uk'])}", "support_rep_id": rng.choice([1, 2])})
    for i in range(2 * subjects):
        customer = customers[i % subjects]
        invoices.append({"invoice_id": i + 1, "customer_id": customer["customer_id"], "invoice_date": _when(rng, 2021),
                         "billing_address": customer["address"], "billing_city": customer["city"], "billing_state": customer["state"],
                         "billing_country": customer["country"], "billing_postal_code": customer["postal_code"], "total": 1.98})
        lines += [{"invoice_line_id": 2 * i + n + 1, "invoice_id": i + 1, "track_id": rng.randrange(1, 5), "unit_price": 0.99, "quantity": 1}
                  for n in range(2)]
    return {
        "artist": [{"artist_id": 1, "name": "The Kestrels"}],
        "album": [{"album_id": 1, "title": "Harbour Lights", "artist_id": 1}],
        "genre": [{"genre_id": 1, "name": "Rock"}],
        "media_type": [{"media_type_id": 1, "name": "MPEG audio file"}],
        "track": [{"track_id": n, "name": f"Song number {n}", "album_id": 1, "media_type_id": 1, "genre_id": 1, "composer": None,
                   "milliseconds": 200_000 + n, "bytes": 6_000_000, "unit_price": 0.99} for n in range(1, 5)],
        "employee": [{"employee_id": n, "last_name": last, "first_name": first, "title": "Sales Support Agent", "reports_to": None,
                      "birth_date": dt.datetime(1970 + n, 3, n), "hire_date": dt.datetime(2019, 5, n), "address": "11 Mill Street",
                      "city": "Calgary", "state": "AB", "country": "Canada", "postal_code": "T2P 2T3", "phone": phone(), "fax": phone(),
                      "email": f"{first.lower()}@chinookcorp.com"} for n, (first, last) in enumerate([("Jane", "Peacock"), ("Steve", "Hollis")], 1)],
        "customer": customers,
        "invoice": invoices,
        "invoice_line": lines,
    }


def _openstreetmap(rng: random.Random, subjects: int) -> dict[str, list[dict]]:
    """`subjects` mappers with their edits, diaries, traces, messages, notes and sign-in tokens."""
    def lat() -> float:
        return round(rng.uniform(-60, 70), 7)

    def lon() -> float:
        return round(rng.uniform(-170, 170), 7)

    def token(length: int = 43) -> str:
        return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") for _ in range(length))

    users = []
    for i in range(subjects):
        first, last = _person(rng, i)
        users.append({"email": f"{first.lower()}.{last.lower()}{i}@example.net", "id": i + 1, "pass_crypt": token(44) + "=",
                      "creation_time": _when(rng, 2015), "display_name": f"{first}{last[:3]}{i}", "data_public": True,
                      "description": _sentence(rng, 12), "home_lat": lat(), "home_lon": lon(), "home_zoom": 3, "pass_salt": token(8),
                      "email_valid": True, "new_email": None if i % 5 else f"{first.lower()}{i}@example.org", "languages": "en-GB,en",
                      "status": "active", "terms_agreed": _when(rng, 2016), "consider_pd": bool(i % 2), "auth_uid": None,
                      "preferred_editor": rng.choice([None, "id", "remote"]), "terms_seen": True, "changesets_count": 2,
                      "traces_count": 1, "diary_entries_count": 1, "image_use_gravatar": False, "auth_provider": None,
                      "home_tile": rng.randrange(10**9, 4 * 10**9), "tou_agreed": _when(rng, 2020),
                      "creation_address": f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"})
    count = 2 * subjects
    ids = range(1, count + 1)
    owner = [(i - 1) % subjects + 1 for i in ids]
    return {
        "languages": [{"code": "en", "english_name": "English", "native_name": "English"}],
        "users": users,
        "changesets": [{"id": i, "user_id": owner[i - 1], "created_at": _when(rng), "min_lat": int(lat() * 10**7), "max_lat": int(lat() * 10**7),
                        "min_lon": int(lon() * 10**7), "max_lon": int(lon() * 10**7), "closed_at": _when(rng), "num_changes": rng.randrange(1, 90)}
                       for i in ids],
        "changeset_comments": [{"id": i, "changeset_id": i, "author_id": owner[-i], "body": _sentence(rng, 9), "created_at": _when(rng),
                                "visible": True} for i in ids],
        "diary_entries": [{"id": i, "user_id": owner[i - 1], "title": _sentence(rng, 4), "body": _sentence(rng, 30), "created_at": _when(rng),
                           "updated_at": _when(rng), "latitude": lat(), "longitude": lon(), "language_code": "en"} for i in ids],
        "diary_comments": [{"id": i, "diary_entry_id": i, "user_id": owner[-i], "body": _sentence(rng, 10), "created_at": _when(rng),
                            "updated_at": _when(rng)} for i in ids],
        "friends": [{"id": i, "user_id": owner[i - 1], "friend_user_id": owner[-i], "created_at": _when(rng)} for i in ids],
        "gpx_files": [{"id": i, "user_id": owner[i - 1], "name": f"ride-{i}.gpx", "size": rng.randrange(100, 9000), "latitude": lat(),
                       "longitude": lon(), "timestamp": _when(rng), "description": _sentence(rng, 7), "inserted": True,
                       "visibility": rng.choice(["private", "public", "identifiable"])} for i in ids],
        "gpx_file_tags": [{"gpx_id": i, "tag": rng.choice(["hiking", "cycling", "survey"]), "id": i} for i in ids],
        "gps_points": [{"altitude": rng.uniform(0, 900), "trackid": 1, "latitude": int(lat() * 10**7), "longitude": int(lon() * 10**7),
                        "gpx_id": i, "timestamp": _when(rng), "tile": rng.randrange(10**9)} for i in ids],
        "messages": [{"id": i, "from_user_id": owner[i - 1], "title": _sentence(rng, 4), "body": _sentence(rng, 20), "sent_on": _when(rng),
                      "to_user_id": owner[-i]} for i in ids],
        "notes": [{"id": i, "latitude": int(lat() * 10**7), "longitude": int(lon() * 10**7), "tile": rng.randrange(10**9),
                   "updated_at": _when(rng), "created_at": _when(rng), "status": "open"} for i in ids],
        "note_comments": [{"id": i, "note_id": i, "visible": True, "created_at": _when(rng), "author_id": owner[i - 1],
                           "author_ip": f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(1, 65536):x}", "body": _sentence(rng, 11),
                           "event": "opened"} for i in ids],
        "user_blocks": [{"id": 1, "user_id": 2, "creator_id": 1, "reason": _sentence(rng, 15), "ends_at": _when(rng, 2024),
                         "created_at": _when(rng), "updated_at": _when(rng)}],
        "user_preferences": [{"user_id": u["id"], "k": key, "v": value} for u in users
                             for key, value in [("gps.trace.visibility", "identifiable"), ("getting_started", "seen")]],
        "user_roles": [{"id": 1, "user_id": 1, "role": "moderator", "created_at": _when(rng), "updated_at": _when(rng), "granter_id": 1}],
        "oauth_applications": [{"id": 1, "owner_type": "User", "owner_id": 1, "name": "Survey helper", "uid": token(43),
                                "secret": token(43), "redirect_uri": "urn:ietf:wg:oauth:2.0:oob", "scopes": "read_prefs",
                                "created_at": _when(rng), "updated_at": _when(rng)}],
        "oauth_access_tokens": [{"id": i, "resource_owner_id": owner[i - 1], "application_id": 1, "token": token(),
                                 "refresh_token": token(), "expires_in": 3600, "created_at": _when(rng), "scopes": "read_prefs",
                                 "previous_refresh_token": ""} for i in ids],
        "issues": [{"id": 1, "reportable_type": "User", "reportable_id": 2, "reported_user_id": 2, "status": "open",
                    "assigned_role": "moderator", "created_at": _when(rng), "updated_at": _when(rng)}],
        "reports": [{"id": 1, "issue_id": 1, "user_id": 3, "details": _sentence(rng, 14), "category": "spam", "created_at": _when(rng),
                     "updated_at": _when(rng)}],
    }


PAGILA = Schema("pagila", ("postgresql",), _pagila)
CHINOOK = Schema("chinook", ("postgresql", "sqlite"), _chinook)
OPENSTREETMAP = Schema("openstreetmap", ("postgresql",), _openstreetmap)
SCHEMAS = {s.name: s for s in (PAGILA, CHINOOK, OPENSTREETMAP)}
