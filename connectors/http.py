"""HTTP systems by configuration: one engine for any JSON API that a system file of kind `http`
describes (connectors/systems.py), so that adding a SaaS system is a file, not a class.

The file says how to reach the API, how to find the subject, what to read about them and how to
erase them:

    name: billing
    kind: http
    connection:
      base_url: ${STRIPE_BASE_URL:-https://api.stripe.com}
      auth: {type: bearer, token: "${STRIPE_SECRET_KEY}"}   # or {type: basic, username, password},
      timeout: 10                                          # or {type: header, name, value}
    lookup:                          # the call that finds the subject by their email
      name: customers
      by: email                      # optional: or an identity another system finds (`phone`: `{phone}`
                                     # below), looked up once for each of the subject's values
      path: /v1/customers
      params: {email: "{email}", limit: 100}
      items: data                    # where the answer's list of items is
      id: id                         # what `{id}` is in the calls below (default: id)
      provides: {stripe_customer: id}  # optional: identities found here for other systems (name: path)
      collected_at: created          # optional: when the system got the item (ISO 8601 or Unix seconds)
      fields: {name: name_contact, email: name_contact, address: name_contact}
    lists:                           # calls made for each id the lookup found
      - name: charges
        path: /v1/charges
        params: {customer: "{id}", limit: 100}
        items: data
        pagination: {type: cursor, param: starting_after, last: id, more: has_more}
        source: observed
        fields:
          amount: payment
          created: {category: payment, time: true}
        erase: keep                  # or a call for each item: {method: DELETE, path: "/v1/x/{item.id}"}
        reason: "Payments are kept for 10 years because tax law requires it"
    erase:                           # the subject's deletion, made when every category is erased
      - {method: DELETE, path: "/v1/customers/{id}"}

Paths into the JSON are dotted (`address.city`); a step through a list applies to each element
(`comments.from` is every comment's `from`), and `custom_fields[id=rating]` picks the first element
whose `id` is `rating`. `{email}`, `{id}` and `{item.PATH}` in a call's path, params or body are the
subject's email, the id the lookup found and a value of the item at hand; with `by`, `{<by>}` is the
value the lookup is made with. Text is compared trimmed
and ignoring case, and numbers as their text (`42` is `"42"`).

Pagination: `link` (the next page's URL is at `next` in the answer), `cursor` (`param` is set to the
value at `next` in the answer, or at `last` in the page's last item) and `offset` (`param` counts
items, `limit_param` asks for `size` a page); `more` names a flag in the answer that must be true for
another page to be asked for.

`fields` maps paths to categories: each item gives one record a category, holding the fields of that
category. `records` says the same at length, when a record needs conditions (`when`) or lists of
its own (`fields: {messages: {path: comments, where: {...}, fields: {...}}}`); a record whose
fields are all empty is left out. Before that, an item can be given more: `join` puts beside it the
object its key names in a list of the same answer (side-loaded users), `derive` computes a field from
the first case that holds, and `attach` puts a further call's items in a field of it (a ticket's
comments). A condition maps paths to tests: a value (holds when some value at the path is it),
`{in: [...]}`, or `{not: TEST}`; `where` keeps only the items it holds for.

A field that may be other people's data says so, and a record holding it is held for staff to review
before the export is released (GDPR Art. 15(4)): `others: true` (any value), or a condition its
elements are tested with (`messages: {path: comments, fields: ..., others: {from: another person}}`:
another customer's comment on a shared ticket). In `fields`, `{category: ID, others: true}`.

Erasure: an item of a list with an `erase` call is erased by that call when the request erases any
category it holds (it is the smallest thing the API deletes, so its other records go with it and
are counted); `erase: keep` keeps a list's items with its `reason`; with neither, a list's items
(and the lookup's own records) go with the subject's deletion, the top-level `erase` calls, which are
made only when every category of the system is erased. An `each:` call under those makes its call
for every item a listing finds (users an earlier erasure left half-deleted), once per erasure.

A period (an access request for some days only): a listing with `collected_at` keeps only the items
dated within it (or not dated); one that also declares `period_params` (`{start: created_after, end:
created_before, format: iso | unix}`) is asked for only those, `start` the period's first moment and
`end` the moment after it. A listing with neither gives all its items, and the export says so.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, SecretStr, Tag, field_validator, model_validator

from .base import (
    PROVIDED, Connector, ErasureReceipt, ErasureStep, Finding, Identity, Label, PermanentError, Period, Record, Source,
    TransientError,
)
from .sql_dataset import Category, LabelText

PROBE_EMAIL = "systems-check@example.invalid"  # `check` looks this address up: no one has it
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
STEP = re.compile(r"([^.\[\]]+)(?:\[([^.=\[\]]+)=([^\[\]]*)\])?")
SOURCES = {"provided": PROVIDED, "observed": Source("observed"), "inferred": Source("inferred")}
WITH_SUBJECT = "erased only with the subject, when every category of the system is erased"  # the receipt's reason


# --- Paths and conditions --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _steps(path: str) -> tuple[tuple[str, str | None, str | None], ...]:
    """`a.b[id=x].c` as ((a, None, None), (b, id, x), (c, None, None)); ValueError if it is not a path."""
    steps, at = [], 0
    while True:
        match = STEP.match(path, at)
        if match is None:
            raise ValueError(f"{path!r} is not a path: dotted names, each optionally with [field=value]")
        steps.append(match.groups())
        at = match.end()
        if at == len(path):
            return tuple(steps)
        if path[at] != "." or at + 1 == len(path):
            raise ValueError(f"{path!r} is not a path: dotted names, each optionally with [field=value]")
        at += 1


def _path(value: str) -> str:
    _steps(value)
    return value


JsonPath = Annotated[str, AfterValidator(_path)]


def value_at(value: Any, path: str) -> Any:
    """The value at a dotted path: None where a key is missing; a step through a list applies to
    each element (so the value is a list); `[field=value]` picks the first element that matches."""
    return _walk(value, _steps(path))


def _walk(value: Any, steps: tuple) -> Any:
    for at, (key, field, wanted) in enumerate(steps):
        if isinstance(value, list):
            return [_walk(element, steps[at:]) for element in value]
        if not isinstance(value, dict):
            return None
        value = value.get(key)
        if field is not None:
            elements = value if isinstance(value, list) else []
            value = next((e for e in elements if isinstance(e, dict) and _same(e.get(field), wanted)), None)
    return value


def _same(value: Any, wanted: Any) -> bool:
    """Whether a value from an answer is the one a file names: null is null, a boolean that
    boolean, and anything else compared as text, trimmed and ignoring case."""
    if type(value) is type(wanted) and value == wanted:
        return True
    if wanted is None or value is None or isinstance(wanted, bool) or isinstance(value, bool):
        return False
    if isinstance(value, (dict, list)):
        return False
    return str(value).strip().casefold() == str(wanted).strip().casefold()


def _test_checked(test: Any) -> Any:
    """A condition's test: a value, {in: [values]} or {not: test}."""
    if isinstance(test, dict):
        if set(test) == {"in"} and isinstance(test["in"], list) and all(not isinstance(v, (dict, list)) for v in test["in"]):
            return test
        if set(test) == {"not"}:
            _test_checked(test["not"])
            return test
        raise ValueError("a test is a value, {in: [values]} or {not: test}")
    if isinstance(test, list):
        raise ValueError("a test is a value, {in: [values]} or {not: test}")
    return test


