"""The test harness: real PostgreSQL, real Redis, and a real Celery worker process.

Run through `make test` (or `python -m devstack test -k ...`), which starts the services and
points DJANGO_SETTINGS_MODULE at tests/settings.py (the probe connector, mail read in-process).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import translation
from rest_framework.test import APIClient

from connectors.registry import connectors_reset
from connectors.sql import with_driver
from estate.loader import estate_load, estate_parse
from estate.stores import estate_database_drop
from dsar.celery import app as celery_app
from dsar.staff import ROLE_ADMIN, ROLE_REVIEWER, staff_token_create, staff_user_ensure

from .support.processes import process_stop
from .support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    if "probe" not in settings.DSAR_SYSTEMS:
        raise pytest.UsageError("Run the tests with `make test` or `python -m devstack test`: the probe connector is not configured.")
    # A test run starts with no exports and no content files.
    shutil.rmtree(settings.STORAGES["default"]["OPTIONS"]["location"], ignore_errors=True)
    shutil.rmtree(settings.DSAR_SYSTEMS["content"].options["storage_options"]["location"], ignore_errors=True)


def _truncate_with_audit_guards_aside(execute, sql, params, many, context):
    """A TRUNCATE run with the audit tables' triggers set aside for its transaction, as only a
    superuser can (the harness connects as one): the triggers read no setting a lesser role could make.

    The suite's one worker outlives each test and may still be finishing its work (an email, a
    sweep) as the tables are emptied: PostgreSQL may then end the TRUNCATE as one side of a deadlock.
    It is tried again, in a savepoint, once the worker's transaction has gone."""
    if not sql.lstrip().upper().startswith("TRUNCATE"):
        return execute(sql, params, many, context)
    sql = f"SET LOCAL session_replication_role = replica; {sql}"
    for attempt in range(1, 6):
        try:
            with transaction.atomic():
                return execute(sql, params, many, context)
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) != "40P01" or attempt == 5:  # deadlock_detected
                raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """A transactional test ends by truncating every table; the audit tables refuse TRUNCATE but
    to a superuser who sets their triggers aside, as the harness does here, around the tests'
    teardown and nowhere else."""
    with connection.execute_wrapper(_truncate_with_audit_guards_aside):
        return (yield)


@pytest.fixture(autouse=True)
def audit_heads(settings, tmp_path_factory):
    """Each test ships audit heads to a directory of its own: the trail is emptied between tests,
    so a head one test shipped is in no other test's chain."""
    settings.DSAR_AUDIT_HEAD_DIR = tmp_path_factory.mktemp("audit-heads")
    return settings.DSAR_AUDIT_HEAD_DIR


@pytest.fixture(autouse=True)
def default_language():
    """Each test ends in the default language. LocaleMiddleware leaves the language it chose for a
    request active on the thread, and a test calling a service directly after a German request
    would read the service's refusals in German."""
    yield
    translation.deactivate()


def database_url(db: dict) -> str:
    host = db.get("HOST") or ""
    host = quote(host, safe="") if host.startswith("/") else host
    port = f":{db['PORT']}" if db.get("PORT") else ""
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    return f"postgresql://{db.get('USER') or ''}{password}@{host}{port}/{db['NAME']}"


@pytest.fixture(scope="session")
def estate(django_db_setup, django_db_blocker):
    """The demo estate, freshly loaded into this test run's estate databases."""
    with django_db_blocker.unblock():
        estate_database_drop("accounts")
        import json

        estate_load(estate_parse(json.loads((ROOT / "estate" / "demo.json").read_text())))
    yield
    with django_db_blocker.unblock():
        estate_database_drop("accounts")


@pytest.fixture
def organisation_systems_only(settings):
    """The deployment's systems: the demo's accounts system alone, whose data of an account an
    organisation manages is that organisation's; so such a person's request is referred whole."""
    settings.DSAR_SYSTEMS = {"accounts": settings.DSAR_SYSTEMS["accounts"]}
    connectors_reset()
    yield
    connectors_reset()


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker, estate, tmp_path_factory):
    """A real Celery worker process on this run's test database."""
    with django_db_blocker.unblock():
        url = database_url(connection.settings_dict)
    mail_dir = tmp_path_factory.mktemp("worker-mail")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.worker_settings", "DATABASE_URL": url, "EMAIL_FILE_PATH": str(mail_dir)}
    celery_app.control.purge()
    name = f"test-{uuid.uuid4().hex[:8]}@%h"
    log = tmp_path_factory.mktemp("worker-log") / "worker.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "dsar", "worker", "-l", "info", "-c", "2", "-n", name,
         "--without-mingle", "--without-gossip"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    process.log = log
    try:
        wait_for(lambda: process.poll() is not None or celery_app.control.ping(timeout=0.5), timeout=60, what="the Celery worker to answer")
        assert process.poll() is None, "the Celery worker exited at start-up"
        process.mail_dir = mail_dir
        yield process
    finally:
        process_stop(process)


@pytest.fixture
def api(estate) -> APIClient:
    """A client of the subject API; the estate exists, since verification asks its systems."""
    return APIClient()


def _staff_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def reviewer_token(db) -> str:
    """A staff API token of the reviewer rita."""
    return staff_token_create(user=staff_user_ensure(username="rita", role=ROLE_REVIEWER))


@pytest.fixture
def reviewer(reviewer_token) -> APIClient:
    return _staff_client(reviewer_token)


@pytest.fixture
def admin_client(db) -> APIClient:
    return _staff_client(staff_token_create(user=staff_user_ensure(username="ada", role=ROLE_ADMIN)))


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """The URL of an empty MariaDB database of the test's own, dropped after it, on the server
    `python -m devstack test` makes sure of (DSAR_TEST_MYSQL_URL)."""
    server = os.environ.get("DSAR_TEST_MYSQL_URL")
    if not server:
        pytest.fail("DSAR_TEST_MYSQL_URL is not set: run the tests with `make test` or `python -m devstack test`")
    name = f"dsar_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(with_driver(server))
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    yield sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    engine.dispose()


@pytest.fixture
def unique_email():
    def make(name: str = "subject") -> str:
        return f"{name}.{uuid.uuid4().hex[:10]}@example.com"

    return make


CODE = re.compile(r"\b(\d{8})\b")


def code_from(mailoutbox, email: str) -> str:
    """The verification code in the last email sent to `email`."""
    messages = [m for m in mailoutbox if email in m.to]
    assert messages, f"no email was sent to {email}"
    match = CODE.search(messages[-1].body)
    assert match, "the email holds no code"
    return match.group(1)
