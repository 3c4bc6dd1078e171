"""connectors/fides.py and `manage.py systems import-fides`: a Fides (fideslang) dataset file becomes
a system file whose tables, identities, parents, categories and erase hints are what the dataset
declares, with a comment for everything left out; a bad file is named with the path inside it.

The example datasets in tests/connectors/fides/ are written for these tests in the shape of
fideslang's dataset files (collections, fields, data_categories, fides_meta or fidesops_meta).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from connectors.fides import CATEGORY_MAPPINGS, categories_reference, category_mapping
from connectors.systems import system_load
from connectors.taxonomy import category_known

from ..conftest import ROOT

EXAMPLES = Path(__file__).parent / "fides"

HEADER = """\
# Converted by `manage.py systems import-fides` from the Fides dataset {key} ({file}).
# The comments say what was left out and why: read them before using the file. A table's rows are
# erased by deleting them (the default) unless it says otherwise; Fides instead masks the fields its
# erasure policy names, so give `erase: null` or `erase: mask` to tables whose rows must stay.
"""

SYSTEM = "# {field}: not exported: system.operations (keys, timestamps and flags the system runs on)"
UNIQUE_ID = "# {field}: not exported: user.unique_id (an identifier the system assigns, which links rows)"

SHOP = HEADER.format(key="corner_shop", file="shop.yml") + f"""\
name: shop
kind: sql
# The --url given (a postgresql database) holds a password, which never goes in a file:
# set SHOP_DATABASE_URL to it where the product runs.
connection: {{url: "${{SHOP_DATABASE_URL}}"}}
tables:
  - name: customer
    primary_key: id
    identity: {{email: email}}
    columns:
      email: name_contact
      # full_name: Fides rewrites it (random_string_rewrite); here it is masked (a keyed hash) instead
      full_name: {{category: name_contact, erase: mask}}
      phone: {{category: name_contact, erase: null}}
      birth_date: demographic
    {UNIQUE_ID.format(field="id")}
    {SYSTEM.format(field="address_id")}
    {SYSTEM.format(field="created_at")}
  # address: left out: it cannot be reached from the person: Fides finds it through customer.address_id, which
  #   is not customer's primary key (id); here a table is found only by a column of its own holding its parent's
  #   primary key.
  - name: login
    primary_key: id
    parent: {{table: customer, column: customer_id}}
    columns:
      # ip: Fides masks it with aes_encrypt, which has no equivalent here: the table's erase applies
      ip: interactions.device_config
      # at: user.behavior.login_history is not listed; its parent user.behavior is
      at: interactions.device_usage
    secrets:
      password_hash: {{column: password_hash, category: credentials}}
    {SYSTEM.format(field="id")}
    {UNIQUE_ID.format(field="customer_id")}
  - name: orders
    # it holds no data about the person: it is here as the way to order_item
    primary_key: id
    parent: {{table: customer, column: customer_id}}
    {SYSTEM.format(field="id")}
    {UNIQUE_ID.format(field="customer_id")}
    {SYSTEM.format(field="status")}
    {SYSTEM.format(field="placed_at")}
  - name: order_item
    primary_key: id
    parent: {{table: orders, column: order_id}}
    # erase: Fides deletes this collection's rows (masking_strategy_override: delete)
    erase: delete
    columns:
      title: interactions.account_history
      gift_message: {{category: content, erase: mask}}
    {SYSTEM.format(field="id")}
    {SYSTEM.format(field="order_id")}
    {SYSTEM.format(field="product_id")}
  - name: payment_card
    primary_key: id
    parent: {{table: customer, column: customer_id}}
    columns:
      card_number: {{category: payment, transform: last4}}
      expiry: payment
      holder: {{category: name_contact, erase: mask}}
    secrets:
      # cvc: a card security code, by its name: a secret
      cvc: {{column: cvc, category: payment}}
    {SYSTEM.format(field="id")}
    {UNIQUE_ID.format(field="customer_id")}
  # product: left out: it holds no data about the person.
  # audit_log: left out: it cannot be reached from the person: it has no identity field and no reference chain
  #   to a collection with one.