def _condition(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of paths to tests")
    for path, test in value.items():
        _path(path)
        _test_checked(test)
    return value


Condition = Annotated[dict[str, Any], AfterValidator(_condition)]


def _holds(condition: Mapping[str, Any], item: Any, context: Mapping[str, Any]) -> bool:
    return all(_passes(value_at(item, path), test, context) for path, test in condition.items())


def _passes(value: Any, test: Any, context: Mapping[str, Any]) -> bool:
    """Whether some value at a path (any element, when it is a list) passes the test."""
    if isinstance(test, dict) and "not" in test:
        return not _passes(value, test["not"], context)
    if isinstance(value, list):
        return any(_passes(element, test, context) for element in value)
    wanted = test["in"] if isinstance(test, dict) else [test]
    return any(_same(value, _filled(w, context) if isinstance(w, str) and "{" in w else w) for w in wanted)


# --- Templates -------------------------------------------------------------------------------------


def _filled(template: str, context: Mapping[str, Any], *, quoted: bool = False) -> str:
    """`{email}`, `{id}` and `{item.PATH}` replaced by their values (URL-quoted in a path)."""

    def value(match: re.Match) -> str:
        name = match[1]
        found = value_at(context.get("item"), name.removeprefix("item.")) if name.startswith("item.") else context.get(name)
        if isinstance(found, bool) or not isinstance(found, (str, int, float)) or found == "":
            what = "the item" if name.startswith("item.") else "the subject"
            raise PermanentError(f"{context['system']}: {what} has no value for {{{name}}}: {found!r:.80}")
        return quote(str(found), safe="") if quoted else str(found)

    return PLACEHOLDER.sub(value, template)


def _placeholder_problems(text: str, allowed: tuple[str, ...], where: str) -> list[str]:
    """What is wrong with the placeholders of a text that may use those `allowed` (email, id, item)."""
    problems = []
    for name in PLACEHOLDER.findall(text):
        if name.startswith("item.") and "item" in allowed:
            try:
                _steps(name.removeprefix("item."))
            except ValueError as error:
                problems.append(f"{where}: {{{name}}}: {error}")
        elif name not in allowed or name == "item":
            names = ", ".join("{item.PATH}" if a == "item" else f"{{{a}}}" for a in allowed)
            problems.append(f"{where}: {{{name}}} is not known here (it may use {names})")
    return problems


# --- The file's shape -------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BasicAuth(_Model):
    """HTTP Basic authentication (Zendesk's API token: username `{agent email}/token`)."""

    type: Literal["basic"]
    username: str = Field(min_length=1)
    password: SecretStr


class BearerAuth(_Model):
    """`Authorization: Bearer TOKEN` (Stripe's secret key, an OAuth access token)."""

    type: Literal["bearer"]
    token: SecretStr


class HeaderAuth(_Model):
    """A key in a header of its own (`X-Api-Key: KEY`)."""

    type: Literal["header"]
    name: str = Field(pattern=r"^[A-Za-z0-9-]+$")
    value: SecretStr


def _typed(*names: str) -> Discriminator:
    """Choose a union's model by its `type`, and name the types when it has none of them (the
    loader's own message for a bad tag is about `kind`)."""
    return Discriminator(lambda value: value.get("type") if isinstance(value, dict) else getattr(value, "type", None),
                         custom_error_type="type_unknown", custom_error_message=f"needs a type: {', '.join(names)}")


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"{value!r} is not an http:// or https:// URL without a query")
    return value


