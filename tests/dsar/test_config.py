"""dsar/config.py and dsar/settings.py: one typed layer reads the environment, its reference is
generated from it, a wrong value stops start-up naming the variable, and the values reach Django
and Celery as documented."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from dsar.celery import app as celery_app
from dsar.config import config_load, config_reference

from ..conftest import ROOT

VARIABLES = {
    "DATABASE_URL", "REDIS_URL", "DSAR_BROKER_URL", "DSAR_DATA_DIR", "DSAR_STORAGE", "DSAR_LOG_LEVEL",
    "HOST", "PORT", "DSAR_PUBLIC_URL", "DSAR_ALLOWED_HOSTS", "DSAR_TRUSTED_PROXIES", "DSAR_RATE_LIMITS", "DSAR_SECRET_KEY",
    "DSAR_AUDIT_KEY", "DSAR_AUDIT_HEAD_DIR",
    "EMAIL_FILE_PATH", "DSAR_SMTP_URL", "DSAR_FROM_EMAIL",
    "DSAR_AUTO_APPROVE", "DSAR_REVIEW_BEFORE_RELEASE", "DSAR_EXPORT_TTL_DAYS", "DSAR_JURISDICTION", "DSAR_ANSWER_FILE_MAX_BYTES",
    "DSAR_CHILD_AGE", "DSAR_CHILD_YOUNGEST_AGE",
    "DSAR_TAXONOMY_FILE", "DSAR_SUPERVISORY_AUTHORITY", "DSAR_SYSTEMS", "DSAR_SUPPRESSION_KEY", "DSAR_BRAND",
}
# Read by the demo estate's system files (estate/systems/), not by the settings.
DEMO_VARIABLES = {
    "DSAR_ACCOUNTS_DATABASE_URL", "DSAR_PAYMENTS_DATABASE_URL", "DSAR_THIRD_PARTY_DATABASE_URL", "DSAR_ESTATE_CONTENT_DIR",
    "DSAR_HELPDESK_BASE_URL", "DSAR_HELPDESK_EMAIL", "DSAR_HELPDESK_TOKEN",
}
DEPLOYMENT = {"DATABASE_URL": "postgresql://dsar:pw@db.internal:5432/dsar", "REDIS_URL": "redis://cache.internal:6379/0",
              "DSAR_SECRET_KEY": "s" * 50, "DSAR_AUDIT_KEY": "a" * 32}


@pytest.fixture
def environment(monkeypatch, tmp_path):
    """An environment holding only a deployment's required values (and a data directory of its own);
    returns a function that sets more."""
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in {**DEPLOYMENT, "DSAR_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(variable, value)

    def set_(**values: str) -> None:
        for variable, value in values.items():
            monkeypatch.setenv(variable, value)

    return set_


def test_the_reference_is_the_one_the_settings_layer_generates():
    assert (ROOT / "docs" / "configuration.md").read_text() == config_reference(), "run `make config-docs`"


def test_the_reference_documents_every_variable_and_no_other():
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", (ROOT / "docs" / "configuration.md").read_text(), re.MULTILINE))
    assert documented == VARIABLES | DEMO_VARIABLES
    assert (len(VARIABLES), len(DEMO_VARIABLES)) == (30, 7)


def test_no_module_of_the_product_but_the_settings_layer_reads_the_environment():
    readers = []
    for path in [*(ROOT / "dsar").rglob("*.py"), *(ROOT / "connectors").rglob("*.py")]:
        if path == ROOT / "dsar" / "config.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if ("os.environ" in line or "getenv" in line) and 'setdefault("DJANGO_SETTINGS_MODULE"' not in line:
                readers.append(f"{path.relative_to(ROOT)}:{number}")
    assert readers == []


def test_unset_variables_take_their_documented_defaults(environment):
    config = config_load()
    assert (config.host, config.port, config.public_url) == ("127.0.0.1", 8000, "http://127.0.0.1:8000")
    assert config.allowed_hosts == ["127.0.0.1", "localhost"]
    assert (config.auto_approve, config.review_before_release, config.export_ttl_days) == (False, False, 7)
    assert config.answer_file_max_bytes == 10485760
    assert (config.jurisdiction, config.log_level, config.from_email) == ("gdpr", "INFO", "privacy@example.com")
    assert config.rate_limits.model_dump() == {"file_ip": "30/m", "file_email": "5/h", "file_email_ip": "2/h", "verify_ip": "60/10m"}
    assert (config.storage, config.systems, config.email_file_path, config.suppression_key) == (None, None, None, None)
    assert config.supervisory_authority.model_dump() == {
        "name": "The data protection authority of the country where you live or work",
        "website": "https://www.edpb.europa.eu/about-edpb/about-edpb/members_en"}
    assert (config.child_age.model_dump(), config.child_youngest_age.model_dump()) == (
        {"gdpr": 16, "ccpa": 13}, {"gdpr": 13, "ccpa": 13})
    assert config.brand.model_dump() == {"name": "Example Company", "colour": "#1d4ed8", "logo": None, "contact_email": None,
                                         "privacy_statement_url": None}
    assert config.tls is False
    smtp = config.smtp
    assert (smtp.host, smtp.port, smtp.user, smtp.password, smtp.use_tls, smtp.use_ssl) == ("localhost", 25, "", "", False, False)


def test_values_are_read_with_their_types(environment, tmp_path):
    environment(DSAR_PUBLIC_URL="https://privacy.example.com/", DSAR_AUTO_APPROVE="yes", DSAR_EXPORT_TTL_DAYS="30", DSAR_ANSWER_FILE_MAX_BYTES="2048",
                DSAR_JURISDICTION="CCPA", DSAR_LOG_LEVEL="warning", DSAR_TRUSTED_PROXIES="10.0.0.2, 10.0.0.3",
                DSAR_RATE_LIMITS='{"file_ip": "100/m"}', EMAIL_FILE_PATH=str(tmp_path / "mail"), DSAR_REVIEW_BEFORE_RELEASE="",
                DSAR_STORAGE='{"backend": "storages.backends.s3.S3Storage", "options": {"bucket_name": "exports"}}',
                DSAR_SUPERVISORY_AUTHORITY='{"name": "Datatilsynet", "website": "https://www.datatilsynet.no/"}')
    config = config_load()
    assert (config.public_url, config.tls, config.allowed_hosts) == ("https://privacy.example.com", True,
                                                                     ["privacy.example.com", "127.0.0.1", "localhost"])
    assert (config.auto_approve, config.export_ttl_days, config.jurisdiction, config.log_level) == (True, 30, "ccpa", "WARNING")
    assert config.review_before_release is False  # empty is unset
    assert config.answer_file_max_bytes == 2048
    assert config.trusted_proxies == ["10.0.0.2", "10.0.0.3"]
    assert config.rate_limits.model_dump() == {"file_ip": "100/m", "file_email": "5/h", "file_email_ip": "2/h", "verify_ip": "60/10m"}
    assert config.email_file_path == tmp_path / "mail"
    assert (config.storage.backend, config.storage.options) == ("storages.backends.s3.S3Storage", {"bucket_name": "exports"})
    assert config.supervisory_authority.model_dump() == {"name": "Datatilsynet", "website": "https://www.datatilsynet.no/"}


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://mail.example.com", ("mail.example.com", 25, "", "", False, False)),
    ("smtp+tls://dsar%40example.com:p%3Ass%2Fw@mail.example.com", ("mail.example.com", 587, "dsar@example.com", "p:ss/w", True, False)),
    ("smtps://relay:secret@mail.example.com:2465", ("mail.example.com", 2465, "relay", "secret", False, True)),
])
def test_the_smtp_relay_is_read_from_one_url(environment, url, expected):
    environment(DSAR_SMTP_URL=url)
    smtp = config_load().smtp
    assert (smtp.host, smtp.port, smtp.user, smtp.password, smtp.use_tls, smtp.use_ssl) == expected


def test_the_services_make_run_started_are_read_after_the_environment(environment, monkeypatch, tmp_path):
    (tmp_path / "services.env").write_text("REDIS_URL=redis://127.0.0.1:7777/0\nDATABASE_URL=postgresql://embedded/dsar\n")
    monkeypatch.delenv("REDIS_URL")
    config = config_load()
    assert config.redis_url == "redis://127.0.0.1:7777/0"
    assert config.database_url == "postgresql://dsar:pw@db.internal:5432/dsar"  # the environment's, not the file's


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("DSAR_EXPORT_TTL_DAYS", "seven", "DSAR_EXPORT_TTL_DAYS: Input should be a valid integer, unable to parse string as an integer (got 'seven')"),
    ("DSAR_EXPORT_TTL_DAYS", "0", "DSAR_EXPORT_TTL_DAYS: Input should be greater than or equal to 1 (got '0')"),
    ("DSAR_ANSWER_FILE_MAX_BYTES", "0", "DSAR_ANSWER_FILE_MAX_BYTES: Input should be greater than or equal to 1 (got '0')"),
    ("PORT", "70000", "PORT: Input should be less than or equal to 65535 (got '70000')"),
    ("DSAR_AUTO_APPROVE", "maybe", "DSAR_AUTO_APPROVE: Input should be a valid boolean, unable to interpret input (got 'maybe')"),
    ("DSAR_JURISDICTION", "hipaa", "DSAR_JURISDICTION: Input should be 'gdpr' or 'ccpa' (got 'hipaa')"),
    ("DATABASE_URL", "mysql://db/dsar", "DATABASE_URL: must be a URL beginning with postgresql:// or postgres:// (got 'mysql://db/dsar')"),
    ("REDIS_URL", "cache.internal:6379", "REDIS_URL: must be a URL beginning with redis:// or rediss:// or unix://"),
    ("DSAR_BROKER_URL", "sqs://queue.internal", "DSAR_BROKER_URL: must be a URL beginning with redis:// or rediss:// or amqp:// or amqps://"),
    ("DSAR_PUBLIC_URL", "privacy.example.com", "DSAR_PUBLIC_URL: must be a URL beginning with http:// or https://"),
    ("DSAR_SMTP_URL", "mail.example.com", "DSAR_SMTP_URL: must be a URL beginning with smtp:// or smtp+tls:// or smtps://"),
    ("DSAR_TRUSTED_PROXIES", "10.0.0.2,proxy.local", "DSAR_TRUSTED_PROXIES: 'proxy.local' is not an IP address"),
    ("DSAR_RATE_LIMITS", '{"file_ip": "often"}', "DSAR_RATE_LIMITS['file_ip']: must be calls per window, such as 30/m"),
    ("DSAR_RATE_LIMITS", '{"file_everything": "1/m"}', "DSAR_RATE_LIMITS['file_everything']: Extra inputs are not permitted"),
    ("DSAR_RATE_LIMITS", '{"file_ip": ', "DSAR_RATE_LIMITS: not valid JSON"),
    ("DSAR_STORAGE", '{"options": {}}', "DSAR_STORAGE['backend']: Field required"),
    ("DSAR_SUPERVISORY_AUTHORITY", '{"name": "Datatilsynet"}', "DSAR_SUPERVISORY_AUTHORITY['website']: Field required"),
    ("DSAR_SUPERVISORY_AUTHORITY", '{"name": "", "website": "datatilsynet.no"}',
     "DSAR_SUPERVISORY_AUTHORITY['name']: String should have at least 1 character (got '')\n"
     "DSAR_SUPERVISORY_AUTHORITY['website']: must be a URL beginning with https:// or http:// (got 'datatilsynet.no')"),
    ("DSAR_TAXONOMY_FILE", "/no/such/taxonomy.yaml", "DSAR_TAXONOMY_FILE: Path does not point to a file"),
    ("DSAR_CHILD_AGE", '{"gdpr": 16}', "DSAR_CHILD_AGE['ccpa']: Field required"),
    ("DSAR_CHILD_AGE", '{"gdpr": 21, "ccpa": 13}', "DSAR_CHILD_AGE['gdpr']: Input should be less than or equal to 18 (got 21)"),
    ("DSAR_CHILD_YOUNGEST_AGE", '{"gdpr": 17, "ccpa": 13}', "DSAR_CHILD_YOUNGEST_AGE: must be at most DSAR_CHILD_AGE's age, for gdpr"),
    ("DSAR_BRAND", '{"colour": "#60a5fa"}',
     "DSAR_BRAND['colour']: is too light: white text on it must reach a contrast of 4.5 to 1 (WCAG AA), it reaches 2.5"),
    ("DSAR_BRAND", '{"colour": "blue"}', "DSAR_BRAND['colour']: must be written #rrggbb"),
    ("DSAR_BRAND", '{"name": ""}', "DSAR_BRAND['name']: String should have at least 1 character"),
    ("DSAR_BRAND", '{"contact_email": "privacy team"}', "DSAR_BRAND['contact_email']: must be an email address"),
    ("DSAR_BRAND", '{"privacy_statement_url": "example.com/privacy"}',
     "DSAR_BRAND['privacy_statement_url']: must be a URL beginning with https:// or http://"),
    ("DSAR_BRAND", '{"logo": "/no/such/logo.png"}', "DSAR_BRAND['logo']: Path does not point to a file"),
    ("DSAR_BRAND", '{"slogan": "We care"}', "DSAR_BRAND['slogan']: Extra inputs are not permitted"),
    ("DSAR_LOG_LEVEL", "loud", "DSAR_LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL' (got 'LOUD')"),
])
def test_a_wrong_value_is_refused_naming_the_variable_and_what_is_wrong(environment, variable, value, message):
    environment(**{variable: value})
    with pytest.raises(ImproperlyConfigured) as refused:
        config_load()
    assert str(refused.value).startswith(message)


def test_the_audit_key_is_required_and_read_with_the_head_directory(environment, monkeypatch, tmp_path):
    config = config_load()
    assert (config.audit_key.get_secret_value(), config.audit_head_dir) == ("a" * 32, tmp_path / "audit-heads")
    environment(DSAR_AUDIT_HEAD_DIR=str(tmp_path / "shipped"))
    assert config_load().audit_head_dir == tmp_path / "shipped"
    monkeypatch.delenv("DSAR_AUDIT_KEY")
    with pytest.raises(ImproperlyConfigured) as refused:
        config_load()
    assert str(refused.value).startswith("DSAR_AUDIT_KEY is not set: The key of the audit trail's MACs")


def test_a_short_audit_key_is_refused_without_being_printed(environment):
    environment(DSAR_AUDIT_KEY="hunter2-but-longer")
    with pytest.raises(ImproperlyConfigured) as refused:
        config_load()
    assert str(refused.value) == "DSAR_AUDIT_KEY: must be 32 or more random characters"


def test_a_missing_value_is_named_and_every_problem_is_told_at_once(environment, monkeypatch):
    monkeypatch.delenv("DSAR_SECRET_KEY")
    environment(PORT="eighty")
    with pytest.raises(ImproperlyConfigured) as refused:
        config_load()
    assert str(refused.value).splitlines() == [
        "PORT: Input should be a valid integer, unable to parse string as an integer (got 'eighty')",
        "DSAR_SECRET_KEY is not set: Django's signing key; codes, tokens and status links are keyed with it. 50 or more "
        "random characters. Set it, or use `make run`, which sets it.",
    ]


def _settings_of(environment: dict[str, str], names: list[str], as_django_sees_them: bool = False) -> subprocess.CompletedProcess:
    """Load the product's settings in a fresh interpreter with only `environment` of the product's
    variables; print the named settings as JSON: as dsar/settings.py sets them or, with
    `as_django_sees_them`, as `django.conf.settings` holds them (Django's defaults included)."""
    source = "from django.conf import settings as s" if as_django_sees_them else "import dsar.settings as s"
    script = f"import json; {source}; print(json.dumps({{n: getattr(s, n) for n in {names!r}}}, default=str))"
    others = {k: v for k, v in os.environ.items() if k not in VARIABLES and k != "DJANGO_SETTINGS_MODULE"}
    django = {"DJANGO_SETTINGS_MODULE": "dsar.settings"} if as_django_sees_them else {}
    return subprocess.run([sys.executable, "-c", script], env={**others, **environment, **django}, cwd=ROOT, capture_output=True, text=True)


def test_a_wrong_value_stops_start_up_with_the_variables_name():
    answer = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "dsar.settings", "DSAR_JURISDICTION": "hipaa"})
    assert answer.returncode != 0
    assert "ImproperlyConfigured: DSAR_JURISDICTION: Input should be 'gdpr' or 'ccpa' (got 'hipaa')" in answer.stderr