"""

# Identities by phone or by another name, `match:`, `provides:` and composite keys are being added
# to the system file's loader in main: this file is checked as text only.
CRM = HEADER.format(key="crm", file="crm.yml") + f"""\
name: crm
kind: sql
connection: {{url: "postgresql://crm@db.internal/crm"}}
tables:
  - name: contact
    # profile.email is the identity email, but a nested field cannot be looked up here
    primary_key: contact_id
    # identity: found by values of corner_shop.customer.id: the system of dataset corner_shop must say
    #   `provides: {{corner_shop_customer_id: id}}` on its table customer
    identity: {{corner_shop_customer_id: shop_customer_id, match: exact}}
    # provides: contact_id holds values of mailer.subscriber.crm_id: the system of dataset mailer must say
    #   `identity: {{mailer_subscriber_crm_id: crm_id, match: exact}}` on its table subscriber
    provides: {{mailer_subscriber_crm_id: contact_id}}
    columns:
      # profile: also labelled as demographic: a column has one category here
      # profile: its nested fields (profile.nickname, profile.email, profile.language) are read as this one
      #   column
      # profile: Fides masks profile.language with null_rewrite; the column is erased as a whole
      profile: name_contact
      # notes: also labelled as interactions.device_usage: a column has one category here
      notes: content
    secrets:
      # wallet: its nested fields (wallet.iban, wallet.label) are read as this one column
      # wallet: wallet.iban holds a card or account number, which cannot be cut to its last four inside the
      #   column: the whole column is a secret
      wallet: {{column: wallet, category: payment}}
    {SYSTEM.format(field="contact_id")}
    {UNIQUE_ID.format(field="shop_customer_id")}
  - name: sms_consent
    primary_key: phone
    identity: {{phone: phone}}
    columns:
      phone: name_contact
      # reply: read_only in Fides, whose erasures leave it alone: check the table's erase suits it
      reply: content
  - name: loyalty_account
    primary_key: card_no
    identity: {{email: backup_email}}
    # also found by loyalty_number in card_no: a table has one identity column here
    columns:
      backup_email: name_contact
      points: interactions.account_history
    {UNIQUE_ID.format(field="card_no")}
  - name: ticket
    # primary_key: the dataset declares none; this is the field its children reference, which must be unique
    primary_key: id
    parent: {{table: contact, column: contact_id}}
    columns:
      subject: content
    {SYSTEM.format(field="id")}
    {SYSTEM.format(field="contact_id")}
    # agent_notes: not exported: no data category
  - name: ticket_message
    primary_key: [ticket_id, seq]
    parent: {{table: ticket, column: ticket_id}}
    columns:
      body: content
    {SYSTEM.format(field="ticket_id")}
    {SYSTEM.format(field="seq")}
  # web_session: left out: skip_processing: Fides leaves it out of privacy requests.
"""

LEGACY = HEADER.format(key="legacy_app", file="legacy.yml") + f"""\
name: legacy
kind: sql
connection: {{url: "sqlite:///legacy.sqlite3"}}
tables:
  - name: person
    primary_key: id
    identity: {{email: email}}
    columns:
      # email: user.provided.identifiable.contact.email is not listed; its parent
      #   user.provided.identifiable.contact is
      email: name_contact
      name: name_contact
      card: {{category: payment, transform: last4}}
      # last_ip: user.derived.identifiable.device.ip_address is not listed; its parent
      #   user.derived.identifiable.device is
      last_ip: interactions.device_config
    secrets:
      # password: user.provided.identifiable.credentials.password is not listed; its parent
      #   user.provided.identifiable.credentials is
      password: {{column: password, category: credentials}}
    {SYSTEM.format(field="id")}
