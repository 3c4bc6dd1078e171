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


PAGILA = Schema("pagila", ("postgresql",), _pagila)
CHINOOK = Schema("chinook", ("postgresql", "sqlite"), _chinook)
SCHEMAS = {s.name: s for s in (PAGILA, CHINOOK)}
