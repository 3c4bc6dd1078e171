"""Fides (fideslang) dataset files converted to system files (contract §10, `systems import-fides`).

A Fides dataset lists collections and their fields; each field carries fideslang data categories
and, under `fides_meta` (`fidesops_meta` in older files), how a privacy request reaches it: an
identity, a primary key, references to other fields, a masking hint. The conversion keeps what a
system file of kind `sql` can say and writes a comment for everything it leaves out, so the
printed file is a proposal that a person reads before using it:

- collections become tables, fields columns, through CATEGORY_MAPPINGS (docs/fides-categories.md
  is generated from it: `python -m connectors.fides > docs/fides-categories.md`);
- `identity: email` (or `phone_number`, or any other) makes a table found by that column;
- a reference between collections of the dataset makes the table holding the referring column a
  child of the other (`parent:`), whose primary key must be the referenced field; a reference into
  another dataset makes an identity (or, pointing `to` it, a `provides:`) shared with that system;
- masking hints become a column's `erase:` where one means the same; the rest become comments.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# --- The category table ---------------------------------------------------------------------------

COLUMN, LAST4, SECRET, NOT_EXPORTED = "column", "last4", "secret", "not exported"


@dataclass(frozen=True)
class CategoryMapping:
    """How fields of one fideslang data category (and of every finer one not listed) are converted:
    `how` is a column, a column shown by its last four characters, a secret, or not exported."""

    fides: str
    category: str | None
    how: str = COLUMN
    why: str = ""
    section: str = ""


def _section(title: str, *rows: tuple[str, str | None, str] | tuple[str, str | None, str, str]) -> list[CategoryMapping]:
    return [CategoryMapping(*row, section=title) for row in rows]


_GENERAL = "fideslang's most general label for the person's data; a finer one in the dataset says more"
_NOT_THE_PERSONS = "the system's own data, not about the person"
_ASSIGNED_ID = "an identifier the system assigns, which links rows"
_CARD = "a card or account number: only its last four characters leave the database"
_AUTHENTICATION = "authentication data: reported as set, never read"
_HEALTH = "health data: a finer split of demographic, which it rolls up to"
_GOVERNMENT_ID = "identity documents: a finer split of name_contact, which it rolls up to"
_PROFESSIONAL = "work and employer: a finer split of name_contact, which it rolls up to"
_BIOMETRICS = "biometric readings: a finer split of other_input, which it rolls up to"

CURRENT = "The current taxonomy, with the keys it deprecated"
OLDER = "Keys of older fideslang versions, since renamed"
FIRST = "The first taxonomy (`user.provided…`, `user.derived…`, `account…`), used by early fidesops datasets"

# Every fideslang category the converter knows. A category not listed takes the row of its nearest
# listed parent; one with no listed parent is refused, so a dataset is never half-understood.
CATEGORY_MAPPINGS: tuple[CategoryMapping, ...] = (
    *_section(
        CURRENT,
        ("system", None, NOT_EXPORTED, _NOT_THE_PERSONS),
        ("system.authentication", None, NOT_EXPORTED, "data the system controls access with, not the person's"),
        ("system.operations", None, NOT_EXPORTED, "keys, timestamps and flags the system runs on"),
        ("user", "interactions.device_usage", COLUMN, _GENERAL),
        ("user.account", "interactions.account_history", COLUMN, "account registration and activity"),
        ("user.account.password", "credentials", SECRET, "not a fideslang key, but used in datasets; " + _AUTHENTICATION),
        ("user.account.settings", "interactions.device_usage", COLUMN, "settings"),
        ("user.account.username", "name_contact", COLUMN, "the name the person goes by in the product"),
        ("user.authorization", "credentials", SECRET, _AUTHENTICATION),
        ("user.authorization.biometric", "credentials", SECRET, _AUTHENTICATION),
        ("user.authorization.biometrics", "credentials", SECRET, _AUTHENTICATION),
        ("user.authorization.credentials", "credentials", SECRET, _AUTHENTICATION),
        ("user.authorization.password", "credentials", SECRET, _AUTHENTICATION),
        ("user.behavior", "interactions.device_usage", COLUMN, "how the person uses the product"),
        ("user.behavior.browsing_history", "interactions.browse_history", COLUMN),
        ("user.behavior.media_consumption", "content_consumption", COLUMN),
        ("user.behavior.purchase_history", "interactions.account_history", COLUMN, "purchases"),
        ("user.behavior.search_history", "searches_commands", COLUMN),
        ("user.biometric", "other_input.biometrics", COLUMN, _BIOMETRICS),
        ("user.biometric.fingerprint", "other_input.biometrics", COLUMN, _BIOMETRICS),
        ("user.biometric.health", "demographic.health", COLUMN, _HEALTH),
        ("user.biometric.retinal", "other_input.biometrics", COLUMN, _BIOMETRICS),
        ("user.biometric.voice", "voice", COLUMN),
        ("user.biometrics", "other_input.biometrics", COLUMN, _BIOMETRICS),
        ("user.biometrics.fingerprint", "other_input.biometrics", COLUMN, _BIOMETRICS),
        ("user.biometrics.retinal", "other_input.biometrics", COLUMN, _BIOMETRICS),
        ("user.biometrics.voice", "voice", COLUMN),
        ("user.children", "contacts_relationships", COLUMN, "data about the person's children"),
        ("user.children.children_under_thirteen", "contacts_relationships", COLUMN, "data about the person's children"),
        ("user.children.thirteen_to_sixteen", "contacts_relationships", COLUMN, "data about the person's children"),
        ("user.childrens", "contacts_relationships", COLUMN, "data about the person's children"),
        ("user.contact", "name_contact", COLUMN),
        ("user.contact.address", "name_contact", COLUMN),
        ("user.contact.address.city", "name_contact", COLUMN, "part of a postal address"),
        ("user.contact.address.country", "name_contact", COLUMN, "part of a postal address"),
        ("user.contact.address.mailing_address", "name_contact", COLUMN),
        ("user.contact.address.postal_code", "name_contact", COLUMN, "part of a postal address"),
        ("user.contact.address.state", "name_contact", COLUMN, "part of a postal address"),
        ("user.contact.address.street", "name_contact", COLUMN),
        ("user.contact.email", "name_contact", COLUMN),
        ("user.contact.fax_number", "name_contact", COLUMN),
        ("user.contact.organization", "name_contact.professional", COLUMN, _PROFESSIONAL),
        ("user.contact.phone_number", "name_contact", COLUMN),
        ("user.contact.social_url", "name_contact", COLUMN),
        ("user.contact.url", "name_contact", COLUMN),
        ("user.content", "content", COLUMN),
        ("user.content.private", "content", COLUMN),
        ("user.content.public", "content", COLUMN),
        ("user.content.self_image", "images", COLUMN),
        ("user.criminal_history", "demographic.criminal_history", COLUMN, "a finer split of demographic, which it rolls up to"),
        ("user.demographic", "demographic", COLUMN),
        ("user.demographic.age_range", "demographic", COLUMN),
        ("user.demographic.citizenship_or_immigration_status", "demographic", COLUMN),
        ("user.demographic.date_of_birth", "demographic", COLUMN),
        ("user.demographic.gender", "demographic", COLUMN),
        ("user.demographic.language", "demographic", COLUMN),
        ("user.demographic.marital_status", "demographic", COLUMN),
        ("user.demographic.philosophical_belief", "demographic", COLUMN),
        ("user.demographic.political_opinion", "demographic", COLUMN),
        ("user.demographic.profile", "interests", COLUMN, "profile and preferences"),
        ("user.demographic.protected_classifications", "demographic", COLUMN),
        ("user.demographic.race_ethnicity", "demographic", COLUMN),
        ("user.demographic.religious_belief", "demographic", COLUMN),
        ("user.demographic.sexual_orientation", "demographic", COLUMN),
        ("user.demographic.union_membership", "demographic", COLUMN),
        ("user.device", "interactions.device_config", COLUMN),
        ("user.device.cookie", "interactions.device_config", COLUMN),
        ("user.device.cookie_id", "interactions.device_config", COLUMN),
        ("user.device.device_id", "interactions.device_config", COLUMN),
        ("user.device.ip_address", "interactions.device_config", COLUMN),
        ("user.device.sensor", "other_input", COLUMN),
        ("user.device.telemetry", "interactions.device_usage", COLUMN, "product performance"),
        ("user.financial", "payment", COLUMN),
        ("user.financial.bank_account", "payment", LAST4, _CARD),
        ("user.financial.credit_card", "payment", LAST4, _CARD),
        ("user.government_id", "name_contact.government_id", COLUMN, _GOVERNMENT_ID),
        ("user.government_id.birth_certificate", "name_contact.government_id", COLUMN, _GOVERNMENT_ID),
        ("user.government_id.drivers_license_number", "name_contact.government_id", COLUMN, _GOVERNMENT_ID),
        ("user.government_id.immigration", "name_contact.government_id", COLUMN, _GOVERNMENT_ID),
        ("user.government_id.national_identification_number", "name_contact.government_id", COLUMN, _GOVERNMENT_ID),
        ("user.government_id.passport_number", "name_contact.government_id", COLUMN, _GOVERNMENT_ID),
        ("user.government_id.vehicle_registration", "name_contact.government_id", COLUMN, _GOVERNMENT_ID),
        ("user.health", "demographic.health", COLUMN, _HEALTH),
        ("user.health.baby_formula", "demographic.health", COLUMN, _HEALTH),
        ("user.health.condition", "demographic.health", COLUMN, _HEALTH),
        ("user.health.genetic", "demographic.health", COLUMN, _HEALTH),
        ("user.health.insurance_beneficiary_id", "demographic.health", COLUMN, _HEALTH),
        ("user.health.maternity_clothing", "demographic.health", COLUMN, _HEALTH),
        ("user.health.medical_diagnosis", "demographic.health", COLUMN, _HEALTH),
        ("user.health.medications", "demographic.health", COLUMN, _HEALTH),
        ("user.health.prescriptions", "demographic.health", COLUMN, _HEALTH),
        ("user.health.record_id", "demographic.health", COLUMN, _HEALTH),
        ("user.health.reproductive_or_sexual", "demographic.health", COLUMN, _HEALTH),
        ("user.health.social_psychological_behavioral", "demographic.health", COLUMN, _HEALTH),
        ("user.health.symptons", "demographic.health", COLUMN, _HEALTH),
        ("user.health.treatment", "demographic.health", COLUMN, _HEALTH),
        ("user.health_and_medical", "demographic.health", COLUMN, _HEALTH),
        ("user.health_and_medical.genetic", "demographic.health", COLUMN, _HEALTH),
        ("user.health_and_medical.insurance_beneficiary_id", "demographic.health", COLUMN, _HEALTH),
        ("user.health_and_medical.record_id", "demographic.health", COLUMN, _HEALTH),
        ("user.job_title", "name_contact.professional", COLUMN, _PROFESSIONAL),
        ("user.location", "location", COLUMN),
        ("user.location.coarse", "location", COLUMN),
        ("user.location.imprecise", "location", COLUMN),
        ("user.location.precise", "location", COLUMN),
        ("user.name", "name_contact", COLUMN),
        ("user.name.first", "name_contact", COLUMN),
        ("user.name.last", "name_contact", COLUMN),
        ("user.payment", "payment", COLUMN),
        ("user.privacy_preferences", "interactions.device_usage", COLUMN, "settings: the person's privacy choices"),
        ("user.professional_information", "name_contact.professional", COLUMN, _PROFESSIONAL),
        ("user.professional_information.job_title", "name_contact.professional", COLUMN, _PROFESSIONAL),
        ("user.professional_information.workplace", "name_contact.professional", COLUMN, _PROFESSIONAL),
        ("user.sensor", "other_input", COLUMN),
        ("user.settings", "interactions.device_usage", COLUMN, "settings"),
        ("user.social", "social", COLUMN),
        ("user.social_activity", "social", COLUMN),
        ("user.telemetry", "interactions.device_usage", COLUMN, "product performance"),
        ("user.unique_id", None, NOT_EXPORTED, _ASSIGNED_ID),
        ("user.unique_id.deterministic", None, NOT_EXPORTED, _ASSIGNED_ID),
        ("user.unique_id.probablistic", None, NOT_EXPORTED, _ASSIGNED_ID),
        ("user.unique_id.pseudonymous", None, NOT_EXPORTED, _ASSIGNED_ID),
        ("user.user_sensor", "other_input", COLUMN),
        ("user.workplace", "name_contact.professional", COLUMN, _PROFESSIONAL),
    ),
    *_section(
        OLDER,
        ("user.biometric_health", "demographic.health", COLUMN, _HEALTH),
        ("user.browsing_history", "interactions.browse_history", COLUMN),
        ("user.credentials", "credentials", SECRET, _AUTHENTICATION),
        ("user.date_of_birth", "demographic", COLUMN),
        ("user.financial.account_number", "payment", LAST4, _CARD),
        ("user.financial.payment_information", "payment", COLUMN),
        ("user.gender", "demographic", COLUMN),
        ("user.genetic", "demographic.health", COLUMN, _HEALTH),
        ("user.media_consumption", "content_consumption", COLUMN),
        ("user.non_specific_age", "demographic", COLUMN),
        ("user.observed", "interactions.device_usage", COLUMN),
        ("user.organization", "name_contact.professional", COLUMN, _PROFESSIONAL),
        ("user.political_opinion", "demographic", COLUMN),
        ("user.profiling", "interests", COLUMN, "inferred interests"),
        ("user.race", "demographic", COLUMN),
        ("user.religious_belief", "demographic", COLUMN),
        ("user.search_history", "searches_commands", COLUMN),
        ("user.sensor_data", "other_input", COLUMN),
        ("user.sexual_orientation", "demographic", COLUMN),
    ),
    *_section(
        FIRST,
        ("account", "interactions.account_history", COLUMN, "data of the person's account"),
        ("account.contact", "name_contact", COLUMN),
        ("account.payment", "payment", COLUMN),
        ("account.payment.financial_account_number", "payment", LAST4, _CARD),
        ("user.derived", "interactions.device_usage", COLUMN, "derived from the person's use of the product"),
        ("user.derived.identifiable.biometric_health", "demographic.health", COLUMN, _HEALTH),
        ("user.derived.identifiable.browsing_history", "interactions.browse_history", COLUMN),
        ("user.derived.identifiable.demographic", "demographic", COLUMN),
        ("user.derived.identifiable.device", "interactions.device_config", COLUMN),
        ("user.derived.identifiable.gender", "demographic", COLUMN),
        ("user.derived.identifiable.location", "location", COLUMN),
        ("user.derived.identifiable.media_consumption", "content_consumption", COLUMN),
        ("user.derived.identifiable.non_specific_age", "demographic", COLUMN),
        ("user.derived.identifiable.organization", "name_contact.professional", COLUMN, _PROFESSIONAL),
        ("user.derived.identifiable.profiling", "interests", COLUMN, "inferred interests"),
        ("user.derived.identifiable.race", "demographic", COLUMN),
        ("user.derived.identifiable.religious_belief", "demographic", COLUMN),
        ("user.derived.identifiable.search_history", "searches_commands", COLUMN),
        ("user.derived.identifiable.sexual_orientation", "demographic", COLUMN),
        ("user.derived.identifiable.social", "social", COLUMN),
        ("user.derived.identifiable.telemetry", "interactions.device_usage", COLUMN, "product performance"),
        ("user.derived.identifiable.unique_id", None, NOT_EXPORTED, _ASSIGNED_ID),
        ("user.derived.identifiable.user_sensor", "other_input", COLUMN),
        ("user.derived.identifiable.workplace", "name_contact.professional", COLUMN, _PROFESSIONAL),
        ("user.derived.nonidentifiable.sensor", "other_input", COLUMN),
        ("user.provided", "interactions.device_usage", COLUMN, _GENERAL),
        ("user.provided.identifiable.biometric", "other_input.biometrics", COLUMN, _BIOMETRICS),
        ("user.provided.identifiable.childrens", "contacts_relationships", COLUMN, "data about the person's children"),
        ("user.provided.identifiable.contact", "name_contact", COLUMN),
        ("user.provided.identifiable.credentials", "credentials", SECRET, _AUTHENTICATION),
        ("user.provided.identifiable.date_of_birth", "demographic", COLUMN),
        ("user.provided.identifiable.financial", "payment", COLUMN),
        ("user.provided.identifiable.financial.account_number", "payment", LAST4, _CARD),
        ("user.provided.identifiable.gender", "demographic", COLUMN),
        ("user.provided.identifiable.genetic", "demographic.health", COLUMN, _HEALTH),
        ("user.provided.identifiable.government_id", "name_contact.government_id", COLUMN, _GOVERNMENT_ID),
        ("user.provided.identifiable.health_and_medical", "demographic.health", COLUMN, _HEALTH),
        ("user.provided.identifiable.job_title", "name_contact.professional", COLUMN, _PROFESSIONAL),
        ("user.provided.identifiable.name", "name_contact", COLUMN),
        ("user.provided.identifiable.non_specific_age", "demographic", COLUMN),
        ("user.provided.identifiable.political_opinion", "demographic", COLUMN),
        ("user.provided.identifiable.race", "demographic", COLUMN),
        ("user.provided.identifiable.religious_belief", "demographic", COLUMN),
        ("user.provided.identifiable.sexual_orientation", "demographic", COLUMN),
        ("user.provided.identifiable.workplace", "name_contact.professional", COLUMN, _PROFESSIONAL),
    ),
)
_BY_KEY = {mapping.fides: mapping for mapping in CATEGORY_MAPPINGS}

# A column of a payment category with one of these names is a card security code: never exported.
SECURITY_CODE_NAMES = ("cvc", "cvc2", "cvv", "cvv2", "csc", "cvn", "security_code", "card_security_code")


def category_mapping(fides_category: str) -> tuple[CategoryMapping, bool] | None:
    """The row for a fideslang category, and whether it is the category's own row (not its nearest
    listed parent's); None when neither the category nor any parent of it is listed."""
    key = fides_category
    while key:
        if key in _BY_KEY:
            return _BY_KEY[key], key == fides_category
        key = key.rpartition(".")[0]
    return None