def test_a_deployments_variables_reach_djangos_settings_and_former_tuning_variables_do_not(tmp_path):
    deployment = {**DEPLOYMENT, "DSAR_DATA_DIR": str(tmp_path), "DSAR_PUBLIC_URL": "https://privacy.example.com", "DSAR_SMTP_URL": "smtp+tls://relay:pw@mail.example.com",
                  "DSAR_FROM_EMAIL": "privacy@company.example",
                  "DSAR_SUPPRESSION_KEY": "suppress",
                  # Constants now: the environment no longer moves them.
                  "DSAR_TASK_LEASE_SECONDS": "1", "DSAR_RETRY_BASE_SECONDS": "9", "DSAR_EMAIL_DELIVERY": "inline", "DSAR_JOB_BATCH": "1"}
    answer = _settings_of(deployment, [
        "ALLOWED_HOSTS", "SESSION_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_REDIRECT_EXEMPT", "SECURE_HSTS_SECONDS", "EMAIL_BACKEND", "EMAIL_HOST",
        "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_USE_TLS", "DEFAULT_FROM_EMAIL", "DSAR_SUPPRESSION_KEY", "DATABASES",
        "DSAR_TASK_LEASE_SECONDS", "DSAR_RETRY_BASE_SECONDS", "DSAR_EMAIL_DELIVERY", "DSAR_JOB_BATCH", "CELERY_DB_REUSE_MAX"])
    assert answer.returncode == 0, answer.stderr
    read = json.loads(answer.stdout)
    assert read["ALLOWED_HOSTS"] == ["privacy.example.com", "127.0.0.1", "localhost"]
    assert (read["SESSION_COOKIE_SECURE"], read["SECURE_SSL_REDIRECT"], read["SECURE_HSTS_SECONDS"]) == (True, True, 31536000)
    # Pages are redirected to HTTPS; the API (refused over HTTP instead) and the health checks are not.
    assert read["SECURE_REDIRECT_EXEMPT"] == ["^api/", "^healthz"]
    assert read["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (read["EMAIL_HOST"], read["EMAIL_PORT"], read["EMAIL_HOST_USER"], read["EMAIL_USE_TLS"]) == ("mail.example.com", 587, "relay", True)
    assert (read["DEFAULT_FROM_EMAIL"], read["DSAR_SUPPRESSION_KEY"]) == ("privacy@company.example", "suppress")
    assert read["DATABASES"]["default"]["HOST"] == "db.internal" and read["DATABASES"]["default"]["CONN_MAX_AGE"] == 60
    assert read["DATABASES"]["default"]["OPTIONS"] == {"prepare_threshold": 5, "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                                                       "keepalives_count": 3, "tcp_user_timeout": 25000}
    assert (read["DSAR_TASK_LEASE_SECONDS"], read["DSAR_RETRY_BASE_SECONDS"], read["DSAR_EMAIL_DELIVERY"], read["DSAR_JOB_BATCH"],
            read["CELERY_DB_REUSE_MAX"]) == (60, 2.0, "worker", 500, 500)


def test_behind_tls_the_session_and_csrf_cookies_are_named_with_the_host_prefix(tmp_path):
    names = ["SESSION_COOKIE_NAME", "CSRF_COOKIE_NAME", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_PATH",
             "CSRF_COOKIE_PATH", "SESSION_COOKIE_DOMAIN", "CSRF_COOKIE_DOMAIN"]
    https = _settings_of({**DEPLOYMENT, "DSAR_DATA_DIR": str(tmp_path), "DSAR_PUBLIC_URL": "https://privacy.example.com"}, names,
                         as_django_sees_them=True)
    assert https.returncode == 0, https.stderr
    # A browser takes a `__Host-` cookie only if it is Secure, with Path=/ and no Domain: all asserted.
    assert json.loads(https.stdout) == {"SESSION_COOKIE_NAME": "__Host-sessionid", "CSRF_COOKIE_NAME": "__Host-csrftoken",
                                        "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SESSION_COOKIE_PATH": "/",
                                        "CSRF_COOKIE_PATH": "/", "SESSION_COOKIE_DOMAIN": None, "CSRF_COOKIE_DOMAIN": None}
    # Over plain HTTP (a developer's machine) a browser would refuse a `__Host-` cookie: Django's names stay.
    http = _settings_of({**DEPLOYMENT, "DSAR_DATA_DIR": str(tmp_path), "DSAR_PUBLIC_URL": "http://localhost:8000"}, names[:2],
                        as_django_sees_them=True)
    assert http.returncode == 0, http.stderr
    assert json.loads(http.stdout) == {"SESSION_COOKIE_NAME": "sessionid", "CSRF_COOKIE_NAME": "csrftoken"}


def test_the_broker_is_the_redis_unless_another_is_named_and_rabbitmq_gets_no_redis_options(tmp_path):
    names = ["CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS", "CACHES"]
    unnamed = _settings_of({**DEPLOYMENT, "DSAR_DATA_DIR": str(tmp_path)}, names)
    assert unnamed.returncode == 0, unnamed.stderr
    read = json.loads(unnamed.stdout)
    assert read["CELERY_BROKER_URL"] == "redis://cache.internal:6379/0"
    assert read["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"] == 3900
    rabbitmq = _settings_of({**DEPLOYMENT, "DSAR_DATA_DIR": str(tmp_path), "DSAR_BROKER_URL": "amqp://dsar:pw@mq.internal:5672/dsar"}, names)
    assert rabbitmq.returncode == 0, rabbitmq.stderr
    read = json.loads(rabbitmq.stdout)
    assert (read["CELERY_BROKER_URL"], read["CELERY_BROKER_TRANSPORT_OPTIONS"]) == ("amqp://dsar:pw@mq.internal:5672/dsar", {})
    assert read["CACHES"]["default"]["LOCATION"] == "redis://cache.internal:6379/0"  # the cache stays on Redis


def test_celery_reads_the_celery_settings_under_its_own_names():
    conf = celery_app.conf
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost, conf.worker_prefetch_multiplier) == (True, True, 1)
    # JSON only and no result backend: Celery's defaults, which the settings rely on.
    assert (conf.task_ignore_result, conf.result_backend, conf.task_serializer, list(conf.accept_content)) == (True, None, "json", ["json"])
    assert conf.task_publish_retry_policy == {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
    assert not conf.deprecated_settings  # no CELERY_ name that Celery would take for one of Celery 3's
    assert (conf.task_time_limit, conf.task_soft_time_limit) == (1860, 1800)
    assert conf.broker_transport_options["visibility_timeout"] == 3900
    assert [queue.name for queue in conf.task_queues] == ["dsar.mail", "dsar.final", "celery"]
    assert conf.task_routes["dsar.tasks.emails_send"] == {"queue": "dsar.mail"}
    # Celery's Django fixup asks for this one by its full name, and finds it.
    assert conf.get("CELERY_DB_REUSE_MAX") == 500
