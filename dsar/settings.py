"""Settings for the DSAR workflow system.

Every value that differs between deployments comes from the environment, read here and nowhere
else (contract §2). `make run` and `make test` start embedded PostgreSQL and Redis when
DATABASE_URL / REDIS_URL are unset and record their URLs in $DSAR_DATA_DIR/services.env, which is
read below so that `manage.py` works beside a running stack.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import dj_database_url
from kombu import Queue
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DSAR_DATA_DIR", BASE_DIR / "var")).resolve()


def _services_env() -> dict[str, str]:
    """URLs of the embedded services that `devstack` started, if it did."""
    path = DATA_DIR / "services.env"
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


_EMBEDDED = _services_env()


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or _EMBEDDED.get(name) or default


def env_int(name: str, default: int) -> int:
    raw = env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None


def env_bool(name: str, default: bool = False) -> bool:
    raw = env(name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be 1 or 0, got {raw!r}")


def env_json(name: str) -> dict:
    raw = env(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ImproperlyConfigured(f"{name} must be a JSON object: {error}") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object")
    return value


def env_required(name: str, hint: str) -> str:
    value = env(name)
    if not value:
        raise ImproperlyConfigured(f"{name} is not set. {hint}")
    return value


DEBUG = env_bool("DSAR_DEBUG", False)
SECRET_KEY = env("DJANGO_SECRET_KEY") or env_required(
    "DSAR_SECRET_KEY", "Set DJANGO_SECRET_KEY, or start the product with `make run`, which makes one."
)
ALLOWED_HOSTS = (env("DSAR_ALLOWED_HOSTS") or "127.0.0.1,localhost,testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pgtrigger",
    "axes",
    "csp",
    "django_celery_beat",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "dsar",
    "estate",  # the demo estate: `load_estate` and `generate_estate`
]

MIDDLEWARE = [
    "dsar.api.errors.BodySizeLimitMiddleware",
    "dsar.middleware.ServiceUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dsar.middleware.ContentSecurityPolicyMiddleware",  # django-csp's, with a constant policy for the API
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out sign-ins before any password check
    "django.contrib.auth.backends.ModelBackend",
]
# Staff sign-in: five failures from one username and address lock it for 15 minutes.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "console/locked_out.html"
LOGIN_URL = "/console/login/"
LOGIN_REDIRECT_URL = "/console/"
OTP_TOTP_ISSUER = "DSAR console"

ROOT_URLCONF = "dsar.urls"
WSGI_APPLICATION = "dsar.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
    {
        # The export report alone (templates/jinja2/): rendered once per access request, where Django's
        # language cost 2.7 times as much. Django's engine stays first, so it serves every other template.
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates" / "jinja2"],
        "APP_DIRS": False,
        "OPTIONS": {"environment": "dsar.jinja2.environment", "keep_trailing_newline": True},
    },
]

# --- Database -------------------------------------------------------------------------------------

DATABASES = {
    "default": dj_database_url.parse(
        env_required("DATABASE_URL", "Point it at PostgreSQL, or use `make run`, which starts one."),
        conn_max_age=env_int("DSAR_DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}


def _prepare_threshold() -> int | None:
    """DSAR_DB_PREPARE_THRESHOLD: after how many runs on a connection psycopg prepares a statement,
    or `off`. Only the statements PostgreSQL binds are ever prepared (the product's hot ones, see
    `lifecycle.server_bound_cursor`); Django's own queries are bound in Python and never are."""
    raw = env("DSAR_DB_PREPARE_THRESHOLD")
    if raw is not None and raw.lower() == "off":
        return None
    threshold = env_int("DSAR_DB_PREPARE_THRESHOLD", 5)
    if threshold < 0:
        raise ImproperlyConfigured(f"DSAR_DB_PREPARE_THRESHOLD must be a whole number of at least 0, or off; got {raw!r}")
    return threshold