# --- The dataset file's shape ------------------------------------------------------------------------


class _Shape(BaseModel):
    # A Fides file holds much that the conversion does not need (descriptions, data uses, ...).
    model_config = ConfigDict(extra="ignore")


class _Reference(_Shape):
    dataset: str
    field: str
    direction: Literal["from", "to"] | None = None


class _MaskingHint(_Shape):
    strategy: str


class _FieldMeta(_Shape):
    identity: str | None = None
    primary_key: bool | None = None
    references: list[_Reference] | None = None
    masking_strategy_override: _MaskingHint | None = None
    read_only: bool | None = None


class _Field(_Shape):
    name: str
    data_categories: list[str] | None = None
    fides_meta: _FieldMeta | None = None
    fidesops_meta: _FieldMeta | None = None
    fields: list[_Field] | None = None

    @property
    def meta(self) -> _FieldMeta:
        return self.fides_meta or self.fidesops_meta or _FieldMeta()

    @property
    def meta_key(self) -> str:
        """Where the file spells the field's meta (older files: fidesops_meta)."""
        return "fides_meta" if self.fides_meta or not self.fidesops_meta else "fidesops_meta"


class _CollectionMeta(_Shape):
    skip_processing: bool | None = None
    masking_strategy_override: _MaskingHint | None = None


