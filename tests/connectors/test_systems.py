"""connectors/systems.py: a deployment's systems are files; a bad file is named with the path
inside it and what is wrong, every problem at once, and nothing of the directory is used."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from connectors.systems import System, SystemsDirectory, SystemsError, system_load, systems_load

from ..conftest import ROOT

SHOP = """\
name: shop
kind: sql
connection:
  url: ${SHOP_DATABASE_URL}
time_limit: 120
tables:
  - name: customer
    identity: {email: email}
    columns: {email: name_contact, full_name: name_contact}
"""


def _directory(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(text))
    return tmp_path


def _problems(directory: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(SystemsError) as refused:
        systems_load(directory, environ or {})
    return refused.value.problems


def test_a_directory_of_files_gives_each_system_its_connector_class_options_and_time_limit(tmp_path):
    directory = _directory(tmp_path, shop=SHOP, files="""\
        name: files
        kind: object_store
        connection: {backend: storages.backends.s3.S3Storage, options: {bucket_name: "${BUCKET:-uploads}"}}
        """, crm="""\
        name: crm
        kind: python
        class: crm_connector.CrmConnector
        options: {token: "${CRM_TOKEN}"}
        """)
    systems = systems_load(directory, {"SHOP_DATABASE_URL": "postgresql://shop.internal/shop", "CRM_TOKEN": "t0k"})
    assert list(systems) == ["crm", "files", "shop"]  # in the files' order
    shop = systems["shop"]
    assert (shop.kind, shop.connector_class, shop.time_limit, shop.file) == ("sql", "connectors.sql.SqlConnector", 120, directory / "shop.yaml")
    assert shop.options["url"] == "postgresql://shop.internal/shop"
    assert [(t.name, t.identity.column, [c.name for c in t.columns]) for t in shop.options["dataset"].tables] == [
        ("customer", "email", ["email", "full_name"])]
    assert systems["files"] == System("files", "connectors.content.ContentStorageConnector", {
        "backend": "storages.backends.s3.S3Storage", "storage_options": {"bucket_name": "uploads"}}, kind="object_store",
        file=directory / "files.yaml")
    assert systems["crm"] == System("crm", "crm_connector.CrmConnector", {"token": "t0k"}, kind="python", file=directory / "crm.yaml")


def test_a_variable_set_in_the_environment_wins_over_the_files_default_and_an_empty_one_does_not(tmp_path):
    directory = _directory(tmp_path, files="""\
        name: files
        kind: object_store
        connection: {options: {location: "/srv/${PLACE:-default}/files"}}
        """)
    assert systems_load(directory, {"PLACE": "given"})["files"].options["storage_options"] == {"location": "/srv/given/files"}
    assert systems_load(directory, {"PLACE": ""})["files"].options["storage_options"] == {"location": "/srv/default/files"}


@pytest.mark.parametrize(("text", "problem"), [
    ("name: shop\nkind: [sql\n", "not YAML: while parsing a flow sequence"),
    ("- name: shop\n", "must be a mapping of name, kind and the system's settings"),
    ("name: shop\n", "kind: must be one of sql, object_store, http, python, manual"),
    ("name: shop\nkind: ftp\n", "kind: must be one of sql, object_store, http, python, manual"),
    ("kind: python\nclass: a.B\n", "name: is required"),
    ("name: Shop DB\nkind: python\nclass: a.B\n", "name: must be lower case letters, digits and underscores, starting with a letter (at most 40)"),
    ("name: shop\nkind: python\n", "class: is required"),
    ("name: shop\nkind: python\nclass: CrmConnector\n", "class: must be the dotted path of a class"),
    ("name: shop\nkind: python\nclass: a.B\nconection: {}\n", "conection: is not a setting of this kind of system"),
    ("name: shop\nkind: object_store\nconnection: {url: x}\n", "connection.url: is not a known setting"),
    ("name: shop\nkind: python\nclass: a.B\ntime_limit: 0\n", "time_limit: Input should be greater than 0"),
    ("name: shop\nkind: sql\nconnection: {url: '${SHOP_DATABASE_URL}'}\ntables: []\n", "connection.url: ${SHOP_DATABASE_URL} is not set in the environment"),
    ("name: shop\nkind: sql\n", "tables: is required"),
    ("name: shop\nkind: sql\ntables:\n  - name: customer\n    identity: {email: email}\n    columns: {email: emails}\n",
     "tables[0].columns.email.category: 'emails' is not a category of the taxonomy"),
    ("name: shop\nkind: sql\ntables:\n  - name: orders\n    columns: {total: payment}\n", "tables[0]: needs exactly one of identity or parent"),
    ("name: shop\nkind: sql\ntables:\n  - name: customer\n    identity: {email: email, phone: phone}\n",
     "tables[0].identity: must name one identity and its column, such as {email: email} or {customer_number: cust_no, match: exact}"),
    ("name: shop\nkind: sql\ntables:\n  - name: customer\n    identity: {phone: phone, match: fuzzy}\n",
     "tables[0].identity.match: Input should be 'exact' or 'case_insensitive'"),
    ("name: shop\nkind: sql\ntables:\n  - name: customer\n    identity: {email: email}\n    erase: keep\n",
     "tables[0]: `erase: keep` needs a `reason`, which the receipt gives"),
    ("name: shop\nkind: sql\ntables:\n  - name: customer\n    identity: {email: email}\n  - name: orders\n    parent: {table: cart, column: c}\n",
     "tables: table orders: parent cart is not a table of this system"),
])
def test_each_mistake_in_a_file_is_named_with_the_file_the_path_inside_it_and_what_is_wrong(tmp_path, text, problem):
    (tmp_path / "shop.yaml").write_text(text)
    [line] = _problems(tmp_path)
    assert line.startswith(f"{tmp_path / 'shop.yaml'}: {problem}")


def test_every_problem_of_every_file_is_told_at_once_and_two_systems_cannot_share_a_name(tmp_path):
    directory = _directory(tmp_path, a="name: shop\nkind: python\nclass: a.B\n", b="name: shop\nkind: python\nclass: a.C\n",
                           c="name: crm\nkind: ftp\n", d="name: Bad\nkind: python\n")
    assert _problems(directory) == [
        f"{directory / 'b.yaml'}: name: 'shop' is also the name of {directory / 'a.yaml'}",
        f"{directory / 'c.yaml'}: kind: must be one of sql, object_store, http, python, manual",
        f"{directory / 'd.yaml'}: name: must be lower case letters, digits and underscores, starting with a letter (at most 40)",
        f"{directory / 'd.yaml'}: class: is required",
    ]


def test_a_directory_that_is_missing_or_holds_no_system_file_is_refused(tmp_path):
    assert _problems(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}: not a directory of system files"]
    (tmp_path / "notes.txt").write_text("not a system")
    assert _problems(tmp_path) == [f"{tmp_path}: no system files (*.yaml) in it"]


def test_systems_of_two_directories_are_served_together_unless_their_names_clash(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    _directory(first, shop=SHOP)
    _directory(second, crm="name: crm\nkind: python\nclass: a.B\n")
    together = SystemsDirectory(first, second, environ={"SHOP_DATABASE_URL": "sqlite://"})
    assert (list(together), together["crm"].connector_class, len(together)) == (["shop", "crm"], "a.B", 2)
    (second / "shop.yaml").write_text("name: shop\nkind: python\nclass: a.C\n")
    with pytest.raises(SystemsError) as refused:
        dict(SystemsDirectory(first, second, environ={"SHOP_DATABASE_URL": "sqlite://"}))
    assert refused.value.problems == [f"{second / 'shop.yaml'}: name: 'shop' is also the name of {first / 'shop.yaml'}"]


@pytest.mark.parametrize("spelled", ["null", "~", "", "'null'", "Null"])
def test_erase_null_is_the_null_strategy_however_yaml_spells_it(tmp_path, spelled):
    file = tmp_path / "shop.yaml"
    file.write_text(f"name: shop\nkind: sql\ntables:\n  - name: customer\n    identity: {{email: email}}\n    erase: {spelled}\n"
                    f"    columns:\n      email: name_contact\n      phone: {{category: name_contact, erase: {spelled}}}\n")
    [table] = system_load(file, {}).options["dataset"].tables
    assert (table.erase, [column.erase for column in table.columns]) == ("null", [None, "null"])


def _manage(*args: str, systems: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dsar.settings", "DSAR_SYSTEMS": str(systems)}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_a_bad_system_file_stops_start_up_naming_the_file_and_the_problem(tmp_path):
    (tmp_path / "shop.yaml").write_text("name: shop\nkind: sql\ntables:\n  - name: customer\n    columns: {email: name_contact}\n")
    answer = _manage("check", systems=tmp_path)
    assert answer.returncode == 1
    assert f"ImproperlyConfigured: the system files are wrong:\n{tmp_path / 'shop.yaml'}: tables[0]: needs exactly one of identity or parent" in answer.stderr


def test_with_systems_of_its_own_a_deployment_serves_only_those_and_loads_no_demo_data(tmp_path):
    (tmp_path / "shop.yaml").write_text(SHOP.replace("${SHOP_DATABASE_URL}", "sqlite:///shop.sqlite3"))
    script = "import django; django.setup(); from connectors.registry import connector_names; print(connector_names())"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dsar.settings", "DSAR_SYSTEMS": str(tmp_path)}
    listed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert (listed.returncode, listed.stdout) == (0, "['shop']\n"), listed.stderr
    loaded = _manage("load_estate", systems=tmp_path)
    assert (loaded.returncode, loaded.stdout) == (0, "DSAR_SYSTEMS is set: no demo data loaded\n"), loaded.stderr
    for command in (["load_estate", str(ROOT / "estate" / "demo.json")], ["generate_estate", "--subjects", "1"]):
        refused = _manage(*command, systems=tmp_path)
        assert refused.returncode == 1
        assert "DSAR_SYSTEMS names the deployment's own systems: the demo estate is not one of them" in refused.stderr


def test_a_table_may_be_found_by_any_identity_with_a_composite_key_and_provide_identities(tmp_path):
    (tmp_path / "shop.yaml").write_text("name: shop\nkind: sql\ntables:\n  - name: customer\n    identity: {email: email}\n"
                                        "    provides: {loyalty_card: card_no}\n  - name: loyalty\n    primary_key: [card, issued]\n"
                                        "    identity: {loyalty_card: card}\n  - name: member\n    identity: {phone: mobile, match: case_insensitive}\n")
    customer, loyalty, member = system_load(tmp_path / "shop.yaml", {}).options["dataset"].tables
    assert (customer.identity.name, customer.identity.column, customer.identity.match, customer.provides) == (
        "email", "email", "case_insensitive", {"loyalty_card": "card_no"})
    assert (loyalty.identity.name, loyalty.identity.match, loyalty.primary_key) == ("loyalty_card", "exact", ("card", "issued"))
    assert (member.identity.name, member.identity.column, member.identity.match) == ("phone", "mobile", "case_insensitive")


def test_systems_run_in_stages_by_the_identities_they_find_and_an_identity_nobody_finds_is_refused(tmp_path):
    from connectors.systems import systems_stages

    def sql(name: str, table: str) -> str:
        return f"name: {name}\nkind: sql\ntables:\n{table}"

    shop = sql("shop", "  - name: customer\n    identity: {email: email}\n    provides: {customer_number: number}\n")
    crm = sql("crm", "  - name: contact\n    identity: {customer_number: cust}\n    provides: {crm_id: id}\n")
    mail = sql("mail", "  - name: list\n    identity: {crm_id: contact}\n")
    other = sql("other", "  - name: note\n    identity: {email: email}\n")
    directory = _directory(tmp_path, shop=shop, crm=crm, mail=mail, other=other)
    systems = systems_load(directory, {})
    assert (systems["crm"].needs, systems["crm"].provides) == (frozenset({"customer_number"}), frozenset({"crm_id"}))
    assert systems_stages(systems) == [["other", "shop"], ["crm"], ["mail"]]
    (directory / "shop.yaml").unlink()
    with pytest.raises(SystemsError) as refused:
        dict(SystemsDirectory(directory, environ={}))
    assert refused.value.problems == [f"{directory / 'crm.yaml'}: identity 'customer_number' is needed but no system provides it"]
    (directory / "shop.yaml").write_text(sql("shop", "  - name: customer\n    identity: {crm_id: crm}\n    provides: {customer_number: number}\n"))
    with pytest.raises(SystemsError) as refused:
        dict(SystemsDirectory(directory, environ={}))
    assert refused.value.problems == ["crm, mail, shop: these systems need identities only they find, each waiting for another"]


def test_a_python_system_declares_the_identities_it_needs_and_provides_and_runs_in_their_stage(tmp_path):
    from connectors.systems import systems_stages

    directory = _directory(tmp_path, crm="name: crm\nkind: python\nclass: crm.Crm\nprovides: [crm_id]\n",
                           mail="name: mail\nkind: python\nclass: mail.Mail\nneeds: [email, crm_id]\n")
    systems = systems_load(directory, {})
    assert (systems["crm"].needs, systems["crm"].provides) == (frozenset(), frozenset({"crm_id"}))
    assert (systems["mail"].needs, systems["mail"].provides) == (frozenset({"crm_id"}), frozenset())
    assert systems_stages(systems) == [["crm"], ["mail"]]


def test_a_system_says_whether_an_organisation_controls_its_data_of_the_accounts_it_manages_and_where_to_reach_it(tmp_path):
    directory = _directory(tmp_path, school="""\
        name: school
        kind: sql
        organization: {table: pupil, column: school, contact_column: school_privacy}
        organization_controls: true
        tables:
          - name: pupil
            identity: {email: email}
            columns: {email: name_contact}
        """, shop=SHOP)
    systems = systems_load(directory, {"SHOP_DATABASE_URL": "sqlite://"})
    organization = systems["school"].options["dataset"].organization
    assert (organization.table, organization.column, organization.contact_column) == ("pupil", "school", "school_privacy")
    assert (systems["school"].organization_controls, systems["shop"].organization_controls) == (True, False)


@pytest.mark.parametrize(("text", "problem"), [
    ("organization_controls: 'yes'\n", "organization_controls: must be true or false"),
    ("organization_controls: 1\n", "organization_controls: must be true or false"),
    ("organization_controls: null\n", "organization_controls: must be true or false"),
    ("organization: {table: pupil, contact_column: school_privacy}\n", "organization.column: is required"),
])
def test_whether_an_organisation_controls_a_systems_data_is_said_strictly_or_the_file_is_refused(tmp_path, text, problem):
    (tmp_path / "school.yaml").write_text("name: school\nkind: sql\ntables:\n  - {name: pupil, identity: {email: email}}\n" + text)
    assert _problems(tmp_path) == [f"{tmp_path / 'school.yaml'}: {problem}"]


def test_a_system_of_the_companys_own_cannot_be_found_by_what_only_a_system_the_organisation_controls_finds(tmp_path):
    directory = _directory(tmp_path, school="""\
        name: school
        kind: sql
        organization_controls: true
        tables:
          - {name: pupil, identity: {email: email}, provides: {pupil_number: number}}
        """, canteen="""\
        name: canteen
        kind: sql
        tables:
          - {name: meals, identity: {pupil_number: pupil}}
        """)
    with pytest.raises(SystemsError) as refused:
        dict(SystemsDirectory(directory, environ={}))
    assert refused.value.problems == [
        f"{directory / 'canteen.yaml'}: identity 'pupil_number' is found by school, whose data of an account an organisation "
        "manages is the organisation's: declare `organization_controls: true` here too, or have a system of the company's own "
        "find it"]
    (directory / "canteen.yaml").write_text("name: canteen\nkind: sql\norganization_controls: true\n"
                                            "tables:\n  - {name: meals, identity: {pupil_number: pupil}}\n")
    assert list(SystemsDirectory(directory, environ={})) == ["canteen", "school"]
