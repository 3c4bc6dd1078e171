"""dsar/system_checks.py and `manage.py systems check`: a check's result is kept as the system's
last check, a worker refuses a system whose last check found a problem (the reason on the request),
and the command works with only the systems' own settings in the environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from connectors.base import Finding
from dsar import processing
from dsar.models import ConnectorTask, Request, SystemCheck
from dsar.system_checks import system_check_record, system_check_run

from ..conftest import ROOT
from ..factories import request_make
from ..support.probe import probe_calls, probe_plan


@pytest.mark.django_db
def test_a_check_is_kept_as_the_systems_last_one_problems_apart_from_advice():
    system_check_record("probe", [Finding("tables[0]", "a problem"), Finding("tables[1].parent", "an index", problem=False)])
    system_check_record("probe", [Finding("tables[0].erase", "another problem")])
    [check] = SystemCheck.objects.filter(system="probe")
    assert (check.problems, check.advice) == (["tables[0].erase: another problem"], [])


@pytest.mark.django_db
def test_a_worker_refuses_a_system_whose_last_check_failed_with_the_reason_on_the_request(unique_email):
    email = unique_email("refused")
    probe_plan(email, records=1)
    system_check_record("probe", [Finding("tables[0].name", "no table customers in the database")])
    checked_at = SystemCheck.objects.get(system="probe").checked_at
    request = request_make(status="processing", type="access", email=email)
    task = ConnectorTask.objects.create(request=request, connector="probe")
    processing.task_run(task.pk)
    reason = (f"the last check of probe ({checked_at:%Y-%m-%d %H:%M} UTC) found 1 problem(s): tables[0].name: no table customers in "
              "the database. Fix the system or its file, then run `manage.py systems check probe`")
    assert ConnectorTask.objects.values_list("status", "last_error").get(pk=task.pk) == ("failed", f"PermanentError: {reason}")
    assert Request.objects.values_list("status", "failure_reason").get(pk=request.pk) == ("failed", f"probe: PermanentError: {reason}")
    assert probe_calls(email) == 0


@pytest.mark.django_db
def test_a_check_that_passes_lets_the_system_run_again(unique_email):
    email = unique_email("passes")
    probe_plan(email, records=1)
    system_check_record("probe", [Finding("tables[0].name", "no table customers in the database")])
    system_check_record("probe", [Finding("tables[0].identity", "an index would serve it", problem=False)])
    request = request_make(status="processing", type="access", email=email)
    task = ConnectorTask.objects.create(request=request, connector="probe")
    processing.task_run(task.pk)
    assert ConnectorTask.objects.get(pk=task.pk).status == "succeeded"
    assert probe_calls(email) == 1


def _systems_check(directory, *names: str) -> subprocess.CompletedProcess:
    """`manage.py systems check` with none of the product's settings in the environment."""
    product = {"DATABASE_URL", "REDIS_URL", "DSAR_SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DSAR_DATA_DIR"}
    env = {**{k: v for k, v in os.environ.items() if k not in product}, "DSAR_SYSTEMS": str(directory), "DSAR_DATA_DIR": str(directory)}
    return subprocess.run([sys.executable, "manage.py", "systems", "check", *names], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_check_command_needs_only_the_systems_settings_and_exits_1_on_a_problem(tmp_path):
    database = tmp_path / "shop.sqlite3"
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customer (id integer PRIMARY KEY, email text NOT NULL, name text)"))
    engine.dispose()
    (tmp_path / "shop.yaml").write_text("name: shop\nkind: sql\nconnection: {url: '${SHOP_URL}'}\ntables:\n  - name: customer\n"
                                        "    identity: {email: email}\n    columns: {email: name_contact, name: name_contact, phone: name_contact}\n")
    os.environ["SHOP_URL"] = f"sqlite:///{database}"
    try:
        failed = _systems_check(tmp_path)
        assert (failed.returncode, failed.stdout.splitlines()) == (1, [
            "shop: tables[0].columns.phone: customer has no column phone"]), failed.stderr
        (tmp_path / "shop.yaml").write_text((tmp_path / "shop.yaml").read_text().replace(", phone: name_contact", ""))
        passed = _systems_check(tmp_path, "shop")
        assert (passed.returncode, passed.stdout.splitlines()) == (0, [
            "shop: tables[0].identity: advice: no index serves the lookup, so each request reads the whole table: "
            "CREATE INDEX customer_email_dsar ON customer (lower(trim(email)));",
            "shop: fits its file"]), passed.stderr
        unknown = _systems_check(tmp_path, "crm")
        assert unknown.returncode == 1
        assert "CommandError: no system named crm; the systems are shop" in unknown.stderr
    finally:
        del os.environ["SHOP_URL"]


def test_the_demo_estates_systems_fit_their_files_with_every_lookup_indexed(estate):
    findings = {name: system_check_run(name) for name in ("accounts", "payments", "third_party", "content", "support")}
    assert findings == dict.fromkeys(findings, [])


def test_the_commands_that_need_no_system_work_while_the_configured_ones_are_wrong(tmp_path):
    (tmp_path / "broken.yaml").write_text("name: broken\nkind: ftp\n")
    product = {"DATABASE_URL", "REDIS_URL", "DSAR_SECRET_KEY", "DJANGO_SETTINGS_MODULE"}
    env = {**{k: v for k, v in os.environ.items() if k not in product}, "DSAR_SYSTEMS": str(tmp_path)}
    fides = ROOT / "tests" / "connectors" / "fides" / "legacy.yml"
    converted = subprocess.run([sys.executable, "manage.py", "systems", "import-fides", str(fides), "--name", "legacy", "--url", "sqlite://"],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert (converted.returncode, converted.stdout.count("name: legacy\n")) == (0, 1), converted.stderr
    checked = _systems_check(tmp_path)
    assert checked.returncode == 1
    assert f"{tmp_path / 'broken.yaml'}: kind: must be one of sql, object_store, http, python, manual" in checked.stderr


def test_preview_says_what_an_access_and_a_deletion_would_do_in_each_system_and_changes_nothing(tmp_path):
    database = tmp_path / "shop.sqlite3"
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customer (id integer PRIMARY KEY, email text, name text, pin text)"))
        conn.execute(sa.text("CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer, item text, placed_at timestamp)"))
        conn.execute(sa.text("INSERT INTO customer VALUES (1, 'Ada@Example.com', 'Ada', '12'), (2, 'bob@example.com', 'Bob', NULL)"))
        conn.execute(sa.text("INSERT INTO orders VALUES (10, 1, 'tea', '2025-03-01 10:00:00'), (11, 1, 'cup', '2012-03-01 10:00:00'),"
                             " (12, 2, 'pot', '2025-03-01 10:00:00')"))
    (tmp_path / "shop.yaml").write_text(
        f"name: shop\nkind: sql\nconnection: {{url: 'sqlite:///{database}'}}\ntables:\n  - name: customer\n    identity: {{email: email}}\n"
        "    erase: null\n    columns: {name: name_contact, pin: {category: credentials, erase: keep, reason: Fraud checks}}\n"
        "  - name: orders\n    parent: {table: customer, column: customer_id}\n    collected_at: placed_at\n"
        "    columns: {item: interactions.account_history}\n"
        "    retain: {years: 6, basis: legal_obligation, reason: Commercial law, date_column: placed_at}\n")
    product = {"DATABASE_URL", "REDIS_URL", "DSAR_SECRET_KEY", "DJANGO_SETTINGS_MODULE"}
    env = {**{k: v for k, v in os.environ.items() if k not in product}, "DSAR_SYSTEMS": str(tmp_path)}

    def preview(*args: str) -> list[str]:
        answer = subprocess.run([sys.executable, "manage.py", "systems", "preview", *args], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=120)
        assert answer.returncode == 0, answer.stderr
        return answer.stdout.splitlines()

    assert preview("ada@example.com") == [
        "shop.customer: name_contact: 1 record", "shop.customer: credentials: 1 record", "shop.orders: interactions.account_history: 2 records"]
    assert preview(" ADA@example.com ", "--type", "deletion") == [
        "shop.orders: interactions.account_history: kept 1 until 2031-03-01 (Commercial law (legal_obligation))",
        "shop.orders: interactions.account_history: deleted 1",
        "shop.customer: credentials: kept 1 (Fraud checks)",
        "shop.customer: name_contact: nulled 1",
    ]
    assert preview("nobody@example.com", "--type", "deletion") == ["shop: nothing"]
    with engine.connect() as conn:  # nothing changed
        assert conn.execute(sa.text("SELECT count(*), count(name) FROM customer")).one() == (2, 2)
        assert conn.execute(sa.text("SELECT count(*) FROM orders")).scalar() == 3
    engine.dispose()


@pytest.mark.django_db
def test_a_system_whose_connector_cannot_be_built_is_a_problem_of_its_class(settings):
    from connectors.registry import connectors_reset
    from connectors.systems import System

    settings.DSAR_SYSTEMS = {"vault": System("vault", "no_such_package.Vault")}
    connectors_reset()
    [finding] = system_check_run("vault")
    assert (finding.where, finding.problem) == ("class", True)
    assert finding.what.startswith("the connector cannot be built: No module named 'no_such_package'")