class _Collection(_Shape):
    name: str
    fields: list[_Field]
    fides_meta: _CollectionMeta | None = None
    fidesops_meta: _CollectionMeta | None = None

    @property
    def meta(self) -> _CollectionMeta:
        return self.fides_meta or self.fidesops_meta or _CollectionMeta()


class _Dataset(_Shape):
    fides_key: str
    collections: list[_Collection]


class _File(_Shape):
    dataset: list[_Dataset]


class FidesError(ValueError):
    """The Fides file, or an argument, cannot be converted; the message is `FILE: path: what`."""


# --- Converting ------------------------------------------------------------------------------------

SYSTEM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
VARIABLE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$")
# Masking hints (`masking_strategy_override.strategy`) that mean what a column's `erase:` means here.
ERASE_BY_STRATEGY = {"null_rewrite": "null", "hash": "mask", "hmac": "mask",
                     "random_string_rewrite": "mask", "string_rewrite": "mask"}
REWRITES = ("random_string_rewrite", "string_rewrite")


def fides_dataset_convert(path: Path, *, name: str, url: str, dataset: str | None = None) -> str:
    """The system file (YAML text with comments) converted from the Fides dataset file at `path`,
    for a system called `name` at database `url`; `dataset` picks one of several datasets in the
    file by its fides_key. FidesError names the file, the path inside it and what is wrong."""
    if not SYSTEM_NAME.match(name):
        raise FidesError(f"--name: {name!r} must be lower case letters, digits and underscores, "
                         "starting with a letter (at most 40)")
    connection = _connection_lines(url, name)
    spec, where = _dataset_read(path, dataset)
    tables = _Conversion(spec, where, str(path)).lines()
    header = [
        f"# Converted by `manage.py systems import-fides` from the Fides dataset {spec.fides_key} ({path.name}).",
        "# The comments say what was left out and why: read them before using the file. A table's rows are",
        "# erased by deleting them (the default) unless it says otherwise; Fides instead masks the fields its",
        "# erasure policy names, so give `erase: null` or `erase: mask` to tables whose rows must stay.",
        f"name: {name}",
        "kind: sql",
        *connection,
        "tables:",
    ]
    return "\n".join([*header, *tables]) + "\n"