"""


def _import(file: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("systems", "import-fides", str(file), *args, stdout=out)
    return out.getvalue()


def _refused(file: Path, *args: str) -> str:
    with pytest.raises(CommandError) as refused:
        _import(file, *args)
    return str(refused.value)


def _dataset(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "dataset.yml"
    file.write_text(textwrap.dedent(text))
    return file


def test_a_shop_dataset_becomes_its_system_file_with_a_comment_for_all_it_leaves_out():
    assert _import(EXAMPLES / "shop.yml", "--name", "shop", "--url", "postgresql://shop:s3cret@db.internal/shop") == SHOP


def test_the_shops_system_file_loads_with_the_tables_identities_parents_and_columns_of_the_dataset(tmp_path):
    (tmp_path / "shop.yaml").write_text(_import(EXAMPLES / "shop.yml", "--name", "shop", "--url", "postgresql://shop:s3cret@db/shop"))
    system = system_load(tmp_path / "shop.yaml", {"SHOP_DATABASE_URL": "postgresql://shop@db.internal/shop"})
    assert (system.name, system.kind, system.options["url"]) == ("shop", "sql", "postgresql://shop@db.internal/shop")
    tables = system.options["dataset"].tables
    assert [(t.name, t.primary_key, t.identity and t.identity.column, t.parent and (t.parent.table, t.parent.columns), t.erase)
            for t in tables] == [
        ("customer", ("id",), "email", None, "delete"),
        ("login", ("id",), None, ("customer", ("customer_id",)), "delete"),
        ("orders", ("id",), None, ("customer", ("customer_id",)), "delete"),
        ("order_item", ("id",), None, ("orders", ("order_id",)), "delete"),
        ("payment_card", ("id",), None, ("customer", ("customer_id",)), "delete"),
    ]
    assert {t.name: [(c.name, c.category, c.transform, c.erase) for c in t.columns] for t in tables} == {
        "customer": [("email", "name_contact", None, None), ("full_name", "name_contact", None, "mask"),
                     ("phone", "name_contact", None, "null"), ("birth_date", "demographic", None, None)],
        "login": [("ip", "interactions.device_config", None, None), ("at", "interactions.device_usage", None, None)],
        "orders": [],
        "order_item": [("title", "interactions.account_history", None, None), ("gift_message", "content", None, "mask")],
        "payment_card": [("card_number", "payment", "last4", None), ("expiry", "payment", None, None),
                         ("holder", "name_contact", None, "mask")],
    }
    assert {t.name: [(s.name, s.column, s.category) for s in t.secrets] for t in tables if t.secrets} == {
        "login": [("password_hash", "password_hash", "credentials")], "payment_card": [("cvc", "cvc", "payment")]}


def test_nested_fields_other_identities_and_a_reference_into_another_dataset_become_this_file(tmp_path):
    converted = _import(EXAMPLES / "crm.yml", "--name", "crm", "--url", "postgresql://crm@db.internal/crm")
    assert converted == CRM
    (tmp_path / "crm.yaml").write_text(converted)
    tables = system_load(tmp_path / "crm.yaml", {}).options["dataset"].tables
    assert [(t.name, t.primary_key, t.identity and (t.identity.name, t.identity.match), t.parent and t.parent.table, t.provides)
            for t in tables] == [
        ("contact", ("contact_id",), ("corner_shop_customer_id", "exact"), None, {"mailer_subscriber_crm_id": "contact_id"}),
        ("sms_consent", ("phone",), ("phone", "exact"), None, {}),
        ("loyalty_account", ("card_no",), ("email", "case_insensitive"), None, {}),
        ("ticket", ("id",), None, "contact", {}),
        ("ticket_message", ("ticket_id", "seq"), None, "ticket", {}),
    ]


def test_an_older_file_with_fidesops_meta_and_the_first_taxonomys_categories_converts_and_loads(tmp_path):
    converted = _import(EXAMPLES / "legacy.yml", "--name", "legacy", "--url", "sqlite:///legacy.sqlite3")
    assert converted == LEGACY
    (tmp_path / "legacy.yaml").write_text(converted)
    [person] = system_load(tmp_path / "legacy.yaml", {}).options["dataset"].tables
    assert [(c.name, c.category, c.transform) for c in person.columns] == [
        ("email", "name_contact", None), ("name", "name_contact", None), ("card", "payment", "last4"),
        ("last_ip", "interactions.device_config", None)]
    assert [(s.column, s.category) for s in person.secrets] == [("password", "credentials")]


def test_the_command_needs_none_of_the_products_settings_and_exits_1_naming_a_bad_file(tmp_path):
    # The product reads the deployment's systems as it starts, so the deployment has one.
    (tmp_path / "crm.yaml").write_text("name: crm\nkind: python\nclass: crm_connector.CrmConnector\n")
    product = {"DATABASE_URL", "REDIS_URL", "DSAR_SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DSAR_DATA_DIR"}
    env = {**{k: v for k, v in os.environ.items() if k not in product}, "DSAR_SYSTEMS": str(tmp_path), "DSAR_DATA_DIR": str(tmp_path)}

    def run(file: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", "systems", "import-fides", str(file), "--name", "legacy",
                               "--url", "sqlite:///legacy.sqlite3"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    converted = run(EXAMPLES / "legacy.yml")
    assert (converted.returncode, converted.stdout) == (0, LEGACY), converted.stderr
    refused = run(tmp_path / "missing.yml")
    assert (refused.returncode, refused.stdout) == (1, "")
    assert f"CommandError: {tmp_path / 'missing.yml'}: cannot be read: No such file or directory" in refused.stderr


@pytest.mark.parametrize(("url", "connection"), [
    ("postgresql://shop:s3cret@db.internal/shop", [
        "# The --url given (a postgresql database) holds a password, which never goes in a file:",
        "# set SHOP_DATABASE_URL to it where the product runs.",
        'connection: {url: "${SHOP_DATABASE_URL}"}']),
    ("mysql+pymysql://shop@db.internal/shop?password=s3cret", [
        "# The --url given (a mysql database) holds a password, which never goes in a file:",
        "# set SHOP_DATABASE_URL to it where the product runs.",
        'connection: {url: "${SHOP_DATABASE_URL}"}']),
    ("postgresql://shop@db.internal/shop", ['connection: {url: "postgresql://shop@db.internal/shop"}']),
    ("postgresql://shop:${SHOP_PASSWORD}@db.internal/shop", ['connection: {url: "postgresql://shop:${SHOP_PASSWORD}@db.internal/shop"}']),
    ("${SHOP_URL}", ['connection: {url: "${SHOP_URL}"}']),
    ("sqlite:///shop.sqlite3", ['connection: {url: "sqlite:///shop.sqlite3"}']),
])
def test_the_url_is_written_only_when_it_holds_no_password(url, connection):
    lines = _import(EXAMPLES / "legacy.yml", "--name", "shop", "--url", url).splitlines()
    assert lines[lines.index("kind: sql") + 1: lines.index("tables:")] == connection


def test_a_file_of_several_datasets_is_converted_one_at_a_time_chosen_by_its_key(tmp_path):
    file = _dataset(tmp_path, """\
        dataset:
          - fides_key: app
            collections:
              - name: member
                fields:
                  - {name: email, data_categories: [user.contact.email], fides_meta: {identity: email}}
          - fides_key: archive
            collections:
              - name: old_member
                fields:
                  - {name: mail, data_categories: [user.contact.email], fides_meta: {identity: email}}
                  - {name: city, data_categories: [user.location.coarse]}
        """)
    assert _refused(file, "--name", "app", "--url", "sqlite://") == (
        f"{file}: dataset: holds 2 datasets (app, archive); choose one with --dataset KEY")
    assert _refused(file, "--name", "app", "--url", "sqlite://", "--dataset", "crm") == f"{file}: no dataset 'crm'; the file holds app, archive"
    archive = _import(file, "--name", "archive", "--url", "sqlite://", "--dataset", "archive")
    assert archive.split("tables:\n")[1] == (
        "  - name: old_member\n"
        "    # primary_key: the dataset declares none, and id (the default) is not one of its fields: name the key\n"
        "    identity: {email: mail}\n"
        "    columns:\n"
        "      mail: name_contact\n"
        "      city: location\n")


@pytest.mark.parametrize(("text", "where", "problem"), [
    ("dataset: [app\n", "", "not YAML: while parsing a flow sequence"),
    ("- fides_key: app\n", "", "not a Fides dataset file: it needs a top-level `dataset:` list"),
    ("system:\n  - fides_key: app\n", "", "not a Fides dataset file: it needs a top-level `dataset:` list"),
    ("dataset:\n  - collections: []\n", "dataset[0].fides_key", "is required"),
    ("dataset:\n  - fides_key: app\n    collections:\n      - name: member\n        fields:\n          - {name: email}\n          - {data_categories: [user.name]}\n",
     "dataset[0].collections[0].fields[1].name", "is required"),
    ("dataset:\n  - fides_key: app\n    collections:\n      - name: member\n        fields:\n"
     "          - {name: id, fides_meta: {references: [{dataset: app, field: member.id, direction: both}]}}\n",
     "dataset[0].collections[0].fields[0].fides_meta.references[0].direction", "Input should be 'from' or 'to'"),
    ("dataset:\n  - fides_key: app\n    collections:\n      - name: member\n        fields:\n"
     "          - {name: email, data_categories: [user.contact.email], fides_meta: {identity: email}}\n"
     "          - {name: mail, data_categories: [user.name, customer.email]}\n",
     "dataset[0].collections[0].fields[1].data_categories[1]",
     "'customer.email' is not a fideslang data category the converter knows (docs/fides-categories.md)"),
    ("dataset:\n  - fides_key: app\n    collections:\n      - name: member\n        fields:\n"
     "          - name: profile\n            fields:\n              - {name: nick, data_categories: [usr.name]}\n",
     "dataset[0].collections[0].fields[0].fields[0].data_categories[0]",
     "'usr.name' is not a fideslang data category the converter knows (docs/fides-categories.md)"),
    ("dataset:\n  - fides_key: app\n    collections:\n      - name: member\n        fields:\n"
     "          - {name: id, fides_meta: {references: [{dataset: app, field: account.id}]}}\n",
     "dataset[0].collections[0].fields[0].fides_meta.references[0].field", "'account.id': the dataset has no collection 'account'"),
    ("dataset:\n  - fides_key: app\n    collections:\n      - name: member\n        fields:\n"
     "          - {name: id, fidesops_meta: {references: [{dataset: app, field: account.id}]}}\n",
     "dataset[0].collections[0].fields[0].fidesops_meta.references[0].field", "'account.id': the dataset has no collection 'account'"),
    ("dataset:\n  - fides_key: app\n    collections:\n      - name: member\n        fields:\n"
     "          - {name: id, fides_meta: {references: [{dataset: app, field: member.key}]}}\n",
     "dataset[0].collections[0].fields[0].fides_meta.references[0].field", "'member.key': collection 'member' has no field 'key'"),
    ("dataset:\n  - fides_key: app\n    collections:\n      - name: member\n        fields:\n"
     "          - {name: id, fides_meta: {references: [{dataset: app, field: member}]}}\n",
     "dataset[0].collections[0].fields[0].fides_meta.references[0].field", "'member' must name a collection and its field: collection.field"),
    ("dataset:\n  - fides_key: app\n    collections:\n      - {name: member, fields: []}\n      - {name: member, fields: []}\n",
     "dataset[0].collections[1].name", "'member' is the name of another collection too"),
])
def test_a_bad_file_is_refused_naming_the_file_the_path_inside_it_and_what_is_wrong(tmp_path, text, where, problem):
    file = _dataset(tmp_path, text)
    message = _refused(file, "--name", "app", "--url", "sqlite://")
    assert message.startswith(f"{file}: {where}{': ' if where else ''}{problem}"), message


def test_a_dataset_whose_data_no_identity_reaches_is_refused_as_nothing_to_convert(tmp_path):
    file = _dataset(tmp_path, """\
        dataset:
          - fides_key: app
            collections:
              - name: visit
                fields:
                  - {name: ip, data_categories: [user.device.ip_address]}
              - name: member
                fields:
                  - {name: email, data_categories: [system.operations], fides_meta: {identity: email}}
        """)
    assert _refused(file, "--name", "app", "--url", "sqlite://") == (
        f"{file}: dataset app: no collection that holds data about the person can be reached from an identity, "
        "so there is nothing to convert")


@pytest.mark.parametrize(("argument", "value", "problem"), [
    ("--name", "Shop DB", "--name: 'Shop DB' must be lower case letters, digits and underscores, starting with a letter (at most 40)"),
    ("--url", "not a url", "--url: 'not a url' is not a database URL (dialect://user@host/database)"),
])
def test_a_bad_name_or_url_is_refused_naming_the_argument(argument, value, problem):
    arguments = {"--name": "shop", "--url": "sqlite://", argument: value}
    assert _refused(EXAMPLES / "legacy.yml", *(part for pair in arguments.items() for part in pair)) == problem


def test_a_reference_without_a_direction_is_followed_whichever_way_reaches_the_other_collection(tmp_path):
    # member is found by email; its card_id names card.id without a direction. Read as "member is
    # found from card" it is no use (member needs no parent), so it is read the other way: card is
    # found from member's card_id, which becomes member's key, since member declares none.
    file = _dataset(tmp_path, """\
        dataset:
          - fides_key: app
            collections:
              - name: member
                fields:
                  - {name: email, data_categories: [user.contact.email], fides_meta: {identity: email}}
                  - {name: card_id, fides_meta: {references: [{dataset: app, field: card.id}]}}
              - name: card
                fields:
                  - {name: id, fides_meta: {primary_key: true}}
                  - {name: number, data_categories: [user.financial.credit_card]}
        """)
    assert _import(file, "--name", "app", "--url", "sqlite://").split("tables:\n")[1] == (
        "  - name: member\n"
        "    # primary_key: the dataset declares none; this is the field its children reference, which must be unique\n"
        "    primary_key: card_id\n"
        "    identity: {email: email}\n"
        "    columns:\n"
        "      email: name_contact\n"
        "    # card_id: not exported: no data category\n"
        "  - name: card\n"
        "    primary_key: id\n"
        "    parent: {table: member, column: id}\n"
        "    columns:\n"
        "      number: {category: payment, transform: last4}\n"
        "    # id: not exported: no data category\n")


@pytest.mark.parametrize(("fides", "expected"), [
    ("user.contact.email", ("user.contact.email", "name_contact", "column", True)),
    ("user.contact.address.postal_code", ("user.contact.address.postal_code", "name_contact", "column", True)),
    ("user.contact.email.work", ("user.contact.email", "name_contact", "column", False)),
    ("user.financial.credit_card", ("user.financial.credit_card", "payment", "last4", True)),
    ("user.financial.bank_account", ("user.financial.bank_account", "payment", "last4", True)),
    ("user.payment", ("user.payment", "payment", "column", True)),
    ("user.authorization.credentials", ("user.authorization.credentials", "credentials", "secret", True)),
    ("user.account.password", ("user.account.password", "credentials", "secret", True)),
    ("user.account.password.hash", ("user.account.password", "credentials", "secret", False)),
    ("user.account.username", ("user.account.username", "name_contact", "column", True)),
    ("user.device.ip_address", ("user.device.ip_address", "interactions.device_config", "column", True)),
    ("user.location.precise", ("user.location.precise", "location", "column", True)),
    ("user.demographic.profile", ("user.demographic.profile", "interests", "column", True)),
    ("user.behavior.search_history", ("user.behavior.search_history", "searches_commands", "column", True)),
    ("user.content.self_image", ("user.content.self_image", "images", "column", True)),
    ("user.sensor", ("user.sensor", "other_input", "column", True)),
    ("user.health.medications", ("user.health.medications", "demographic.health", "column", True)),
    ("user.health.allergies", ("user.health", "demographic.health", "column", False)),
    ("user.unique_id", ("user.unique_id", None, "not exported", True)),
    ("system.operations", ("system.operations", None, "not exported", True)),
    ("system.anything", ("system", None, "not exported", False)),
    ("user.loyalty_points", ("user", "interactions.device_usage", "column", False)),
    ("user.provided.identifiable.contact.email", ("user.provided.identifiable.contact", "name_contact", "column", False)),
    ("user.provided.identifiable.credentials.password", ("user.provided.identifiable.credentials", "credentials", "secret", False)),
])
def test_a_category_takes_its_own_row_or_else_its_nearest_listed_parents(fides, expected):
    mapping, own = category_mapping(fides)
    assert (mapping.fides, mapping.category, mapping.how, own) == expected


@pytest.mark.parametrize("fides", ["customer.email", "usr.contact", "users", ""])
def test_a_category_with_no_listed_parent_has_no_row(fides):
    assert category_mapping(fides) is None


def test_every_row_names_a_category_of_the_taxonomy_and_no_fideslang_category_twice():
    keys = [m.fides for m in CATEGORY_MAPPINGS]
    assert sorted(k for k in set(keys) if keys.count(k) > 1) == []
    assert [m.fides for m in CATEGORY_MAPPINGS if (m.category is None) != (m.how == "not exported")] == []
    assert [m.category for m in CATEGORY_MAPPINGS if m.category and not category_known(m.category)] == []


def test_the_documented_table_is_the_one_the_converter_reads():
    assert (ROOT / "docs" / "fides-categories.md").read_text() == categories_reference(), (
        "run `python -m connectors.fides > docs/fides-categories.md`")
