"""Retention honesty (GDPR Art. 5(1)(e)): what an export shows that its own promises say is gone.

While a connector task stages a gather (staging.py), every record, a stored file's included, is
checked once: is it older than its category's `retention_days` allows (dsar/taxonomy.yaml), or past
the date a retention rule keeps it until (`Record.retained_until`)? What is past either is counted
per system and category, with the oldest collection time, and travels in the task's staged output.
The final step merges the tasks' counts into the request's retention finding (archive.py), which
staff see before the export is released; the export shows the data as it is, and its report says,
in each such category, that some of it is older than promised.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import Record
from connectors.taxonomy import category_ids, category_info, category_retention_days

OLDER_THAN_PROMISED = "older_than_promised"  # collected longer ago than its category's retention_days
PAST_RETENTION_DATE = "past_retention_date"  # past the date a retention rule keeps it until
RETENTION_REASONS = (OLDER_THAN_PROMISED, PAST_RETENTION_DATE)


def _before(value: dt.datetime | dt.date, moment: dt.datetime) -> bool:
    """Whether a time comes before `moment`. A time without a zone is taken as UTC, as the export
    writes it; a bare day comes before it once the whole day does."""
    try:
        return value < moment
    except TypeError:  # a time without a zone, or a day: rare, so the common case pays nothing for them
        if isinstance(value, dt.datetime):
            return value.replace(tzinfo=dt.UTC) < moment
        return value < moment.astimezone(dt.UTC).date()


def _moment(value: dt.datetime | dt.date) -> dt.datetime:
    """A time as the finding keeps it: in UTC (one without a zone taken as UTC), a day at its start."""
    if not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _earliest(first: dt.datetime | None, second: dt.datetime | None) -> dt.datetime | None:
    return second if first is None or (second is not None and second < first) else first


@dataclass
class PastPromise:
    """The records of one system and category past one promise (`reason`): how many, how many of
    them are stored files, the oldest collection time among them, and, past a retention rule's date,
    the earliest such date."""

    system: str
    category: str
    reason: str
    records: int = 0
    files: int = 0
    oldest_collected_at: dt.datetime | None = None
    retained_until: dt.datetime | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.system, self.category, self.reason

    def add(self, *, count: int, files: int, collected_at: dt.datetime | None, retained_until: dt.datetime | None) -> None:
        self.records += count
        self.files += files
        self.oldest_collected_at = _earliest(self.oldest_collected_at, collected_at)
        self.retained_until = _earliest(self.retained_until, retained_until)

    def as_json(self) -> dict[str, Any]:
        """The entry as the request keeps it, with the promise it breaks: the category's retention
        in words, and its number of days when the records are older than that."""
        return {
            "system": self.system,
            "category": self.category,
            "reason": self.reason,
            "records": self.records,
            "files": self.files,
            "oldest_collected_at": self.oldest_collected_at and self.oldest_collected_at.isoformat(),
            "retained_until": self.retained_until and self.retained_until.isoformat(),
            "retention_days": category_retention_days(self.category) if self.reason == OLDER_THAN_PROMISED else None,
            "retention": category_info(self.category).get("retention", ""),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PastPromise:
        times = {name: data[name] and dt.datetime.fromisoformat(data[name]) for name in ("oldest_collected_at", "retained_until")}
        return cls(data["system"], data["category"], data["reason"], data["records"], data["files"], **times)


class RetentionCheck:
    """The check of one requested category's records in one gather, against the promises as they
    stand at `now`: made once per category, so that each record costs a comparison or two."""

    def __init__(self, category: str, *, now: dt.datetime) -> None:
        days = category_retention_days(category)
        self.category, self.now = category, now
        # The oldest a record may be collected and still be kept; None: the category promises no fixed age.
        self.kept_from = now - dt.timedelta(days=days) if days else None
        self.past: dict[tuple[str, str], PastPromise] = {}

    def check(self, record: Record, *, file: bool = False) -> None:
        """Count the record if it is older than its category promises, or past its retention date."""
        collected, until = record.collected_at, record.retained_until
        if self.kept_from is not None and collected is not None and _before(collected, self.kept_from):
            self._entry(record.system, OLDER_THAN_PROMISED).add(count=1, files=int(file), collected_at=_moment(collected),
                                                              retained_until=None)
        if until is not None and _before(until, self.now):
            self._entry(record.system, PAST_RETENTION_DATE).add(
                count=1, files=int(file), collected_at=collected and _moment(collected), retained_until=_moment(until))

    def count_older(self, system: str, times: list[dt.datetime | dt.date]) -> None:
        """Count records a database already found collected before `kept_from`, by their times."""
        if times:
            self._entry(system, OLDER_THAN_PROMISED).add(count=len(times), files=0, collected_at=_moment(min(times)),
                                                         retained_until=None)

    def _entry(self, system: str, reason: str) -> PastPromise:
        entry = self.past.get((system, reason))
        if entry is None:
            entry = self.past[(system, reason)] = PastPromise(system, self.category, reason)
        return entry

    def found(self) -> list[dict[str, Any]]:
        """What the check counted, as the task's staged output carries it."""
        return [entry.as_json() for entry in self.past.values()]


def retention_finding(staged: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]] | None:
    """The request's retention finding from what each task's check found: one entry per system,
    category and reason, in the taxonomy's order; None when nothing is past its promise."""
    merged: dict[tuple[str, str, str], PastPromise] = {}
    for found in staged:
        for data in found:
            entry = PastPromise.from_json(data)
            if entry.key in merged:
                merged[entry.key].add(count=entry.records, files=entry.files, collected_at=entry.oldest_collected_at,
                                      retained_until=entry.retained_until)
            else:
                merged[entry.key] = entry
    order = {category: index for index, category in enumerate(category_ids())}
    entries = sorted(merged.values(),
                     key=lambda entry: (order.get(entry.category, len(order)), entry.system, RETENTION_REASONS.index(entry.reason)))
    return [entry.as_json() for entry in entries] or None