def _connection_lines(url: str, name: str) -> list[str]:
    """The file's connection: the URL as given when it holds no password, else a ${VAR} for it."""
    if VARIABLE.match(url):
        return [f"connection: {{url: {_scalar(url)}}}"]
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise FidesError(f"--url: {url!r} is not a database URL (dialect://user@host/database)") from None
    secret_options = [key for key in parsed.query if re.search(r"pass|pwd|secret|token|key", key, re.IGNORECASE)]
    if (parsed.password is None or VARIABLE.match(parsed.password)) and not secret_options:
        return [f"connection: {{url: {_scalar(url)}}}"]
    variable = f"{name.upper()}_DATABASE_URL"
    return [f"# The --url given (a {parsed.get_backend_name()} database) holds a password, which never goes in a file:",
            f"# set {variable} to it where the product runs.",
            f"connection: {{url: {_scalar('${' + variable + '}')}}}"]


def _dataset_read(path: Path, key: str | None) -> tuple[_Dataset, str]:
    """The dataset of the file (the one called `key` when the file holds several), and its path."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise FidesError(f"{path}: cannot be read: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise FidesError(f"{path}: cannot be read: {error}") from None
    except yaml.YAMLError as error:
        raise FidesError(f"{path}: not YAML: {' '.join(str(error).split())}") from None
    if not isinstance(raw, dict) or "dataset" not in raw:
        raise FidesError(f"{path}: not a Fides dataset file: it needs a top-level `dataset:` list")
    try:
        datasets = _File.model_validate(raw).dataset
    except ValidationError as error:
        problem = error.errors()[0]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem["loc"]).lstrip(".")
        what = "is required" if problem["type"] == "missing" else problem["msg"]
        raise FidesError(f"{path}: {where}: {what}") from None
    keys = [d.fides_key for d in datasets]
    if key is not None:
        if key not in keys:
            raise FidesError(f"{path}: no dataset {key!r}; the file holds {', '.join(keys) or 'none'}")
        return datasets[keys.index(key)], f"dataset[{keys.index(key)}]"
    if len(datasets) != 1:
        raise FidesError(f"{path}: dataset: holds {len(datasets)} datasets ({', '.join(keys)}); choose one with --dataset KEY")
    return datasets[0], "dataset[0]"


class _Label(NamedTuple):
    """One data category on a field (or on a field nested in it, at `path`), and its row."""

    fides: str
    path: tuple[str, ...]
    mapping: CategoryMapping
    own: bool  # the category's own row, not a parent's


@dataclass
class _Column:
    """What one top-level field of a collection becomes."""

    name: str
    category: str | None = None  # None: not in the file
    how: str = NOT_EXPORTED
    erase: str | None = None
    notes: list[str] = field(default_factory=list)  # comment lines written above it
    reason: str = ""  # why it is not in the file


@dataclass(frozen=True)
class _Identity:
    """A way a table finds the person's rows: identity `name` in `column`."""

    name: str
    column: str
    exact: bool = False  # match: exact (email is matched ignoring case, phone exactly, by default)
    shared: str = ""  # for an identity shared with another dataset's system: what that system must say

    @property
    def rank(self) -> int:
        """The order a table's identities are preferred in: email, phone, any other, another system's."""
        return 3 if self.shared else {"email": 0, "phone": 1}.get(self.name, 2)


