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

import sys
from dataclasses import dataclass

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
        ("user.health_and_medical", "demographic.health", COLUMN, _HEALTH),
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
        ("user.sensor", "other_input", COLUMN),
        ("user.settings", "interactions.device_usage", COLUMN, "settings"),
        ("user.social", "social", COLUMN),
        ("user.social_activity", "social", COLUMN),
        ("user.telemetry", "interactions.device_usage", COLUMN, "product performance"),
        ("user.unique_id", None, NOT_EXPORTED, _ASSIGNED_ID),
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
