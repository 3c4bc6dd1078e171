"""Deterministic estates of any size, for benchmarks and load tests.

The same seed gives the same subjects, byte for byte. A typical subject touches all five systems
with about a hundred records and a few small files; options scale the interaction rows and the
content bytes per subject. Its times are so many days before the load, within the shortest
retention the taxonomy promises, so that a generated estate keeps every category's promise (an
export of it has no retention finding) whatever day it is loaded.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from typing import Any

from connectors.taxonomy import category_ids, category_retention_days, source_kinds

TOPICS = ["cycling", "jazz", "chess", "hiking", "cooking", "football", "gardening", "film", "photography", "travel"]
PRODUCTS = ["Mail", "Maps", "Office", "Music", "Cloud Drive", "Game Pass"]
CONTENT_CATEGORIES = ["content", "images", "voice", "video_recordings", "text_inking_typing"]


def subject_email(index: int, seed: int) -> str:
    return f"subject{index:07d}.s{seed}@example.com"


def generate_subjects(*, count: int, seed: int, interactions: int = 40, files: int = 5, file_bytes: int = 2048, start: int = 0) -> Iterator[dict[str, Any]]:
    """Yield `count` subjects as estate-file dicts (contract §7)."""
    for index in range(start, start + count):
        rng = random.Random(f"{seed}:{index}")
        yield _subject(rng, index, seed, interactions, files, file_bytes)


@functools.cache
def _shortest_retention() -> int:
    return min(filter(None, map(category_retention_days, category_ids())))


def _at(rng: random.Random) -> str:
    """A time in the estate file's words (estate/loader.py), younger than any category's retention."""
    return f"{rng.randrange(_shortest_retention())} days ago"


def _subject(rng: random.Random, index: int, seed: int, interactions: int, files: int, file_bytes: int) -> dict[str, Any]:
    email = subject_email(index, seed)
    share = max(interactions // 4, 1)
    return {
        "email": email,
        "accounts": {
            "name": f"Subject {index}",
            "phone": f"+44 20 7946 {index % 10000:04d}",
            "address": f"{rng.randrange(1, 200)} High Street, Leeds",
            "birth_year": rng.randrange(1950, 2006),
            "gender": rng.choice(["female", "male", "non-binary"]),
            "country": rng.choice(["GB", "DE", "FR", "US", "NG"]),
            "language": rng.choice(["en", "de", "fr"]),
            "password": f"pw-{rng.getrandbits(64):x}",
            "interests": rng.sample(TOPICS, 3),
            "searches": [f"search {rng.randrange(10**6)}" for _ in range(share)],
            "browse_history": [{"url": f"https://example.com/p/{rng.randrange(10**6)}", "at": _at(rng)} for _ in range(share)],
            "devices": [{"os": "Android 15", "ip": f"203.0.113.{rng.randrange(1, 255)}", "imei": f"35{rng.randrange(10**13):013d}"}],
            "locations": [{"lat": round(rng.uniform(-60, 60), 4), "lon": round(rng.uniform(-120, 120), 4), "at": _at(rng), "precision": "imprecise"} for _ in range(3)],
            "contacts": [{"name": f"Friend {i}", "email": f"friend{i}.{index}@example.net"} for i in range(3)],
            "sign_ins": [{"at": _at(rng), "ip": "198.51.100.7", "device": "phone"} for _ in range(share)],
            "usage": [{"product": rng.choice(PRODUCTS), "feature": "open", "at": _at(rng)} for _ in range(share)],
            "error_reports": [{"product": rng.choice(PRODUCTS), "summary": "crash on start", "at": _at(rng)}],
            "social": [{"kind": "like", "target": rng.choice(TOPICS), "at": _at(rng)}],
        },
        "payments": {
            "cards": [{"number": f"4{rng.randrange(10**15):015d}", "cvc": f"{rng.randrange(1000):03d}", "exp": "08/29"}],
            "transactions": [{"amount": round(rng.uniform(1, 99), 2), "currency": "GBP", "at": _at(rng), "item": rng.choice(PRODUCTS)} for _ in range(5)],
            "subscriptions": [{"product": rng.choice(PRODUCTS), "status": "active", "renews_at": "2027-01-01T00:00:00+00:00"}],
        },
        "content": {
            "files": [
                {"path": f"docs/file{i}.bin", "size_bytes": file_bytes, "category": CONTENT_CATEGORIES[i % len(CONTENT_CATEGORIES)]}
                for i in range(files)
            ]
        },
        "support": {
            "chats": [
                {"topic": "Billing question", "at": _at(rng), "messages": [
                    {"from": "customer", "body": "Why was I charged twice?"},
                    {"from": "bot", "body": "Let me find an agent."},
                    {"from": "agent", "agent_name": "Sam", "body": "Refunded the duplicate."},
                ]}
            ],
            "feedback": [{"rating": rng.randrange(1, 6), "text": "ok", "at": _at(rng)}],
        },
        "third_party": [
            {"source": "Acme Data Ltd", "source_type": rng.choice(source_kinds()), "category": rng.choice(category_ids()),
             "acquired_at": _at(rng), "data": {"segment": rng.choice(["urban", "rural"]), "score": rng.randrange(100)}}
        ],
    }
