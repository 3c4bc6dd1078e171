"""The connector interface: all a connector needs to know about the product, and all it offers.

A connector reaches one system where the company keeps personal data. It is given an identity and
either gathers the subject's records and files as a stream, or erases them and says what it erased
and what it had to keep. It never imports anything from the workflow (`dsar`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar

from django.utils import translation


class ConnectorError(Exception):
    """Base of the errors a connector raises on purpose."""


class TransientError(ConnectorError):
    """The system is briefly unavailable (timeout, dropped connection, 503): worth retrying."""


class PermanentError(ConnectorError):
    """Retrying cannot help (bad configuration, refused credentials, malformed data)."""


@dataclass(frozen=True)
class Identity:
    """Who the request is about. `email` is trimmed and lower-cased; `ids` are the other identities
    the systems found the subject by (a customer number, a phone), each with its values."""

    email: str
    ids: Mapping[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Organization:
    """The organisation that manages a subject's account (their employer, their school), and how to
    reach it about privacy requests: an address, a web page or a phone, as the system holds it
    (None when it holds none)."""

    name: str
    contact: str | None = None


@dataclass(frozen=True)
class Source:
    """How a record was obtained (TAXONOMY.md, Sources)."""

    type: str  # provided | observed | inferred | third_party
    name: str | None = None  # the organisation, for third_party
    kind: str | None = None  # the third-party source kind, for third_party

    def as_dict(self) -> dict[str, str | None]:
        """The source as the export writes it."""
        return {"type": self.type, "name": self.name, "kind": self.kind}


@dataclass(frozen=True)
class Label:
    """What a system file calls a system, a place or a field, for the person's report: `text` in
    the product's own language, and the file's `translations` into others (language code, text).
    Read as text it is in the active language, or the product's where the file gives none, so one
    label made when the file is loaded reads in whichever language the report is rendered in."""

    text: str
    translations: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return dict(self.translations).get(translation.get_language(), self.text)

    def joined(self, other: Label) -> Label:
        """This label, then `other` after a colon ("Your account: your sign-ins"), in every
        language either gives; one without that language gives its own text."""
        ours, theirs = dict(self.translations), dict(other.translations)
        return Label(f"{self.text}: {other.text}",
                     tuple((language, f"{ours.get(language, self.text)}: {theirs.get(language, other.text)}")
                           for language in dict.fromkeys([*ours, *theirs])))


def label_default(name: str) -> str:
    """A field's or a place's name in words, where its file gives no `label:`: `retained_until` is
    "Retained until", `address.city` is "Address: city"."""
    parts = [" ".join(part.replace("_", " ").replace("-", " ").split()) for part in name.split(".")]
    text = ": ".join(part for part in parts if part) or name
    return text[:1].upper() + text[1:]


PROVIDED = Source("provided")
OBSERVED = Source("observed")
INFERRED = Source("inferred")


@dataclass(slots=True)
class Record:
    """One item of personal data in one category, with where it came from.

    `fields` holds what the export shows: text, numbers, booleans, None, and lists and mappings of
    them (a time is its ISO 8601 text). `collected_at` is when the system got it, if known. `others`:
    it may hold other people's data too (a contact, another customer's comment), so staff review it
    before it is released (GDPR Art. 15(4)). `retained_until`: when a retention rule keeps it until a
    date (which its fields show too). Treat a record as a value; it is not frozen because a subject
    can have millions, and a frozen one costs twice as much to make."""

    category: str
    fields: Mapping[str, Any]
    system: str
    source: Source = PROVIDED
    collected_at: dt.datetime | None = None
    others: bool = False
    retained_until: dt.datetime | dt.date | None = None


@dataclass(frozen=True)
class FileItem:
    """A content file the subject stored. `ref` is what `Connector.open_file` needs to read it;
    `others`: other people may be seen or heard in it (CCTV, a recorded call), as on a Record."""

    category: str
    path: str
    ref: str
    size: int | None = None
    source: Source = PROVIDED
    collected_at: dt.datetime | None = None
    others: bool = False


@dataclass(frozen=True)
class Period:
    """The days a person asked their data from, both included, either open (None); `start` and `end`
    are the same days as moments: from the first day's start to the end of the last (excluded), in
    the person's time zone."""

    first_day: dt.date | None
    last_day: dt.date | None
    start: dt.datetime | None
    end: dt.datetime | None

    @classmethod
    def of_days(cls, first_day: dt.date | None, last_day: dt.date | None, zone: dt.tzinfo) -> Period:
        """The period from `first_day` to `last_day` where the person is (`zone`)."""
        start = dt.datetime.combine(first_day, dt.time(), zone) if first_day else None
        end = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(), zone) if last_day else None
        return cls(first_day, last_day, start, end)

    def holds(self, when: dt.datetime | dt.date | None) -> bool:
        """Whether something dated `when` falls in the period. A time without a zone is taken as UTC,
        a bare day by the days; something with no date at all cannot be left out, so it is held."""
        if when is None:
            return True
        if not isinstance(when, dt.datetime):
            return (self.first_day is None or when >= self.first_day) and (self.last_day is None or when <= self.last_day)
        when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        return (self.start is None or when >= self.start) and (self.end is None or when < self.end)


@dataclass(frozen=True)
class Retained:
    """Data an erasure kept because a rule requires it."""

    category: str
    count: int
    reason: str
    until: dt.date | None = None