@dataclass(frozen=True)
class _Edge:
    """A reference between two collections of the dataset: `down` is found from `up`'s rows, by
    its column `down_path` holding values of `up`'s column `up_path`."""

    up: str
    up_path: tuple[str, ...]
    down: str
    down_path: tuple[str, ...]


@dataclass
class _Table:
    """A collection on its way to a table."""

    spec: _Collection
    where: str
    columns: list[_Column]
    key: list[str]  # the declared primary key
    identities: list[_Identity] = field(default_factory=list)
    provides: list[_Identity] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parent: tuple[str, str] | None = None
    chosen_key: str | None = None  # the key a child's reference needs, when none is declared
    blocked: list[str] = field(default_factory=list)  # why references into it cannot be followed

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def holds_data(self) -> bool:
        return any(c.category for c in self.columns) or bool(self.provides)


class _Conversion:
    """One dataset converted: its collections read, the ways to reach each worked out, and the
    tables written."""

    def __init__(self, spec: _Dataset, where: str, file: str) -> None:
        self.spec, self.file = spec, file
        self.edges: list[_Edge] = []
        self.tables: dict[str, _Table] = {}
        for index, collection in enumerate(spec.collections):
            at = f"{where}.collections[{index}]"
            if collection.name in self.tables:
                raise self._error(f"{at}.name", f"{collection.name!r} is the name of another collection too")
            self.tables[collection.name] = _Table(collection, at, [], [f.name for f in collection.fields if f.meta.primary_key])
        for table in self.tables.values():
            table.columns = [self._column(f, f"{table.where}.fields[{i}]") for i, f in enumerate(table.spec.fields)]
            for index, spec_field in enumerate(table.spec.fields):
                self._ways_in(table, spec_field, f"{table.where}.fields[{index}]")
        self._reach()

    def _error(self, where: str, what: str) -> FidesError:
        return FidesError(f"{self.file}: {where}: {what}")

    # --- Fields

    def _column(self, spec: _Field, where: str) -> _Column:
        column = _Column(spec.name)
        labels = list(self._categories(spec, where, ()))
        if not labels:
            column.reason = "no data category"
        else:
            self._categorise(column, spec, labels)
        self._erase_hint(column, spec)
        return column

    def _categories(self, spec: _Field, where: str, path: tuple[str, ...]) -> Iterator[_Label]:
        """The labels of the field and of every field nested in it."""
        for index, category in enumerate(spec.data_categories or ()):
            found = category_mapping(category)
            if found is None:
                raise self._error(f"{where}.data_categories[{index}]", f"{category!r} is not a fideslang data category "
                                  "the converter knows (docs/fides-categories.md)")
            yield _Label(category, path, *found)
        for index, nested in enumerate(spec.fields or ()):
            yield from self._categories(nested, f"{where}.fields[{index}]", (*path, nested.name))

    def _categorise(self, column: _Column, spec: _Field, labels: list[_Label]) -> None:
        """The column's category and how it leaves the database, from every label it carries."""
        exported = [label for label in labels if label.mapping.how != NOT_EXPORTED]
        if not exported:
            column.reason = f"{labels[0].fides} ({labels[0].mapping.why})"
            return
        rank = {SECRET: 0, LAST4: 1, COLUMN: 2}
        chosen = min(exported, key=lambda label: rank[label.mapping.how])  # the first of the strictest
        column.category, column.how = chosen.mapping.category, chosen.mapping.how
        if not chosen.own:
            column.notes.append(f"{chosen.fides} is not listed; its parent {chosen.mapping.fides} is")
        others = sorted({label.mapping.category for label in exported} - {column.category})
        if others:
            column.notes.append(f"also labelled as {', '.join(others)}: a column has one category here")
        if spec.fields:
            paths = dict.fromkeys(label.path for label in labels if label.path)
            nested = ", ".join(".".join((spec.name, *path)) for path in paths)
            column.notes.append(f"its nested fields ({nested}) are read as this one column")
            if column.how == LAST4:
                column.how = SECRET
                column.notes.append(f"{'.'.join((spec.name, *chosen.path))} holds a card or account number, which cannot be cut "
                                    "to its last four inside the column: the whole column is a secret")
        if column.how != SECRET and column.category.partition(".")[0] == "payment" and spec.name.lower() in SECURITY_CODE_NAMES:
            column.how = SECRET
            column.notes.append("a card security code, by its name: a secret")

    def _erase_hint(self, column: _Column, spec: _Field) -> None:
        """The column's `erase:` from the field's masking hint, or a comment saying why not."""
        hint = spec.meta.masking_strategy_override
        if hint is not None:
            strategy = hint.strategy
            if not column.category:
                column.reason += f"; its masking hint ({strategy}) is not needed"
            elif column.how == SECRET:
                column.notes.append(f"Fides masks it with {strategy}; a secret is erased with its table")
            elif strategy in ERASE_BY_STRATEGY:
                column.erase = ERASE_BY_STRATEGY[strategy]
                if strategy in REWRITES:
                    column.notes.append(f"Fides rewrites it ({strategy}); here it is masked (a keyed hash) instead")
            else:
                column.notes.append(f"Fides masks it with {strategy}, which has no equivalent here: the table's erase applies")
        if spec.meta.read_only and column.category:
            column.notes.append("read_only in Fides, whose erasures leave it alone: check the table's erase suits it")
        for path, nested in _nested(spec):
            if nested.meta.masking_strategy_override is not None:
                column.notes.append(f"Fides masks {'.'.join(path)} with {nested.meta.masking_strategy_override.strategy}; "
                                    "the column is erased as a whole")

    # --- Identities and references

    def _ways_in(self, table: _Table, spec: _Field, where: str) -> None:
        """The identities the field gives its table, and the references it makes."""
        if spec.meta.identity:
            table.identities.append(_identity(spec.meta.identity, spec.name))
        for path, nested in _nested(spec):
            dotted = ".".join(path)
            if nested.meta.identity:
                table.notes.append(f"{dotted} is the identity {nested.meta.identity}, "
                                   "but a nested field cannot be looked up here")
            if nested.meta.references:
                table.notes.append(f"{dotted} references other fields, but a nested field cannot be joined on here")
        for index, reference in enumerate(spec.meta.references or ()):
            at = f"{where}.{spec.meta_key}.references[{index}].field"
            collection, _, rest = reference.field.partition(".")
            if not collection or not rest:
                raise self._error(at, f"{reference.field!r} must name a collection and its field: collection.field")
            path = tuple(rest.split("."))
            if reference.dataset != self.spec.fides_key:
                self._across(table, spec.name, reference, collection, path)
                continue
            if collection not in self.tables:
                raise self._error(at, f"{reference.field!r}: the dataset has no collection {collection!r}")
            if not _field_at(self.tables[collection].spec.fields, path):
                raise self._error(at, f"{reference.field!r}: collection {collection!r} has no field {'.'.join(path)!r}")
            here, there = (table.name, (spec.name,)), (collection, path)
            # "from": values flow from the referenced field into this one, so this table is found
            # from that one's rows; "to" the other way; no direction either way, tried in that order.
            if reference.direction in ("from", None):
                self.edges.append(_Edge(*there, *here))
            if reference.direction in ("to", None):
                self.edges.append(_Edge(*here, *there))

    def _across(self, table: _Table, column: str, reference: _Reference, collection: str, path: tuple[str, ...]) -> None:
        """A reference into another dataset: an identity that system provides, or one this provides."""
        name = _identity_name(reference.dataset, collection, *path)
        field_name = ".".join(path)
        source = f"{reference.dataset}.{reference.field}"
        if reference.direction == "to":
            table.provides.append(_Identity(name, column, exact=True, shared=(
                f"{column} holds values of {source}: the system of dataset {reference.dataset} must say "
                f"`identity: {{{name}: {field_name}, match: exact}}` on its table {collection}")))
        else:
            table.identities.append(_Identity(name, column, exact=True, shared=(
                f"found by values of {source}: the system of dataset {reference.dataset} must say "
                f"`provides: {{{name}: {field_name}}}` on its table {collection}")))

    def _reach(self) -> None:
        """Each table's way to the person: its own identity, else a parent found breadth first from
        the tables that have one, through references whose ends the format can join."""
        live = {name: t for name, t in self.tables.items() if not t.spec.meta.skip_processing}
        queue = [t for t in live.values() if t.identities]
        reached = {t.name for t in queue}
        while queue:
            up = queue.pop(0)
            for edge in (e for e in self.edges if e.up == up.name and e.down in live and e.down not in reached):
                down = live[edge.down]
                problem = self._join_problem(edge, up)
                if problem:
                    down.blocked.append(problem)
                    continue
                if not up.key:
                    up.chosen_key = edge.up_path[0]
                down.parent = (up.name, edge.down_path[0])
                reached.add(down.name)
                queue.append(down)

    def _join_problem(self, edge: _Edge, up: _Table) -> str | None:
        """Why `edge` cannot make `up` the parent of its other end, or None when it can."""
        for table, path in ((edge.up, edge.up_path), (edge.down, edge.down_path)):
            if len(path) > 1:
                return f"Fides finds it through the nested field {table}.{'.'.join(path)}, which cannot be joined on here"
        key = up.key or ([up.chosen_key] if up.chosen_key else [])
        if key and key != [edge.up_path[0]]:
            return (f"Fides finds it through {up.name}.{edge.up_path[0]}, which is not {up.name}'s primary key "
                    f"({', '.join(key)}); here a table is found only by a column of its own holding its parent's primary key")
        return None

    # --- Writing

    def lines(self) -> list[str]:
        """The `tables:` list's lines, in the dataset's order, with a comment for each left out."""
        kept = self._kept()
        if not kept:
            raise FidesError(f"{self.file}: dataset {self.spec.fides_key}: no collection that holds data about the person can be "
                             "reached from an identity, so there is nothing to convert")
        lines: list[str] = []
        for table in self.tables.values():
            if table.name in kept:
                lines += self._table_lines(table, kept)
            else:
                lines += _comment(2, f"{table.name}: left out: {self._left_out_reason(table)}.")
        return lines

    def _kept(self) -> set[str]:
        """The tables written: those reached that hold data, and every parent on their way."""
        reached = {t.name for t in self.tables.values() if (t.identities and not t.spec.meta.skip_processing) or t.parent}
        kept = {name for name in reached if self.tables[name].holds_data}
        for name in list(kept):
            while self.tables[name].parent:
                name = self.tables[name].parent[0]
                kept.add(name)
        return kept

    def _left_out_reason(self, table: _Table) -> str:
        if table.spec.meta.skip_processing:
            return "skip_processing: Fides leaves it out of privacy requests"
        if not table.holds_data:
            return "it holds no data about the person"
        why = "; ".join(table.blocked) or "it has no identity field and no reference chain to a collection with one"
        return f"it cannot be reached from the person: {why}"

    def _table_lines(self, table: _Table, kept: set[str]) -> list[str]:
        lines = [f"  - name: {_scalar(table.name)}"]
        if not table.holds_data:
            children = ", ".join(t.name for t in self.tables.values() if t.name in kept and t.parent and t.parent[0] == table.name)
            lines += _comment(4, f"it holds no data about the person: it is here as the way to {children}")
        for note in table.notes:
            lines += _comment(4, note)
        key = table.key or ([table.chosen_key] if table.chosen_key else [])
        if len(key) > 1:
            lines.append(f"    primary_key: [{', '.join(_scalar(k) for k in key)}]")
        elif key:
            if not table.key:
                lines += _comment(4, "primary_key: the dataset declares none; this is the field its children reference, "
                                     "which must be unique")
            lines.append(f"    primary_key: {_scalar(key[0])}")
        elif "id" not in {f.name for f in table.spec.fields}:
            lines += _comment(4, "primary_key: the dataset declares none, and id (the default) is not one of its fields: "
                                 "name the key")
        if table.identities:
            lines += self._identity_lines(table)
        else:
            parent, column = table.parent
            lines.append(f"    parent: {{table: {_scalar(parent)}, column: {_scalar(column)}}}")
        if table.provides:
            for provided in table.provides:
                lines += _comment(4, f"provides: {provided.shared}")
            lines.append(f"    provides: {{{', '.join(f'{_scalar(p.name)}: {_scalar(p.column)}' for p in table.provides)}}}")
        hint = table.spec.meta.masking_strategy_override
        if hint is not None and hint.strategy == "delete":
            lines += _comment(4, "erase: Fides deletes this collection's rows (masking_strategy_override: delete)")
            lines.append("    erase: delete")
        elif hint is not None:
            lines += _comment(4, f"erase: Fides erases this collection by {hint.strategy}, which has no equivalent here")
        lines += self._column_lines(table)
        return lines

    def _identity_lines(self, table: _Table) -> list[str]:
        """The table's most preferred identity, and a comment for each other one."""
        chosen, *others = sorted(table.identities, key=lambda identity: identity.rank)
        lines = _comment(4, f"identity: {chosen.shared}") if chosen.shared else []
        match = ", match: exact" if chosen.exact else ""
        lines.append(f"    identity: {{{_scalar(chosen.name)}: {_scalar(chosen.column)}{match}}}")
        for other in others:
            lines += _comment(4, f"also found by {other.name} in {other.column}: a table has one identity column here")
        return lines

    def _column_lines(self, table: _Table) -> list[str]:
        columns, secrets, left_out = [], [], []
        for column in table.columns:
            notes = [line for note in column.notes for line in _comment(6, f"{column.name}: {note}")]
            if column.how == SECRET:
                name = _scalar(column.name)
                secrets += [*notes, f"      {name}: {{column: {name}, category: {column.category}}}"]
            elif column.category:
                options = [f"category: {column.category}"]
                options += ["transform: last4"] if column.how == LAST4 else []
                # `erase: null` is YAML's null, which the system file reads as the null strategy.
                options += [f"erase: {column.erase}"] if column.erase else []
                value = column.category if len(options) == 1 else "{" + ", ".join(options) + "}"
                columns += [*notes, f"      {_scalar(column.name)}: {value}"]
            else:
                left_out += _comment(4, f"{column.name}: not exported: {column.reason}")
        lines = ["    columns:", *columns] if columns else []
        lines += ["    secrets:", *secrets] if secrets else []
        return lines + left_out


