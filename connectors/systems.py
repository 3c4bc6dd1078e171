"""A deployment's systems, one YAML file a system in a directory (DSAR_SYSTEMS).

A system file names the system, its kind and how to reach it; `${VAR}` (or `${VAR:-default}`) in
any text is taken from the environment, so no secret is written in a file:

    name: shop                      # the connector's name: lower case, digits, underscores
    kind: sql                       # sql | object_store | http | python | manual
    connection: {url: "${SHOP_DATABASE_URL}"}
    time_limit: 600                 # optional: seconds an attempt may take before it is retried
    tables: [...]                   # sql: the dataset (connectors/sql_dataset.py)
    age: {table: users, column: birth_year, kind: birth_year}   # sql, optional: birth_date | birth_year | age_band

`class` replaces the kind's connector by a subclass of it (the demo's accounts system renders its
long tables in PostgreSQL that way); the `python` kind names any Connector class and gives it
`options`. A `manual` system has no API: staff work each request's task by hand, following its
`instructions`, for the `categories` it may hold, found by the `identities` it names (the email, or
identities other systems find first); an `assignee` (a staff username) is reminded of its deadlines.

Where an organisation manages a subject's account (a work or school account, which an SQL system
names in its `organization:` block), a system says whether its data of such a subject is that
organisation's, the company holding it only on the organisation's behalf (GDPR Art. 28):

    organization_controls: true     # optional, default false: the company's own data, answered by it

A request of such a subject leaves these systems to the organisation, and the person is told how to
reach it.

An object store may say which categories of its files may show other people or let them be heard,
so that an access request finding one is held for staff to review before release (GDPR Art. 15(4));
an SQL table or column, and an http field, say the same with `others` (connectors/sql_dataset.py,
connectors/http.py):

    categories:
      video_recordings: {others: true}  # CCTV shows whoever passed by

Any system may name the organisations its data is disclosed to, for the export's report (GDPR Art.
15(1)(c), the CCPA's categories of third parties) and to tell them of an erasure:

    recipients:
      - name: Mailbird Inc.             # the organisation
        role: processor                 # processor | controller (an independent recipient) | public_authority
        categories: [name_contact]      # optional: those of this system's categories it receives (default: all)
        country: US                     # ISO 3166-1 alpha-2
        safeguard: standard_contractual_clauses   # required outside the EEA where no adequacy decision covers the country
        safeguard_detail: "..."         # optional, in words
        ccpa: disclosed                 # optional: disclosed (for a business purpose) | sold | shared
        notify: {email: privacy@mailbird.example}   # exactly one of email, webhook {url, secret: ${VAR}}, manual: instructions

A mistake is a SystemsError with one line per problem, `FILE: path: what`, and no system
of the directory is used: nothing starts half-configured.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.utils import translation
from django.utils.module_loading import import_string
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PositiveInt, SecretStr, StrictBool,
                      StringConstraints, TypeAdapter, ValidationError, model_validator)

from .base import Connector, Label, label_default
from .countries import COUNTRIES
from .http import HttpApi, HttpConnection, HttpList, HttpLookup, SubjectErase
from .sql_dataset import REQUEST_IDENTITIES, Age, Category, Dataset, LabelText, Organization, Table, problem_what, problem_where
from .taxonomy import category_ids, category_root
from .transfers import SAFEGUARDS, Safeguard, transfer_area

KINDS = ("sql", "object_store", "http", "python", "manual")
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
DottedPath = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class SystemsError(ValueError):
    """One or more system files are wrong: `problems` are lines `FILE: path: what`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class System:
    """One configured system: the connector class that reaches it and the options it is built with."""

    name: str
    connector_class: str
    options: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "python"
    time_limit: int | None = None  # seconds per attempt, when shorter than the product's limit
    file: Path | None = None
    needs: frozenset[str] = frozenset()  # identities other systems must find first (a customer number)
    provides: frozenset[str] = frozenset()  # identities it finds for other systems
    recipients: tuple[Recipient, ...] = ()  # each with the categories it receives filled in
    organization_controls: bool = False  # its data of an account an organisation manages is that organisation's
    label: Label | None = None  # the system in words, as its file gives it (`title`)
    # By what a record names as its `system` (`accounts.users`): the place in words, and its fields' labels
    places: Mapping[str, tuple[Label, Mapping[str, Label | str]]] = field(default_factory=dict)

    @property
    def title(self) -> Label:
        """The system in words: its label, or its name made readable."""
        return self.label or Label(label_default(self.name))

    def words(self, place: str) -> tuple[Label, Mapping[str, Label | str]]:
        """Where a record whose `system` is `place` is held, in words ("Accounts: sign-ins"), and
        the labels its file gives that place's fields (a field without one: `label_default`); each
        reads in the language active when it is read as text, not when it is asked for."""
        if place in self.places:
            return self.places[place]
        return self.title, {}

    def connector(self) -> Connector:
        """A new connector for this system."""
        return import_string(self.connector_class)(name=self.name, **self.options)