@dataclass(frozen=True)
class Found:
    """So many records (or files) of a category that an access request would gather in one place."""

    where: str
    category: str
    count: int
    files: bool = False

    def __str__(self) -> str:
        noun = ("file" if self.files else "record") + ("" if self.count == 1 else "s")
        return f"{self.where}: {self.category}: {self.count} {noun}"


@dataclass(frozen=True)
class ErasureStep:
    """What an erasure did in one place (a table, a store) to one category: so many items deleted,
    nulled, masked, or kept with the reason and until when."""

    where: str
    action: str  # deleted | nulled | masked | kept
    category: str
    count: int
    reason: str | None = None
    until: dt.date | None = None

    def __str__(self) -> str:
        kept = f" until {self.until.isoformat()}" if self.until else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.where}: {self.category}: {self.action} {self.count}{kept}{why}"


@dataclass
class ErasureReceipt:
    """What one connector erased (records per category) and what it kept, and why; `steps` say
    where and how."""

    erased: dict[str, int] = field(default_factory=dict)
    retained: list[Retained] = field(default_factory=list)
    suppressed_sources: list[str] = field(default_factory=list)
    steps: list[ErasureStep] = field(default_factory=list)

    def add_erased(self, category: str, count: int) -> None:
        if count:
            self.erased[category] = self.erased.get(category, 0) + count

    def record(self, step: ErasureStep) -> None:
        """Count a step: what was kept is retained, anything else erased."""
        if not step.count:
            return
        self.steps.append(step)
        if step.action == "kept":
            self.retained.append(Retained(step.category, step.count, step.reason or "", step.until))
        else:
            self.add_erased(step.category, step.count)


@dataclass(frozen=True)
class AgeEvidence:
    """What a system knows of the subject's age: the lowest age, in whole years, they can be on the
    day asked (a birth year of 2014 says at least 11 on 7 December 2026), and where the system
    holds it (`accounts: users.birth_year`)."""

    lowest: int
    source: str


@dataclass(frozen=True)
class Finding:
    """What a check of a system found at `where` in its file. A problem means the system cannot
    serve as its file says; advice (`problem=False`) does not stop it."""

    where: str
    what: str
    problem: bool = True


class Connector:
    """Base class. Subclasses set `name` and `categories` and implement gather and erase.

    `options` come from the system's file (connectors/systems.py), so one class can serve several
    systems of the same kind.
    """

    name: ClassVar[str] = ""
    categories: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, name: str | None = None, **options: Any) -> None:
        if name:
            self.name = name
        self.options = options

    def managing_organization(self, identity: Identity) -> Organization | None:
        """The organisation that manages this subject's account, if any (work or school)."""
        return None

    def subject_age(self, identity: Identity, *, on: dt.date) -> AgeEvidence | None:
        """The lowest age the subject can be on `on` by what this system holds (a birth date, a
        birth year, an age band), or None when it holds nothing of their age."""
        return None

    def gather(self, identity: Identity) -> Iterator[Record | FileItem]:
        """Yield every record and file this system holds about the identity, as a stream.

        The caller keeps only the categories the request asked for.
        """
        raise NotImplementedError

    def gather_period(self, identity: Identity, period: Period) -> Iterator[Record | FileItem]:
        """What `gather` yields, of only what is dated within `period` where the system's file says
        what dates its data; what `period_undated` names comes whole. Here: nothing can be dated."""
        return self.gather(identity)

    def period_undated(self, categories: frozenset[str]) -> list[str]:
        """Where this system holds data of `categories` it cannot limit to a period (tables,
        datasets, kinds of file with no declared date): `gather_period` gives all of it. Here: the
        whole system."""
        return [self.name] if self.categories & categories or not self.categories else []

    def open_file(self, ref: str) -> BinaryIO:
        """Open a file that `gather` yielded, for reading in binary."""
        raise PermanentError(f"{self.name} yields no files")

    def erase(self, identity: Identity, categories: frozenset[str] | None = None) -> ErasureReceipt:
        """Make sure the identity's data in `categories` (None: all) is absent, except what a
        rule keeps. Safe to repeat."""
        raise NotImplementedError

    def identities_found(self, identity: Identity) -> dict[str, list[Any]]:
        """The values of the identities this system finds for others (a customer number), by name."""
        return {}

    def gather_preview(self, identity: Identity, categories: frozenset[str] | None = None) -> list[Found]:
        """What an access request would gather, counted per table (or store) and category."""
        wanted = categories or self.categories
        counts: dict[tuple[str, str, bool], int] = {}
        for item in self.gather(identity):
            if item.category in wanted:
                key = (item.system, item.category, False) if isinstance(item, Record) else (self.name, item.category, True)
                counts[key] = counts.get(key, 0) + 1
        return [Found(where, category, count, files) for (where, category, files), count in counts.items()]

    def erase_preview(self, identity: Identity, categories: frozenset[str] | None = None) -> ErasureReceipt:
        """What `erase` would do, changing nothing. Here: everything `gather_preview` finds, deleted;
        a system that can say more (what it would keep) says it."""
        receipt = ErasureReceipt()
        for found in self.gather_preview(identity, categories):
            receipt.record(ErasureStep(found.where, "deleted", found.category, found.count))
        return receipt

    def check(self) -> list[Finding]:
        """Whether the system answers and fits its file (`systems check`). The base checks nothing."""
        return []

    def close(self) -> None:
        """Release connections. Called when the connector instance is dropped."""