Auth = Annotated[
    Annotated[BasicAuth, Tag("basic")] | Annotated[BearerAuth, Tag("bearer")] | Annotated[HeaderAuth, Tag("header")],
    _typed("basic", "bearer", "header"),
]


class HttpConnection(_Model):
    """Where the API is and how to sign in to it."""

    base_url: Annotated[str, AfterValidator(_base_url)]
    auth: Auth | None = None
    headers: dict[str, str] = {}
    timeout: float = Field(10.0, gt=0, le=300)  # seconds for each call


class LinkPages(_Model):
    """The next page's URL is in the answer."""

    type: Literal["link"]
    next: JsonPath
    more: JsonPath | None = None


class CursorPages(_Model):
    """The next page is asked for with `param` set to a cursor: the value at `next` in the answer, or
    at `last` in the page's last item (Stripe's `starting_after`)."""

    type: Literal["cursor"]
    param: str = Field(min_length=1)
    next: JsonPath | None = None
    last: JsonPath | None = None
    more: JsonPath | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CursorPages:
        if (self.next is None) == (self.last is None):
            raise ValueError("needs exactly one of next (a path in the answer) or last (a path in the page's last item)")
        return self


class OffsetPages(_Model):
    """Pages asked for by the number of items before them; a page shorter than `size` is the last."""

    type: Literal["offset"]
    param: str = Field("offset", min_length=1)
    limit_param: str = Field("limit", min_length=1)
    size: int = Field(100, ge=1, le=1000)
    more: JsonPath | None = None


Pagination = Annotated[
    Annotated[LinkPages, Tag("link")] | Annotated[CursorPages, Tag("cursor")] | Annotated[OffsetPages, Tag("offset")],
    _typed("link", "cursor", "offset"),
]


class Join(_Model):
    """The object of a list in the same answer (`from`) whose `key` is the item's value at `by`."""

    from_: JsonPath = Field(alias="from")
    by: JsonPath
    key: JsonPath = "id"


class Case(_Model):
    """One case of a derived field: its value (or the value at `path`) when `when` holds."""

    value: Any = None
    path: JsonPath | None = None
    when: Condition = {}

    @model_validator(mode="after")
    def _one_value(self) -> Case:
        if self.path is not None and self.value is not None:
            raise ValueError("has either a value or a path, not both")
        return self