class SystemsDirectory(Mapping[str, System]):
    """The systems of one or more directories of system files, read when first looked at (Django's
    settings name it before the taxonomy a dataset is checked against can be read)."""

    def __init__(self, *directories: str | Path, environ: Mapping[str, str]) -> None:
        self.directories = [Path(directory) for directory in directories]
        self._environ = dict(environ)

    @functools.cached_property
    def _systems(self) -> dict[str, System]:
        systems: dict[str, System] = {}
        for directory in self.directories:
            loaded = systems_load(directory, self._environ)
            if clash := sorted(systems.keys() & loaded.keys()):
                raise SystemsError([f"{loaded[name].file}: name: {name!r} is also the name of {systems[name].file}" for name in clash])
            systems.update(loaded)
        systems_stages(systems)
        systems_control_check(systems)
        return systems

    def __getitem__(self, name: str) -> System:
        return self._systems[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._systems)

    def __len__(self) -> int:
        return len(self._systems)

    def __repr__(self) -> str:
        return f"SystemsDirectory({', '.join(str(d) for d in self.directories)})"


# --- The file's shape ------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _SqlConnection(_Strict):
    url: str | None = None  # SQLAlchemy's; unset: a database `<product's>_<name>` beside the product's
    mask_key: str | None = None


class _StoreConnection(_Strict):
    backend: DottedPath | None = None  # a Django Storage class; unset: files on this machine
    options: dict[str, Any] = {}


def _norway_spelled(value: Any) -> Any:
    """YAML reads an unquoted `country: NO` as false: that is Norway."""
    return "NO" if value is False else value


def _country(code: str) -> str:
    if code not in COUNTRIES:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code (two capital letters, such as DE or US)")
    return code


def _email(address: str) -> str:
    try:
        validate_email(address)
    except DjangoValidationError:
        raise ValueError(f"{address!r} is not an email address") from None
    return address


def _https(url: str) -> str:
    """An https:// URL; http:// only to this machine, where nothing can listen on the way."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an https:// URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError("must be an https:// URL (http:// only to this machine: localhost, 127.0.0.1, ::1)")
    return url


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Webhook(_Strict):
    """A URL that is POSTed a signed notice; the secret signs it."""

    model_config = ConfigDict(frozen=True)

    url: Annotated[str, AfterValidator(_https)]
    secret: SecretStr


class Notify(_Strict):
    """How a recipient is told of an erasure: exactly one of an email address, a webhook, or
    instructions staff follow by hand."""

    model_config = ConfigDict(frozen=True)

    email: Annotated[str, AfterValidator(_email)] | None = None
    webhook: Webhook | None = None
    manual: Text | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Notify:
        given = [method for method in ("email", "webhook", "manual") if getattr(self, method) is not None]
        if len(given) != 1:
            raise ValueError(f"must give exactly one of email, webhook or manual (got {' and '.join(given) or 'none'})")
        return self


class Recipient(_Strict):
    """An organisation a system's data is disclosed to, as its file declares it."""

    model_config = ConfigDict(frozen=True)

    name: Text
    role: Literal["processor", "controller", "public_authority"]
    categories: tuple[Category, ...] | None = None  # unset in the file: all the system's categories
    country: Annotated[str, BeforeValidator(_norway_spelled), AfterValidator(_country)]
    safeguard: Safeguard | None = None
    safeguard_detail: Text | None = None
    ccpa: Literal["disclosed", "sold", "shared"] | None = None
    notify: Notify


class _File(_Strict):
    name: Name
    label: LabelText | None = None  # the system in words, as the export's report names it
    time_limit: PositiveInt | None = None
    recipients: list[Recipient] = []
    organization_controls: StrictBool = False  # true or false: no "yes", no 1