def _comment(indent: int, text: str) -> list[str]:
    """`text` as YAML comment lines at `indent`, wrapped to the file's width."""
    lines = textwrap.wrap(text, width=110 - indent, break_long_words=False, break_on_hyphens=False)
    return [f"{' ' * indent}# {lines[0]}", *(f"{' ' * indent}#   {line}" for line in lines[1:])]


def _nested(spec: _Field, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], _Field]]:
    """Every field nested in `spec`, with its path from the top-level field's name."""
    for nested in spec.fields or ():
        at = (*(path or (spec.name,)), nested.name)
        yield at, nested
        yield from _nested(nested, at)


def _field_at(fields: list[_Field], path: tuple[str, ...]) -> _Field | None:
    found = next((f for f in fields if f.name == path[0]), None)
    if found is None or len(path) == 1:
        return found
    return _field_at(found.fields or [], path[1:])


def _identity(kind: str, column: str) -> _Identity:
    """A Fides identity of a column: email and phone are the product's own; any other is matched exactly."""
    if kind in ("email", "phone_number"):
        return _Identity(kind.removesuffix("_number"), column)
    return _Identity(_identity_name(kind), column, exact=True)


def _identity_name(*parts: str) -> str:
    """An identity name (lower case, digits, underscores) made of `parts`."""
    name = re.sub(r"[^a-z0-9_]+", "_", "_".join(parts).lower()).strip("_")
    return name if re.match(r"[a-z]", name) else f"fides_{name}"