class Call(_Model):
    """A GET whose answer holds items, page by page."""

    path: str = Field(pattern=r"^/[^?#]*$")
    params: dict[str, str | int | float | bool] = {}
    items: JsonPath | None = None  # None: the answer itself (an object, or a list of them)
    pagination: Pagination | None = None
    join: dict[str, Join] = {}
    derive: dict[str, list[Case]] = {}
    where: Condition = {}
    attach: dict[str, Call] = {}

    @field_validator("path", mode="before")
    @classmethod
    def _no_query(cls, value: Any) -> Any:
        if isinstance(value, str) and "?" in value:
            raise ValueError("has a query: put its parameters under params")
        return value

    def texts(self) -> Iterator[tuple[str, str]]:
        """Where in the call a placeholder may be, and its text."""
        yield "path", self.path
        for key, value in self.params.items():
            if isinstance(value, str):
                yield f"params.{key}", value

    def conditions(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        yield "where", self.where
        for name, cases in self.derive.items():
            for index, case in enumerate(cases):
                yield f"derive.{name}[{index}].when", case.when


class FieldSpec(_Model):
    """A field of a record: the value at `path`; of a list, only the elements `where` keeps, each
    made of `fields`. `optional`: left out when empty. `time`: given as ISO 8601 text. `others`: the
    value may be other people's data (true), or those of its elements the condition holds for are
    (another customer's comment), so a record holding it is reviewed before release."""

    path: JsonPath
    label: LabelText | None = None  # the field in words, as the export's report shows it
    where: Condition = {}
    fields: dict[str, FieldSpec] = {}
    optional: bool = False
    time: bool = False
    others: bool | Condition = False

    @model_validator(mode="before")
    @classmethod
    def _spelled(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data


class RecordSpec(_Model):
    """A record of one category that each item gives when `when` holds."""

    category: Category
    when: Condition = {}
    fields: dict[str, FieldSpec] = Field(min_length=1)


class CategoryField(_Model):
    category: Category
    label: LabelText | None = None
    time: bool = False
    others: bool = False

    @model_validator(mode="before")
    @classmethod
    def _spelled(cls, data: Any) -> Any:
        return {"category": data} if isinstance(data, str) else data


class PeriodParams(_Model):
    """The query parameters that limit a listing to a period: items from `start` on, and before `end`."""

    start: str | None = Field(None, min_length=1)
    end: str | None = Field(None, min_length=1)
    format: Literal["iso", "unix"] = "iso"

    def params(self, period: Period) -> dict[str, str]:
        """The parameters for `period`, its open ends left out."""
        def text(moment: dt.datetime) -> str:
            return str(int(moment.timestamp())) if self.format == "unix" else moment.astimezone(dt.UTC).isoformat()

        bounds = {self.start: period.start, self.end: period.end}
        return {name: text(moment) for name, moment in bounds.items() if name and moment}


class Listing(Call):
    """A call whose items are the subject's: what records they give."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    label: LabelText | None = None  # what its items are, in words, as the export's report names where a record is held
    fields: dict[str, CategoryField] = {}
    records: list[RecordSpec] = []
    collected_at: JsonPath | None = None
    period_params: PeriodParams | None = None  # how to ask for only a period's items (needs collected_at)
    source: Literal["provided", "observed", "inferred"] = "provided"

    @field_validator("fields")
    @classmethod
    def _paths(cls, fields: dict[str, CategoryField]) -> dict[str, CategoryField]:
        for path in fields:
            _path(path)
        return fields

    @model_validator(mode="after")
    def _records_once(self) -> Listing:
        if self.fields and self.records:
            raise ValueError("has both fields and records: say each record once, one way or the other")
        if self.period_params and not self.collected_at:
            raise ValueError("has period_params but no collected_at: say which date of an item they ask by")
        return self

    def record_specs(self) -> list[RecordSpec]:
        """`records`, or one record a category made of the `fields` mapped to it."""
        if self.records:
            return self.records
        grouped: dict[str, dict[str, FieldSpec]] = {}
        for path, field in self.fields.items():
            grouped.setdefault(field.category, {})[path] = FieldSpec(path=path, label=field.label, time=field.time, others=field.others)
        return [RecordSpec(category=category, fields=fields) for category, fields in grouped.items()]


class HttpLookup(Listing):
    """The call that finds the subject by an identity, `by` (their email, or one another system
    finds: a phone, a customer number), once for each of its values; `id` is the path of what later
    calls use; `provides` names identities other systems are found by, each the path of its value in an item."""

    by: str = Field("email", pattern=r"^[a-z][a-z0-9_]{0,39}$")
    id: JsonPath = "id"
    provides: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")], JsonPath] = {}


class ItemErase(_Model):
    """The call that erases one item."""

    method: Literal["DELETE", "POST", "PUT", "PATCH"] = "DELETE"
    path: str = Field(pattern=r"^/[^?#]*$")
    body: dict[str, Any] | None = None


class HttpList(Listing):
    """A list of the subject's items, read for each id the lookup found."""

    erase: ItemErase | Literal["keep", "subject"] = "subject"
    reason: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _reason_with_keep(self) -> HttpList:
        if self.erase == "keep" and not self.reason:
            raise ValueError("`erase: keep` needs a reason, which the receipt gives")
        if self.erase != "keep" and self.reason:
            raise ValueError("has a reason but does not keep its items (`erase: keep`)")
        if not self.record_specs():
            raise ValueError("gives no records: map its fields to categories (fields) or describe them (records)")
        return self


class SubjectErase(ItemErase):
    """A call of the subject's deletion: for each id the lookup found, or for each item `each` finds."""

    each: Call | None = None


class HttpApi(_Model):
    """What a system file of kind `http` says beside its name: how to reach the API, find the
    subject, read their items and erase them."""

    connection: HttpConnection
    lookup: HttpLookup
    lists: list[HttpList] = []
    erase: list[SubjectErase] = []

    def categories(self) -> frozenset[str]:
        """The categories the API's records are given."""
        return frozenset(spec.category for listing in (self.lookup, *self.lists) for spec in listing.record_specs())

    def labels(self) -> dict[str, tuple[Label | None, dict[str, Label]]]:
        """Each listing's label and its records' fields' labels (a list's own fields dotted:
        `messages.body`), where the file gives them, by listing name; each reads in the active language."""
        labels = {}
        for listing in (self.lookup, *self.lists):
            fields: dict[str, Label] = {}
            for spec in listing.record_specs():
                _field_labels(spec.fields, "", fields)
            labels[listing.name] = (listing.label, fields)
        return labels

    def problems(self) -> list[str]:
        """What is wrong across the file's parts (`where: what`): a name used twice, a placeholder
        a call cannot know, records nothing erases."""
        problems = []
        names = [self.lookup.name] + [listing.name for listing in self.lists]
        for index, listing in enumerate(self.lists):
            if listing.name in names[:index + 1]:
                problems.append(f"lists[{index}].name: {listing.name!r} is also the name of another listing")
        by = self.lookup.by
        if by in ("id", "item"):
            problems.append(f"lookup.by: {by!r} names what the lookup finds, not an identity it is found by")
        problems += _call_problems(self.lookup, "lookup", tuple(dict.fromkeys(("email", by))))
        for index, listing in enumerate(self.lists):
            problems += _call_problems(listing, f"lists[{index}]", tuple(dict.fromkeys(("email", by, "id"))))
            if isinstance(listing.erase, ItemErase):
                problems += _erase_problems(listing.erase, f"lists[{index}].erase", ("email", "id", "item"))
        for index, call in enumerate(self.erase):
            where = f"erase[{index}]"
            if call.each is not None:
                problems += _call_problems(call.each, f"{where}.each", ("email",))
            problems += _erase_problems(call, where, ("email", "item") if call.each is not None else ("email", "id"))
        with_subject = [f"lists[{i}]" for i, listing in enumerate(self.lists) if listing.erase == "subject"]
        if self.lookup.record_specs():
            with_subject.insert(0, "lookup")
        if with_subject and not self.erase:
            problems.append(f"erase: nothing erases the records of {', '.join(with_subject)}: give the calls that delete the "
                            "subject, an erase call for each item of a list, or `erase: keep` with a reason")
        return problems


def _field_labels(specs: Mapping[str, FieldSpec], prefix: str, into: dict[str, Label]) -> None:
    for name, spec in specs.items():
        if spec.label:
            into[f"{prefix}{name}"] = spec.label
        _field_labels(spec.fields, f"{prefix}{name}.", into)


def _call_problems(call: Call, where: str, allowed: tuple[str, ...]) -> list[str]:
    problems = [p for key, text in call.texts() for p in _placeholder_problems(text, allowed, f"{where}.{key}")]
    conditions = list(call.conditions())
    if isinstance(call, Listing):
        for index, spec in enumerate(call.records):
            conditions += [(f"records[{index}].when", spec.when), *_field_conditions(spec.fields, f"records[{index}].fields")]
    for key, condition in conditions:
        problems += [p for test in condition.values() for p in _test_placeholders(test, allowed, f"{where}.{key}")]
    for name, attached in call.attach.items():
        problems += _call_problems(attached, f"{where}.attach.{name}", (*allowed, "item") if "item" not in allowed else allowed)
    return problems


def _field_conditions(fields: Mapping[str, FieldSpec], where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, spec in fields.items():
        yield f"{where}.{name}.where", spec.where
        if isinstance(spec.others, dict):
            yield f"{where}.{name}.others", spec.others
        yield from _field_conditions(spec.fields, f"{where}.{name}.fields")


def _test_placeholders(test: Any, allowed: tuple[str, ...], where: str) -> list[str]:
    tests = test.get("in", [test.get("not")]) if isinstance(test, dict) else [test]
    problems = []
    for one in tests:
        if isinstance(one, dict):
            problems += _test_placeholders(one, allowed, where)
        elif isinstance(one, str):
            problems += _placeholder_problems(one, tuple(a for a in allowed if a != "item"), where)
    return problems


def _erase_problems(call: ItemErase, where: str, allowed: tuple[str, ...]) -> list[str]:
    problems = _placeholder_problems(call.path, allowed, f"{where}.path")
    for key, value in (call.body or {}).items():
        if isinstance(value, str):
            problems += _placeholder_problems(value, allowed, f"{where}.body.{key}")
    return problems


# --- The engine -----------------------------------------------------------------------------------


class HttpConnector(Connector):
    """Reads and erases a subject's data in a JSON API as its system file (`api`) describes.

    It speaks HTTP through urllib3's connection pools: a timeout on every call, the environment's
    proxy (`HTTPS_PROXY`, `NO_PROXY`), the system's certificate authorities (or the bundle
    `SSL_CERT_FILE` names), no redirect followed and no retry of its own (the task's retries do).
    A refused connection, a timeout, 429 and 5xx are transient errors; any other failure is
    permanent, except a 404 on the lookup (no such subject) and on an erase call (already gone)."""

    def __init__(self, *, name: str | None = None, api: HttpApi, **options: Any) -> None:
        super().__init__(name=name, **options)  # the credentials stay out of `options`, which may be shown
        self.api = api
        # Worked out once: `fields` becomes one record a category; which of them may hold others' data.
        self.record_specs = {listing.name: listing.record_specs() for listing in (api.lookup, *api.lists)}
        self.reviewed = {name: [_marks_others(spec.fields) for spec in specs] for name, specs in self.record_specs.items()}
        self.categories = api.categories()
        connection = api.connection
        self.base_url = connection.base_url.rstrip("/")
        self.headers = {"Accept": "application/json", **connection.headers, **_auth_headers(connection)}
        pool_options = {"timeout": urllib3.Timeout(connection.timeout), "retries": False, "maxsize": 4}
        proxy = _environ_proxy(self.base_url)
        self.pool = urllib3.ProxyManager(proxy, **pool_options) if proxy else urllib3.PoolManager(**pool_options)

    def close(self) -> None:
        """Close the pool's connections."""
        self.pool.clear()

    # --- Reading ---

    def gather(self, identity: Identity) -> Iterator[Record]:
        """Yield the records of each item of the lookup and of every list, for each id found."""
        for subject, context in self._subjects(identity):
            yield from self._records(self.api.lookup, subject, context)
            for listing in self.api.lists:
                for item in self._items(listing, context):
                    yield from self._records(listing, item, context)

    def gather_period(self, identity: Identity, period: Period) -> Iterator[Record]:
        """What `gather` yields, of a listing dated by its `collected_at` only the items dated within
        `period` (or not dated), a list with `period_params` asked for only those."""
        for subject, context in self._subjects(identity):
            yield from self._records(self.api.lookup, subject, context, period)
            for listing in self.api.lists:
                asked = listing
                if listing.period_params:
                    asked = listing.model_copy(update={"params": {**listing.params, **listing.period_params.params(period)}})
                for item in self._items(asked, context):
                    yield from self._records(listing, item, context, period)

    def period_undated(self, categories: frozenset[str]) -> list[str]:
        """The listings holding some of `categories` with no `collected_at` to date their items by."""
        return [f"{self.name}.{listing.name}" for listing in (self.api.lookup, *self.api.lists)
                if not listing.collected_at and any(spec.category in categories for spec in self.record_specs[listing.name])]

    def identities_found(self, identity: Identity) -> dict[str, list[Any]]:
        """The values of the identities the lookup's items provide, distinct and in order."""
        found: dict[str, list[Any]] = {name: [] for name in self.api.lookup.provides}
        for subject, _ in self._subjects(identity):
            for name, path in self.api.lookup.provides.items():
                value = value_at(subject, path)
                if value not in (None, "") and value not in found[name]:
                    found[name].append(value)
        return found

    def _subjects(self, identity: Identity) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """The lookup's items, each with the context its lists are read in: looked up by each value
        of the identity it is found by, and each item once (two phone numbers may find one customer)."""
        lookup = self.api.lookup
        values = [identity.email] if lookup.by == "email" else identity.ids.get(lookup.by, [])
        seen = set()
        for value in values:
            context = {"system": self.name, "email": identity.email, lookup.by: value}
            for subject in self._items(lookup, context, missing_ok=True):
                found = value_at(subject, lookup.id)
                if isinstance(found, bool) or not isinstance(found, (str, int)) or found == "":
                    raise PermanentError(f"{self.name}: the lookup answered an item without an id at {lookup.id!r}: {found!r:.80}")
                if found not in seen:
                    seen.add(found)
                    yield subject, {**context, "id": found}

    def _records(self, listing: Listing, item: dict[str, Any], context: Mapping[str, Any], period: Period | None = None) -> Iterator[Record]:
        made = {"system": f"{self.name}.{listing.name}", "source": SOURCES[listing.source],
                "collected_at": self._time(value_at(item, listing.collected_at)) if listing.collected_at else None}
        if period is not None and not period.holds(made["collected_at"]):
            return
        for spec, reviewed in zip(self.record_specs[listing.name], self.reviewed[listing.name], strict=True):
            if not _holds(spec.when, item, context):
                continue
            fields = self._fields(spec.fields, item, context)
            if any(not _empty(value) for value in fields.values()):
                yield Record(category=spec.category, fields=fields, others=reviewed and _others(spec.fields, item, context), **made)

    def _fields(self, specs: Mapping[str, FieldSpec], item: Any, context: Mapping[str, Any]) -> dict[str, Any]:
        fields = {}
        for name, spec in specs.items():
            value = value_at(item, spec.path)
            if spec.where or spec.fields:
                elements = value if isinstance(value, list) else [] if value is None else [value]
                value = [e for e in elements if _holds(spec.where, e, context)]
                if spec.fields:
                    value = [self._fields(spec.fields, e, context) for e in value]
            if spec.time and value is not None:
                value = self._time(value).isoformat()
            if not (spec.optional and _empty(value)):
                fields[name] = value
        return fields

    def _time(self, value: Any) -> dt.datetime | None:
        """A time from ISO 8601 text or Unix seconds, in UTC when it names no zone."""
        if value is None:
            return None
        try:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return dt.datetime.fromtimestamp(value, dt.UTC)
            parsed = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
        except (ValueError, OverflowError, OSError):
            parsed = None
        if parsed is None:
            raise PermanentError(f"{self.name}: the API gave a time that is neither ISO 8601 nor Unix seconds: {value!r:.80}")
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)

    def _items(self, call: Call, context: Mapping[str, Any], *, missing_ok: bool = False) -> Iterator[dict[str, Any]]:
        """Every item of a call, page by page, joined, derived, filtered and with its attached lists."""
        for page, items in self._pages(call, context, missing_ok=missing_ok):
            related = {name: self._related(page, join) for name, join in call.join.items()}
            for raw in items:
                item = dict(raw)
                for name, join in call.join.items():
                    item[name] = related[name].get(_key(value_at(item, join.by)))
                for name, cases in call.derive.items():
                    item[name] = _derived(cases, item, context)
                if not _holds(call.where, item, context):
                    continue
                for name, attached in call.attach.items():
                    item[name] = list(self._items(attached, {**context, "item": item}))
                yield item

    def _related(self, page: Any, join: Join) -> dict[str, Any]:
        found = value_at(page, join.from_)
        if found is None:
            return {}
        if not isinstance(found, list):
            raise PermanentError(f"{self.name}: the API's {join.from_!r} is not a list: {found!r:.80}")
        return {key: element for element in found if isinstance(element, dict) and (key := _key(value_at(element, join.key)))}

    def _pages(self, call: Call, context: Mapping[str, Any], *, missing_ok: bool = False) -> Iterator[tuple[Any, list[dict]]]:
        """Each page of a call's answer with its items, the next asked for only when this one is used up."""
        url, params = self._url(call, context), _params(call, context)
        pages, seen, offset = call.pagination, set(), 0
        if isinstance(pages, OffsetPages):
            params = {**params, pages.param: "0", pages.limit_param: str(pages.size)}
        while True:
            page = self.call("GET", url, params=params, missing_ok=missing_ok)
            if page is None:  # a lookup's 404: no such subject
                return
            items = self._page_items(page, call)
            yield page, items
            if pages is None or (pages.more is not None and value_at(page, pages.more) is not True):
                return
            if isinstance(pages, OffsetPages):
                if len(items) < pages.size:
                    return
                offset += len(items)
                params = {**params, pages.param: str(offset)}
                continue
            following = value_at(page, pages.next) if pages.next else value_at(items[-1], pages.last) if items else None
            if following is None or following == "":
                if pages.more is not None:
                    raise PermanentError(f"{self.name}: {call.path} says it has more but gives no next page")
                return
            if isinstance(following, bool) or not isinstance(following, (str, int)) or str(following) in seen:
                raise PermanentError(f"{self.name}: {call.path} gave a next page it gave before, or none: {following!r:.80}")
            seen.add(str(following))
            if isinstance(pages, LinkPages):
                url, params = self._same_origin(str(following), call.path), None
            else:
                params = {**params, pages.param: str(following)}

    def _url(self, call: Call, context: Mapping[str, Any]) -> str:
        return self.base_url + _filled(call.path, context, quoted=True)

    def _page_items(self, page: Any, call: Call) -> list[dict[str, Any]]:
        found = page if call.items is None else value_at(page, call.items) if isinstance(page, dict) else None
        if isinstance(found, dict):
            found = [found]
        if not isinstance(found, list):
            where = call.items or "its top"
            raise PermanentError(f"{self.name}: the answer to GET {call.path} lacks a list of items at {where!r}")
        if not all(isinstance(item, dict) for item in found):
            raise PermanentError(f"{self.name}: GET {call.path} answered an item that is not an object")
        return found

    def _same_origin(self, url: str, what: str) -> str:
        """A next page's URL, refused when it leads away from the API (it would carry the credentials)."""
        target, base = urlsplit(url), urlsplit(self.base_url)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            raise PermanentError(f"{self.name}: {what} gave a next page on another host than the API's: {url:.120}")
        return url

    # --- Erasing ---

    def erase(self, identity: Identity, categories: frozenset[str] | None = None) -> ErasureReceipt:
        """Make sure the subject's items holding `categories` (None: all) are absent, as the file
        says each is erased, and with every category the subject too. Safe to repeat."""
        return self._erase(identity, categories, act=True)

    def erase_preview(self, identity: Identity, categories: frozenset[str] | None = None) -> ErasureReceipt:
        """What `erase` would delete and keep, making no call that changes anything."""
        return self._erase(identity, categories, act=False)

    def _erase(self, identity: Identity, categories: frozenset[str] | None, *, act: bool) -> ErasureReceipt:
        everything = categories is None or self.categories <= categories
        wanted = self.categories if categories is None else self.categories & categories
        receipt = ErasureReceipt()
        for subject, context in self._subjects(identity):
            # (listing, category) -> records that go with the subject's deletion
            with_subject = Counter((self.api.lookup.name, r.category) for r in self._records(self.api.lookup, subject, context))
            for listing in self.api.lists:
                with_subject += self._list_erase(listing, context, receipt, everything=everything, wanted=wanted, act=act)
            for call in self.api.erase if everything and act else []:
                if call.each is None:
                    self._erase_send(self._erase_request(call, context))
            for (name, category), count in with_subject.items():
                if everything:
                    receipt.record(ErasureStep(f"{self.name}.{name}", "deleted", category, count))
                elif category in wanted:
                    receipt.record(ErasureStep(f"{self.name}.{name}", "kept", category, count, reason=WITH_SUBJECT))
        context = {"system": self.name, "email": identity.email}
        for call in self.api.erase if everything and act else []:
            if call.each is not None:
                requests = [self._erase_request(call, {**context, "item": item}) for item in self._items(call.each, context)]
                for request in requests:
                    self._erase_send(request)
        return receipt

    def _list_erase(self, listing: HttpList, context: Mapping[str, Any], receipt: ErasureReceipt, *, everything: bool,
                    wanted: frozenset[str], act: bool) -> Counter:
        """Erase (or keep) one list's items as its file says, noting the steps in `receipt`; the
        records it leaves to the subject's deletion, by (list, category)."""
        requests, deleted, kept, with_subject = [], Counter(), Counter(), Counter()
        # Every item is read before any is erased: deleting under a cursor or an offset skips items.
        for item in self._items(listing, context):
            held = Counter(record.category for record in self._records(listing, item, context))
            if isinstance(listing.erase, ItemErase):
                if everything or held.keys() & wanted:
                    requests.append(self._erase_request(listing.erase, {**context, "item": item}))
                    deleted += held
            elif listing.erase == "keep":
                kept += Counter({category: n for category, n in held.items() if category in wanted})
            else:
                with_subject += Counter({(listing.name, category): n for category, n in held.items()})
        for request in requests if act else []:
            self._erase_send(request)
        for category, count in deleted.items():
            receipt.record(ErasureStep(f"{self.name}.{listing.name}", "deleted", category, count))
        for category, count in kept.items():
            receipt.record(ErasureStep(f"{self.name}.{listing.name}", "kept", category, count, reason=listing.reason))
        return with_subject

    def _erase_request(self, call: ItemErase, context: Mapping[str, Any]) -> tuple[str, str, dict[str, Any] | None]:
        """The method, URL and body of an erase call, its placeholders filled."""
        body = None if call.body is None else {k: _filled(v, context) if isinstance(v, str) else v for k, v in call.body.items()}
        return call.method, self.base_url + _filled(call.path, context, quoted=True), body

    def _erase_send(self, request: tuple[str, str, dict[str, Any] | None]) -> None:
        method, url, body = request
        self.call(method, url, json=body, missing_ok=True)  # what is already gone is erased

    # --- Checking ---

    def check(self) -> list[Finding]:
        """Whether the API answers the lookup of an address no one has with 2xx and a list of items."""
        lookup, context = self.api.lookup, {"system": self.name, "email": PROBE_EMAIL}
        try:
            self._page_items(self.call("GET", self._url(lookup, context), params=_params(lookup, context)), lookup)
        except _Refused as error:
            return [Finding("connection.auth", str(error))]
        except TransientError as error:
            return [Finding("connection.base_url", str(error))]
        except PermanentError as error:
            return [Finding("lookup", str(error))]
        return []

    # --- HTTP ---

    def call(self, method: str, url: str, *, params: Mapping[str, str] | None = None, json: Any = None,
             missing_ok: bool = False) -> Any:
        """One call on the API (`url` is absolute, or a path under the base URL); its decoded JSON
        answer, or None for 204 (and for 404 or 410 when `missing_ok`: what is sought is not there)."""
        if url.startswith("/"):
            url = self.base_url + url
        what = f"{method} {urlsplit(url).path}"
        if params:
            url += ("&" if urlsplit(url).query else "?") + urlencode(params)
        try:
            response = self.pool.request(method, url, json=json, headers=self.headers)
        except urllib3.exceptions.LocationValueError as error:
            raise PermanentError(f"{self.name}: {what} could not be sent: {error}") from error
        except urllib3.exceptions.HTTPError as error:  # refused, reset, timed out, cut short
            raise TransientError(f"{self.name}: the API did not answer {what}: {error}") from error
        status = response.status
        if status == 204 or (status in (404, 410) and missing_ok):
            return None
        if status == 429 or status >= 500:
            raise TransientError(f"{self.name}: the API answered {status} {response.reason} to {what}")
        if status >= 400:
            detail = response.data[:200].decode(errors="replace")
            error_class = _Refused if status in (401, 403) else PermanentError
            raise error_class(f"{self.name}: the API answered {status} {response.reason} to {what}: {detail}")
        try:
            return response.json()
        except ValueError as error:
            raise PermanentError(f"{self.name}: the API's answer to {what} is not JSON") from error


class _Refused(PermanentError):
    """The API refused the credentials (401) or the permission (403)."""


def _auth_headers(connection: HttpConnection) -> dict[str, str]:
    auth = connection.auth
    if isinstance(auth, BasicAuth):
        return urllib3.make_headers(basic_auth=f"{auth.username}:{auth.password.get_secret_value()}")
    if isinstance(auth, BearerAuth):
        return {"Authorization": f"Bearer {auth.token.get_secret_value()}"}
    if isinstance(auth, HeaderAuth):
        return {auth.name: auth.value.get_secret_value()}
    return {}


def _environ_proxy(url: str) -> str | None:
    """The proxy the environment names for `url`, unless NO_PROXY exempts its host."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass_environment(parts.hostname or ""):
        return None
    return urllib.request.getproxies_environment().get(parts.scheme)


def _derived(cases: list[Case], item: dict[str, Any], context: Mapping[str, Any]) -> Any:
    """The value of the first case that holds, or None."""
    for case in cases:
        if _holds(case.when, item, context):
            return value_at(item, case.path) if case.path is not None else case.value
    return None


def _marks_others(specs: Mapping[str, FieldSpec]) -> bool:
    """Whether any of these fields, or of their elements' fields, may be other people's data."""
    return any(spec.others is not False or _marks_others(spec.fields) for spec in specs.values())


def _others(specs: Mapping[str, FieldSpec], item: Any, context: Mapping[str, Any]) -> bool:
    """Whether the fields `specs` make of `item` hold what may be other people's data: a value of a
    field marked `others: true`, or an element its `others` condition holds for (as `_fields` reads
    them: of a list, only the elements `where` keeps)."""
    for spec in specs.values():
        if spec.others is False and not spec.fields:
            continue
        value = value_at(item, spec.path)
        elements = value if isinstance(value, list) else [] if value is None else [value]
        if spec.where or spec.fields:
            elements = value = [e for e in elements if _holds(spec.where, e, context)]
        if spec.others is True and not _empty(value):
            return True
        if isinstance(spec.others, dict) and any(_holds(spec.others, e, context) for e in elements):
            return True
        if any(_others(spec.fields, e, context) for e in elements):
            return True
    return False


def _key(value: Any) -> str | None:
    """An id as the text it is compared by, or None for what is not an id."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value).strip().casefold()


def _params(call: Call, context: Mapping[str, Any]) -> dict[str, str]:
    """A call's query parameters, placeholders filled (a boolean as `true` or `false`)."""
    def text(value: str | int | float | bool) -> str:
        if isinstance(value, str):
            return _filled(value, context)
        return str(value).lower() if isinstance(value, bool) else str(value)

    return {key: text(value) for key, value in call.params.items()}


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}