class _SqlFile(_File):
    kind: Literal["sql"]
    class_: DottedPath = Field("connectors.sql.SqlConnector", alias="class")
    connection: _SqlConnection = _SqlConnection()
    tables: list[Table] = Field(min_length=1)
    organization: Organization | None = None
    age: Age | None = None


class _FileCategory(_Strict):
    """What an object store's file says of one category of its files."""

    others: bool = False  # its files may show other people, or let them be heard (CCTV, recorded calls)


class _ObjectStoreFile(_File):
    kind: Literal["object_store"]
    class_: DottedPath = Field("connectors.content.ContentStorageConnector", alias="class")
    connection: _StoreConnection = _StoreConnection()
    categories: dict[Category, _FileCategory] = {}


class _HttpFile(_File):
    kind: Literal["http"]
    class_: DottedPath = Field("connectors.http.HttpConnector", alias="class")
    connection: HttpConnection
    lookup: HttpLookup
    lists: list[HttpList] = []
    erase: list[SubjectErase] = []


class _PythonFile(_File):
    kind: Literal["python"]
    class_: DottedPath = Field(alias="class")
    options: dict[str, Any] = {}
    needs: list[Name] = []  # identities other systems find that the class looks the subject up by
    provides: list[Name] = []  # identities its `identities_found` returns for other systems


class _ManualFile(_File):
    kind: Literal["manual"]
    class_: DottedPath = Field("connectors.manual.ManualConnector", alias="class")
    instructions: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    categories: list[Category] = Field(min_length=1)
    identities: list[Name] = ["email"]  # what staff look the subject up by: the email, or identities other systems find
    assignee: str | None = None  # the staff member reminded of its tasks; unset: every reviewer


_SYSTEM_FILE = TypeAdapter(Annotated[_SqlFile | _ObjectStoreFile | _HttpFile | _PythonFile | _ManualFile, Field(discriminator="kind")])


# --- Loading ---------------------------------------------------------------------------------------


def systems_load(directory: str | Path, environ: Mapping[str, str]) -> dict[str, System]:
    """Every system of the directory's `*.yaml` files, by name; SystemsError lists every problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SystemsError([f"{directory}: not a directory of system files"])
    paths = sorted(directory.glob("*.yaml"))
    if not paths:
        raise SystemsError([f"{directory}: no system files (*.yaml) in it"])
    systems: dict[str, System] = {}
    problems: list[str] = []
    for path in paths:
        try:
            system = system_load(path, environ)
        except SystemsError as error:
            problems.extend(error.problems)
            continue
        if system.name in systems:
            problems.append(f"{path}: name: {system.name!r} is also the name of {systems[system.name].file}")
        systems[system.name] = system
    if problems:
        raise SystemsError(problems)
    return systems


def systems_stages(systems: Mapping[str, System]) -> list[list[str]]:
    """The systems in the order their identities allow: the first stage needs only what a request
    carries, each later one what the stages before it find. SystemsError names an identity no system
    provides, and systems that need each other's."""
    provided = {identity: {s.name for s in systems.values() if identity in s.provides} for s in systems.values() for identity in s.needs}
    problems = [f"{system.file or system.name}: identity {identity!r} is needed but no system provides it"
                for system in systems.values() for identity in sorted(system.needs) if not provided[identity]]
    if problems:
        raise SystemsError(problems)
    stages, placed = [], set()
    while len(placed) < len(systems):
        stage = [name for name, system in systems.items()
                 if name not in placed and all(provided[identity] & placed for identity in system.needs)]
        if not stage:
            waiting = ", ".join(name for name in systems if name not in placed)
            raise SystemsError([f"{waiting}: these systems need identities only they find, each waiting for another"])
        stages.append(stage)
        placed.update(stage)
    return stages


def systems_control_check(systems: Mapping[str, System]) -> None:
    """SystemsError names each system of the company's own that waits for identities a system an
    organisation controls finds: for an account the organisation manages, that system is left to it
    and runs for nobody, so the company's would wait for it for ever."""
    problems = [f"{system.file or system.name}: identity {identity!r} is found by {provider.name}, whose data of an account an "
                "organisation manages is the organisation's: declare `organization_controls: true` here too, or have a system of "
                "the company's own find it"
                for system in systems.values() if not system.organization_controls
                for identity in sorted(system.needs)
                for provider in systems.values() if identity in provider.provides and provider.organization_controls]
    if problems:
        raise SystemsError(problems)