def _scalar(value: str) -> str:
    """`value` as a YAML scalar: bare when YAML reads it back as the same text, else quoted."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)


# --- The reference page ----------------------------------------------------------------------------

_REFERENCE_INTRO = """\
# Fides data categories

How `python manage.py systems import-fides FILE --name NAME --url URL` reads the fideslang data
categories of a Fides dataset file: each category becomes one of this product's category ids
(`dsar/taxonomy.yaml`). This page is generated from the table in `connectors/fides.py`, which the
converter reads, by `python -m connectors.fides > docs/fides-categories.md`; a test fails when the
two disagree.

## How a field is read

- **The most specific row wins.** A category that is not listed takes the row of its nearest
  listed parent (a custom `user.contact.email.work` reads as `user.contact.email`), and the
  printed file says so in a comment. A category with no listed parent at all stops the
  conversion with an error naming the field, so a dataset is never half understood.
- **How** the field leaves the database: *column* is `columns: {field: id}`; *last4* is
  `{category: id, transform: last4}`, so only the last four characters are exported; *secret* goes
  under `secrets:`, reported as set and never read; *not exported* is left out of the file, with
  a comment saying why.
- **Several categories on one field**: a secret wins, then last4, then the first one listed; the
  others are named in a comment, since a column has one category here.