# Planning the filing's statement was a quarter of PostgreSQL's CPU per filing. Behind a pooler in
# transaction mode without prepared-statement support (PgBouncer before 1.21, or with
# max_prepared_statements = 0), set DSAR_DB_PREPARE_THRESHOLD=off.
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = _prepare_threshold()
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must be a postgresql:// URL")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery ---------------------------------------------------------------------------------------
# The database row is the job; the message only says which row to look at. Hence: late
# acknowledgement (a killed worker's message comes back), one message prefetched at a time, no
# result backend, and a visibility timeout longer than any task may run, so Redis does not hand a
# running task to a second worker.

REDIS_URL = env_required("REDIS_URL", "Point it at Redis, or use `make run`, which starts one.")
CONNECTOR_TASK_TIME_LIMIT = env_int("DSAR_CONNECTOR_TIME_LIMIT", 30 * 60)
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 2 * CONNECTOR_TASK_TIME_LIMIT + 300,
    # Workers take from their queues in the order listed (CELERY_TASK_QUEUES): a request whose
    # connectors are done is finished before more connector work is started.
    "queue_order_strategy": "priority",
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = CONNECTOR_TASK_TIME_LIMIT + 60
CELERY_TASK_SOFT_TIME_LIMIT = CONNECTOR_TASK_TIME_LIMIT
# Emails (a person waits for the code) and final steps have queues of their own, listed first:
# every worker consumes all three, in this order.
CELERY_TASK_QUEUES = [Queue("dsar.mail"), Queue("dsar.final"), Queue("celery")]
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {"dsar.tasks.emails_send": {"queue": "dsar.mail"}, "dsar.tasks.request_finalize": {"queue": "dsar.final"}}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A worker keeps its database connection across tasks (a new one costs PostgreSQL a process
# start per task); dsar/tasks.py checks it before each task, as Django does per web request.
CELERY_DB_REUSE_MAX = env_int("DSAR_WORKER_DB_REUSE_MAX", 500)
CELERY_WORKER_SEND_TASK_EVENTS = False
# Publishing gives up fast when the broker is down: the committed row is the job, and the sweeper
# rings again, so a web request never hangs on a dead broker.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Rate limits that are security controls (dsar/throttle.py), counted in the cache's Redis.
DSAR_RATE_LIMITS = {
    "file_ip": "30/m",
    "file_email": "5/h",
    "verify_ip": "60/10m",
    "verify_email": "20/h",
    **env_json("DSAR_RATE_LIMITS"),
}
for _scope, _rate in DSAR_RATE_LIMITS.items():
    if not isinstance(_rate, str) or not re.fullmatch(r"\d+/\d*[smhd]", _rate):
        raise ImproperlyConfigured(f"DSAR_RATE_LIMITS: {_scope} must be calls/window, such as 30/m, 60/10m or 5/h; got {_rate!r}")
DSAR_TRUSTED_PROXIES = [p for p in (env("DSAR_TRUSTED_PROXIES") or "").split(",") if p]
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "dsar",
        "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
    }
}

# --- Email ----------------------------------------------------------------------------------------

EMAIL_FILE_PATH = env("EMAIL_FILE_PATH")
if EMAIL_FILE_PATH:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
else:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = env("EMAIL_HOST", "localhost")
    EMAIL_PORT = env_int("EMAIL_PORT", 25)
    EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# A relay that accepts and never answers must not hold a worker forever (Django's own default).
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
# Who sends the emails queued in the database (dsar/notifications.py): a worker, rung once the
# change commits, or ("inline") the process that commits, as the tests do to read mail in-process.
DSAR_EMAIL_DELIVERY = env("DSAR_EMAIL_DELIVERY", "worker")
if DSAR_EMAIL_DELIVERY not in ("worker", "inline"):
    raise ImproperlyConfigured(f"DSAR_EMAIL_DELIVERY must be worker or inline; got {DSAR_EMAIL_DELIVERY!r}")