def system_load(path: Path, environ: Mapping[str, str]) -> System:
    """One system file, checked, with its `${VAR}`s filled in."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise SystemsError([f"{path}: cannot be read: {error}"]) from None
    except yaml.YAMLError as error:
        raise SystemsError([f"{path}: not YAML: {' '.join(str(error).split())}"]) from None
    if not isinstance(raw, dict):
        raise SystemsError([f"{path}: must be a mapping of name, kind and the system's settings"])
    written = [f"{path}: {where}: must be read from the environment, `${{VAR}}`, never written in the file"
               for where in _secrets_written(raw)]
    raw, missing = _expanded(raw, environ, "")
    if missing:
        raise SystemsError(written + [f"{path}: {where}: ${{{name}}} is not set in the environment" for where, name in missing])
    try:
        spec = _SYSTEM_FILE.validate_python(raw)
    except ValidationError as error:
        raise SystemsError(written + [_problem(path, problem) for problem in error.errors()]) from None
    if written:
        raise SystemsError(written)
    options: dict[str, Any]
    if isinstance(spec, _SqlFile):
        try:
            dataset = Dataset(system=spec.name, tables=spec.tables, organization=spec.organization, age=spec.age)
        except ValidationError as error:
            raise SystemsError([f"{path}: {problem_where(problem) or 'tables'}: {problem_what(problem)}"
                                for problem in error.errors()]) from None
        options = {"dataset": dataset, "url": spec.connection.url, "mask_key": spec.connection.mask_key}
    elif isinstance(spec, _ObjectStoreFile):
        options = {"backend": spec.connection.backend, "storage_options": spec.connection.options}
        if others := sorted(category for category, said in spec.categories.items() if said.others):
            options["others"] = others
        held = _categories_held(path, spec, options)
        if stray := [category for category in spec.categories if category_root(category) not in held]:
            raise SystemsError([f"{path}: categories.{category}: is not a category this store holds ({', '.join(sorted(held))})"
                                for category in stray])
    elif isinstance(spec, _HttpFile):
        api = HttpApi(connection=spec.connection, lookup=spec.lookup, lists=spec.lists, erase=spec.erase)
        if problems := api.problems():
            raise SystemsError([f"{path}: {problem}" for problem in problems])
        options = {"api": api}
    elif isinstance(spec, _ManualFile):
        options = {"instructions": spec.instructions, "categories": spec.categories, "assignee": spec.assignee}
    else:
        options = spec.options
    needs = provides = frozenset()
    if isinstance(spec, _SqlFile):
        provides = frozenset(dataset.identities_provided())
        needs = frozenset(dataset.identities_needed()) - provides - set(REQUEST_IDENTITIES)
    elif isinstance(spec, _ManualFile):
        needs = frozenset(spec.identities) - set(REQUEST_IDENTITIES)
    elif isinstance(spec, _HttpFile):
        provides = frozenset(spec.lookup.provides)
        needs = frozenset({spec.lookup.by}) - set(REQUEST_IDENTITIES)
    elif isinstance(spec, _PythonFile):
        needs, provides = frozenset(spec.needs) - set(REQUEST_IDENTITIES), frozenset(spec.provides)
    recipients = _recipients(path, spec, _categories_held(path, spec, options)) if spec.recipients else ()
    return System(name=spec.name, connector_class=spec.class_, options=options, kind=spec.kind, time_limit=spec.time_limit, file=path,
                  needs=needs, provides=provides, recipients=recipients, organization_controls=spec.organization_controls,
                  label=spec.label, places=_places(spec.name, spec.label or Label(label_default(spec.name)), options))


def _places(name: str, title: Label, options: Mapping[str, Any]) -> dict[str, tuple[Label, Mapping[str, Label | str]]]:
    """A system's places (its tables, or an API's listings) in words after the system's (`title`),
    in every language the file gives, with their fields' labels, by the `system` their records
    carry (`<system>.<table>`)."""
    declared = options["dataset"].labels() if "dataset" in options else options["api"].labels() if "api" in options else {}
    return {f"{name}.{place}": (title.joined(place_label or Label(label_default(place).lower())), fields)
            for place, (place_label, fields) in declared.items()}


def _categories_held(path: Path, spec: _File, options: Mapping[str, Any]) -> frozenset[str]:
    """The categories a system can hold: from its file, or, for a class of its own, the class's
    `categories` (all of the taxonomy's when the class leaves them to its instances)."""
    if isinstance(spec, _SqlFile):
        return options["dataset"].categories()
    if isinstance(spec, _HttpFile):
        return options["api"].categories()
    if isinstance(spec, _ManualFile):
        return frozenset(spec.categories)
    try:
        declared = import_string(spec.class_).categories
    except (ImportError, AttributeError) as error:
        raise SystemsError([f"{path}: class: cannot be imported to read its categories: {error}"]) from None
    return frozenset(declared) or frozenset(category_ids())


def _recipients(path: Path, spec: _File, held: frozenset[str]) -> tuple[Recipient, ...]:
    """The file's recipients, each with the categories it receives filled in; SystemsError names
    every rule a recipient breaks across its keys."""
    problems, recipients = [], []
    for index, recipient in enumerate(spec.recipients):
        where = f"{path}: recipients[{index}]"
        for position, category in enumerate(recipient.categories or ()):
            if category not in held:
                problems.append(f"{where}.categories[{position}]: {category!r} is not a category this system holds "
                                f"({', '.join(sorted(held))})")
        if recipient.safeguard is None and transfer_area(recipient.country) == "third_country":
            with translation.override("en"):  # the operator's message, in English whatever language is active
                country = str(COUNTRIES[recipient.country])
            problems.append(f"{where}.safeguard: is required, since {country} ({recipient.country}) is outside "
                            f"the EEA and no adequacy decision covers it: one of {', '.join(SAFEGUARDS)}")
        if recipient.safeguard_detail is not None and recipient.safeguard is None:
            problems.append(f"{where}.safeguard_detail: describes a safeguard, but `safeguard` names none")
        recipients.append(recipient.model_copy(update={"categories": recipient.categories or tuple(sorted(held))}))
    if problems:
        raise SystemsError(problems)
    return tuple(recipients)


def _secrets_written(raw: Mapping[str, Any]) -> list[str]:
    """Where a recipient's webhook secret is written in the file rather than read from the
    environment (a `${VAR}` alone, without a default)."""
    recipients = raw.get("recipients")
    written = []
    for index, recipient in enumerate(recipients if isinstance(recipients, list) else []):
        notify = recipient.get("notify") if isinstance(recipient, dict) else None
        webhook = notify.get("webhook") if isinstance(notify, dict) else None
        secret = webhook.get("secret") if isinstance(webhook, dict) else None
        variable = VARIABLE.fullmatch(secret) if isinstance(secret, str) else None
        if secret is not None and (variable is None or variable[2] is not None):
            written.append(f"recipients[{index}].notify.webhook.secret")
    return written


def _expanded(value: Any, environ: Mapping[str, str], where: str) -> tuple[Any, list[tuple[str, str]]]:
    """The value with `${VAR}` and `${VAR:-default}` filled in from `environ`, and the (path, variable)
    of each variable that is unset and has no default. A variable set but empty counts as unset."""
    missing: list[tuple[str, str]] = []
    if isinstance(value, str):
        def fill(match: re.Match) -> str:
            name, default = match[1], match[2]
            if environ.get(name):
                return environ[name]
            if default is None:
                missing.append((where or "the file", name))
            return default or ""

        return VARIABLE.sub(fill, value), missing
    if isinstance(value, dict):
        filled = {}
        for key, item in value.items():
            filled[key], inner = _expanded(item, environ, f"{where}.{key}".lstrip("."))
            missing += inner
        return filled, missing
    if isinstance(value, list):
        filled_list = []
        for index, item in enumerate(value):
            filled_item, inner = _expanded(item, environ, f"{where}[{index}]")
            filled_list.append(filled_item)
            missing += inner
        return filled_list, missing
    return value, missing


def _problem(path: Path, problem: dict) -> str:
    """`FILE: path: what` from one of pydantic's errors (whose path starts with the kind it tried)."""
    where = problem_where(problem, skip=1 if problem["loc"] and problem["loc"][0] in KINDS else 0)
    kind = problem["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        where, what = "kind", f"must be one of {', '.join(KINDS)}"
    elif kind == "extra_forbidden" and "." not in where and "[" not in where:
        what = "is not a setting of this kind of system"
    elif kind == "string_pattern_mismatch" and where == "name":
        what = "must be lower case letters, digits and underscores, starting with a letter (at most 40)"
    elif kind == "string_pattern_mismatch" and where == "class":
        what = "must be the dotted path of a class"
    elif kind == "bool_type":
        what = "must be true or false"
    else:
        what = problem_what(problem)
    return f"{path}: {where}: {what}" if where else f"{path}: {what}"
