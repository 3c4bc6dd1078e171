"""What a system's record of a person's age says of how old they are today: the lowest age they can
be, so that a child is never taken for older than they may be."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

AgeKind = Literal["birth_date", "birth_year", "age_band"]
# An age band as systems write it: "13-15" (or with an en dash, or "13 to 15"), "16+", "under 13", "<13".
_BAND_FROM = re.compile(r"^(\d{1,3})\s*(?:-|–|to)\s*\d{1,3}$|^(\d{1,3})\s*\+$")
_BAND_UNDER = re.compile(r"^(?:under|<)\s*\d{1,3}$", re.IGNORECASE)


def _age_on(born: dt.date, on: dt.date) -> int:
    """Whole years from `born` to `on`."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def lowest_age(kind: AgeKind, value: Any, on: dt.date) -> int | None:
    """The lowest age, in whole years on `on`, of a person whose record holds `value` of `kind`; None
    for a value that says nothing readable, a birth after `on` among them. A birth year counts as
    born on its last day; an age band recorded earlier still bounds the age from below, as people
    only grow older."""
    try:
        if kind == "birth_year":
            year = int(value)
            return max(0, _age_on(dt.date(year, 12, 31), on)) if year <= on.year else None
        if kind == "birth_date":
            born = value.date() if isinstance(value, dt.datetime) else value
            born = born if isinstance(born, dt.date) else dt.date.fromisoformat(str(value)[:10])
            return _age_on(born, on) if born <= on else None
    except (TypeError, ValueError):
        return None
    band = str(value).strip()
    if _BAND_UNDER.match(band):
        return 0
    match = _BAND_FROM.match(band)
    return int(match[1] or match[2]) if match else None