- **Nested fields** (document stores, JSON columns) make one column of their top-level field; the
  categories of every nested field count. When one of them is a secret or a card number, the whole
  column is a secret.
- **Card security codes**: a field of a payment category named `cvc`, `cvc2`, `cvv`, `cvv2`,
  `csc`, `cvn`, `security_code` or `card_security_code` is a secret.
- Only the fields' own `data_categories` are read; those a dataset or collection declares for all
  its fields are not.
- A category id with a dot after one of the taxonomy's ids (`demographic.health`) is a finer split
  of that category: reports roll it up to its parent.

## The rest of the conversion

- `identity: email` makes `identity: {email: column}`; `phone_number` makes `{phone: column}`; any
  other identity NAME makes `{NAME: column, match: exact}`. A table has one identity column: the
  others are named in a comment.
- A reference between two collections of the dataset makes the collection whose rows are found
  from the other's a child of it (`parent: {table, column}`), when its column holds values of the
  parent's primary key. `direction: from` on a field means its collection is the child; `to`, the
  referenced collection is; a reference without a direction is tried both ways. A reference that
  starts from a field other than the parent's primary key cannot be followed, and a collection
  reachable only through one is left out, with the reason.
- A reference into another dataset D makes `identity: {D_collection_field: column, match: exact}`
  (`direction: to` makes `provides:` instead), with a comment saying what D's system must declare.
- Masking hints: `null_rewrite` makes `erase: null`; `hash` and `hmac` make `erase: mask`;
  `random_string_rewrite` and `string_rewrite` make `erase: mask` with a comment; any other is a
  comment. A collection's `masking_strategy_override: delete` makes `erase: delete`.
- A collection with `skip_processing: true`, one that cannot be reached from an identity, and one
  with no data about the person (unless it links a table that has some to its parent) are left
  out, each with a comment.
- The connection URL is written only when it holds no password; otherwise the file reads it from
  `${NAME_DATABASE_URL}`.
"""


def categories_reference() -> str:
    """docs/fides-categories.md: how fields are read, then the table, a section per taxonomy era."""
    lines = [_REFERENCE_INTRO.rstrip("\n")]
    for section in dict.fromkeys(m.section for m in CATEGORY_MAPPINGS):
        lines += ["", f"## {section}", "", "| fideslang category | category here | how | why |", "|---|---|---|---|"]
        for m in (m for m in CATEGORY_MAPPINGS if m.section == section):
            lines.append(f"| `{m.fides}` | {f'`{m.category}`' if m.category else '—'} | {m.how} | {m.why} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(categories_reference())