DSAR_EMAIL_GIVE_UP_HOURS = env_int("DSAR_EMAIL_GIVE_UP_HOURS", 72)
DEFAULT_FROM_EMAIL = env("DSAR_FROM_EMAIL", "privacy@example.com")

# --- Storage --------------------------------------------------------------------------------------
# Exports and the work area connector tasks write to before assembly. Both go through Django's
# storage API: S3 via django-storages is configuration (DSAR_STORAGE_BACKEND and its OPTIONS).

_storage_backend = env("DSAR_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage")
_storage_options = env_json("DSAR_STORAGE_OPTIONS") or (
    {"location": str(DATA_DIR / "storage")} if _storage_backend.endswith("FileSystemStorage") else {}
)
STORAGES = {
    "default": {"BACKEND": _storage_backend, "OPTIONS": _storage_options},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

# --- The product ----------------------------------------------------------------------------------

DSAR_PUBLIC_URL = (env("DSAR_PUBLIC_URL") or f"http://{env('HOST', '127.0.0.1')}:{env('PORT', '8000')}").rstrip("/")
DSAR_AUTO_APPROVE = env_bool("DSAR_AUTO_APPROVE", False)
DSAR_EXPORT_TTL_DAYS = env_int("DSAR_EXPORT_TTL_DAYS", 7)
DSAR_JURISDICTION = (env("DSAR_JURISDICTION") or "gdpr").lower()
DSAR_CODE_TTL_MINUTES = env_int("DSAR_CODE_TTL_MINUTES", 30)
DSAR_CODE_MAX_ATTEMPTS = 5
DSAR_CODE_RESEND_SECONDS = env_int("DSAR_CODE_RESEND_SECONDS", 60)
# 1: a completed access request's export waits for staff to release it after a look at its summary.
DSAR_REVIEW_BEFORE_RELEASE = env_bool("DSAR_REVIEW_BEFORE_RELEASE", False)
DSAR_CONNECTOR_MAX_ATTEMPTS = env_int("DSAR_CONNECTOR_MAX_ATTEMPTS", 5)
# A running task (or final step) holds a lease that its worker renews every third of it; once a
# dead worker's lease runs out, the sweeper revives the work. Short, so recovery takes a minute or
# two rather than the time limit.
DSAR_TASK_LEASE_SECONDS = env_int("DSAR_TASK_LEASE_SECONDS", 60)
DSAR_RETRY_BASE_SECONDS = float(env("DSAR_RETRY_BASE_SECONDS") or 2.0)
DSAR_RETRY_MAX_SECONDS = float(env("DSAR_RETRY_MAX_SECONDS") or 300.0)
DSAR_MAX_BODY_BYTES = 64 * 1024

# Scheduled jobs (dsar/jobs.py). Each is bounded per run; the schedule itself lives in the database.
DSAR_REMINDER_DAYS = [int(d) for d in (env("DSAR_REMINDER_DAYS") or "7,2").split(",")]
DSAR_SWEEP_QUEUED_MINUTES = float(env("DSAR_SWEEP_QUEUED_MINUTES") or 10)
DSAR_MAX_SWEEPS = env_int("DSAR_MAX_SWEEPS", 3)
DSAR_UNVERIFIED_PURGE_DAYS = env_int("DSAR_UNVERIFIED_PURGE_DAYS", 7)
DSAR_RECORD_RETENTION_MONTHS = env_int("DSAR_RECORD_RETENTION_MONTHS", 24)
DSAR_ERASURE_CHECK_HOURS = env_int("DSAR_ERASURE_CHECK_HOURS", 24)
DSAR_JOB_BATCH = env_int("DSAR_JOB_BATCH", 500)

# Connectors: name -> {"class": dotted path, "options": {...}}. A deployment lists its own systems
# here (an SQL system's "url" option, or DSAR_<SYSTEM>_DATABASE_URL, says where its database is;
# by default the demo estate's database on the product's server); DSAR_EXTRA_CONNECTORS ("name=dotted.Class,other=...") adds more without editing this file.
_DATASETS = BASE_DIR / "estate" / "datasets"  # the demo estate's systems


DSAR_CONNECTORS: dict[str, dict] = {
    "accounts": {
        "class": "connectors.sql_rendered.RenderedSqlConnector",
        "options": {"dataset": str(_DATASETS / "accounts.yaml"), "url": env("DSAR_ACCOUNTS_DATABASE_URL")},
    },
    "payments": {
        "class": "connectors.sql.SqlConnector",
        "options": {"dataset": str(_DATASETS / "payments.yaml"), "url": env("DSAR_PAYMENTS_DATABASE_URL")},
    },
    "content": {
        "class": "connectors.content.ContentStorageConnector",
        "options": {
            "backend": env("DSAR_CONTENT_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage"),
            "storage_options": env_json("DSAR_CONTENT_STORAGE_OPTIONS") or {"location": str(DATA_DIR / "estate" / "content")},
        },
    },
    "support": {
        "class": "connectors.support.ZendeskConnector",
        "options": {
            "base_url": env("DSAR_HELPDESK_URL", "http://127.0.0.1:8025"),
            "email": env("DSAR_HELPDESK_EMAIL", "dsar@example.com"),
            "token": env("DSAR_HELPDESK_TOKEN", ""),
        },
    },
    "third_party": {
        "class": "connectors.third_party.ThirdPartyConnector",
        "options": {"dataset": str(_DATASETS / "third_party.yaml"), "url": env("DSAR_THIRD_PARTY_DATABASE_URL")},
    },
}
for _item in filter(None, (env("DSAR_EXTRA_CONNECTORS") or "").split(",")):
    _name, _, _path = _item.partition("=")
    if not _path:
        raise ImproperlyConfigured(f"DSAR_EXTRA_CONNECTORS entry {_item!r} is not name=dotted.path")
    DSAR_CONNECTORS[_name.strip()] = {"class": _path.strip(), "options": {}}
# A connector's own time limit per attempt ({"support": 120}); past it the attempt is stopped and
# retried like any transient error. Unset: DSAR_CONNECTOR_TIME_LIMIT.
for _name, _seconds in env_json("DSAR_CONNECTOR_TIME_LIMITS").items():
    if _name not in DSAR_CONNECTORS or not isinstance(_seconds, int) or _seconds < 1:
        raise ImproperlyConfigured(f"DSAR_CONNECTOR_TIME_LIMITS: {_name!r} must name a connector and give whole seconds")
    DSAR_CONNECTORS[_name]["time_limit"] = _seconds

# --- API ------------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "dsar.api.common.AnswerDespiteAccept",
    "EXCEPTION_HANDLER": "dsar.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DSAR workflow API",
    "DESCRIPTION": "File and follow data subject access and deletion requests; review them as staff.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "REDOC_DIST": "SIDECAR",  # served from our own static files: the docs page works offline

    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "dsar.api.schema.forbid_unknown_request_fields",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RequestTypeEnum": "dsar.models.RequestType",
        "RequestStatusEnum": "dsar.models.Status",
        "TaskStatusEnum": "dsar.models.TaskStatus",
    },
}

# --- Security and logging -------------------------------------------------------------------------

DATA_UPLOAD_MAX_MEMORY_SIZE = DSAR_MAX_BODY_BYTES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 8 * 3600
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Behind TLS (DSAR_TLS=1): cookies only over HTTPS, HSTS, and redirects to HTTPS. A proxy that
# terminates TLS must set X-Forwarded-Proto.
if env_bool("DSAR_TLS", False):
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 365 * 86400
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
# Nothing runs but our own files: no inline script or style, no framing, forms post only to us.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("DSAR_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
DSAR_TAXONOMY_FILE = env("DSAR_TAXONOMY_FILE", str(BASE_DIR / "dsar" / "taxonomy.yaml"))
