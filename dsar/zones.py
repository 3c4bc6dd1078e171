"""The IANA time zones a person or a staff member may give: the ones this machine knows (the
tzdata package's, where the system has none)."""

from __future__ import annotations

import functools
import zoneinfo


@functools.cache
def time_zones() -> frozenset[str]:
    """Every IANA time zone name known here, such as Europe/Berlin."""
    return frozenset(zoneinfo.available_timezones())
