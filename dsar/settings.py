"""Django settings of the DSAR workflow system.

What differs between deployments is read from the environment by `dsar/config.py` (the reference
is docs/configuration.md) and mapped here onto Django's settings; everything else is a constant.
"""

from __future__ import annotations

import dj_database_url
from kombu import Queue

from connectors.systems import SystemsDirectory

from .config import BASE_DIR, DEMO_SYSTEMS, Storage, config_load, systems_environment

config = config_load()

DATA_DIR = config.data_dir
DEBUG = False
SECRET_KEY = config.secret_key.get_secret_value()
ALLOWED_HOSTS = config.allowed_hosts

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
    "dsar.middleware.HttpsOnlyApiMiddleware",  # behind TLS the API is refused over HTTP, not redirected
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "dsar.middleware.NoStoreMiddleware",  # after WhiteNoise, so static files keep their caching
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The person's language: the switch's cookie, else their browser's (Accept-Language); the console's English.
    "dsar.middleware.PeopleLocaleMiddleware",
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
# Per member, from any address (guesses spread over many addresses lock too), and per address
# (guesses spread over many members). The address is the client's as the rate limits see it
# (behind DSAR_TRUSTED_PROXIES).
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "dsar.throttle.client_address"
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
                "dsar.branding.brand",
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

DATABASES = {"default": dj_database_url.parse(config.database_url, conn_max_age=60, conn_health_checks=True)}
# After how many runs on a connection psycopg prepares a statement. Only the statements PostgreSQL
# binds are ever prepared (the product's hot ones); Django's own queries are bound in Python and
# never are. Behind a pooler in transaction mode, the pooler must keep prepared statements
# (PgBouncer 1.21 or later, with max_prepared_statements set).
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
# And the client's side of dsar/apps.py's keepalives: a worker gives up on a silent database server
# within about 25 s rather than a quarter of an hour (libpq's options, not sent to the server).
DATABASES["default"]["OPTIONS"].update(keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3, tcp_user_timeout=25_000)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery ---------------------------------------------------------------------------------------
# The database row is the job; the message only says which row to look at. Hence: late
# acknowledgement (a killed worker's message comes back), one message prefetched at a time, no
# result backend, and a visibility timeout longer than any task may run, so Redis does not hand a
# running task to a second worker. dsar/celery.py reads every CELERY_* name below, and sets the
# one setting whose CELERY_ name Celery would take for one of its Celery 3 names.

REDIS_URL = config.redis_url
CONNECTOR_TASK_TIME_LIMIT = 30 * 60  # seconds; a connector may set a shorter "time_limit" of its own
CELERY_BROKER_URL = config.broker_url or REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The options of Redis as a broker. RabbitMQ needs none of them: it hands an unacknowledged message
# to another worker only once the connection that took it is gone, and has no order among queues
# (a worker takes from all three as messages come).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 2 * CONNECTOR_TASK_TIME_LIMIT + 300,
    # Workers take from their queues in the order listed (CELERY_TASK_QUEUES): a request whose
    # connectors are done is finished before more connector work is started.
    "queue_order_strategy": "priority",
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
} if CELERY_BROKER_URL.startswith(("redis", "unix")) else {}
# JSON only and no result backend are Celery's own defaults; results are not even stored.
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
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A worker keeps its database connection across tasks (a new one costs PostgreSQL a process start
# per task); dsar/tasks.py checks it before each task, as Django does per web request. Celery's
# Django fixup reads this name as it is.
CELERY_DB_REUSE_MAX = 500
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Rate limits that are security controls (dsar/throttle.py), counted in the cache's Redis.
DSAR_RATE_LIMITS = config.rate_limits.model_dump()
DSAR_TRUSTED_PROXIES = config.trusted_proxies
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "dsar",
        "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
    }
}

# --- Email ----------------------------------------------------------------------------------------

EMAIL_FILE_PATH = config.email_file_path and str(config.email_file_path)
EMAIL_BACKEND = f"django.core.mail.backends.{'filebased' if EMAIL_FILE_PATH else 'smtp'}.EmailBackend"
_smtp = config.smtp
EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = _smtp.host, _smtp.port, _smtp.user, _smtp.password
EMAIL_USE_TLS, EMAIL_USE_SSL = _smtp.use_tls, _smtp.use_ssl
# A relay that accepts and never answers must not hold a worker forever (Django's own default).
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = config.from_email
# Who sends the emails queued in the database (dsar/notifications.py): a worker, rung once the
# change commits, or ("inline") the process that commits, as the tests do to read mail in-process.
DSAR_EMAIL_DELIVERY = "worker"
DSAR_EMAIL_GIVE_UP_HOURS = 72  # an email the relay kept failing this long is given up, and the audit trail says so

# --- Storage --------------------------------------------------------------------------------------
# Exports and the work area connector tasks write to before assembly. Both go through Django's
# storage API: S3 via django-storages is configuration (DSAR_STORAGE).

_LOCAL_FILES = "django.core.files.storage.FileSystemStorage"
_storage = config.storage or Storage(backend=_LOCAL_FILES, options={"location": str(DATA_DIR / "storage")})
STORAGES = {
    "default": {"BACKEND": _storage.backend, "OPTIONS": _storage.options},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

# --- The product ----------------------------------------------------------------------------------

DSAR_PUBLIC_URL = config.public_url
DSAR_AUTO_APPROVE = config.auto_approve
DSAR_EXPORT_TTL_DAYS = config.export_ttl_days
DSAR_JURISDICTION = config.jurisdiction
DSAR_CHILD_AGE = config.child_age.model_dump()
DSAR_CHILD_YOUNGEST_AGE = config.child_youngest_age.model_dump()
DSAR_SUPERVISORY_AUTHORITY = config.supervisory_authority.model_dump()
# The company as people see it (dsar/branding.py): its name, accent colour, logo file, contact and statement.
DSAR_BRAND = {**config.brand.model_dump(), "contact_email": config.brand.contact_email or config.from_email}
# 1: a completed access request's export waits for staff to release it after a look at its summary.
DSAR_REVIEW_BEFORE_RELEASE = config.review_before_release
# The largest file a person may attach to their answer to a staff question (dsar/services.py, request_answer).
DSAR_ANSWER_FILE_MAX_BYTES = config.answer_file_max_bytes
DSAR_CODE_TTL_MINUTES = 10  # ASVS 6.5.5: an emailed code lives at most 10 minutes; a slow mail is resent from the page
DSAR_CODE_MAX_ATTEMPTS = 5
DSAR_CODE_RESEND_SECONDS = 60
DSAR_CONNECTOR_MAX_ATTEMPTS = 5
# A running task (or final step) holds a lease that its worker renews every third of it; once a
# dead worker's lease runs out, the sweeper revives the work. Short, so recovery takes a minute or
# two rather than the time limit.
DSAR_TASK_LEASE_SECONDS = 60
# Transient errors are retried with exponential backoff from the base, capped at the maximum.
DSAR_RETRY_BASE_SECONDS = 2.0
DSAR_RETRY_MAX_SECONDS = 300.0
DSAR_MAX_BODY_BYTES = 64 * 1024
# Telling a recipient of an erasure (dsar/recipients/): attempts, with the backoff above, before it
# fails and admins are alerted (12 to 24 minutes of trying), and how long a webhook may take to answer.
DSAR_RECIPIENT_NOTIFY_MAX_ATTEMPTS = 12
DSAR_WEBHOOK_TIMEOUT_SECONDS = 10

# Scheduled jobs (dsar/jobs.py). Each is bounded per run; the schedule itself lives in the database.
DSAR_REMINDER_DAYS = [7, 2]  # staff are reminded this many days before a request is due
DSAR_SWEEP_QUEUED_MINUTES = 10.0  # a queued task this long past due lost its message: ring again
DSAR_MAX_SWEEPS = 3
DSAR_UNVERIFIED_PURGE_DAYS = 7
# A question the person has not answered is emailed again this many days after it was asked, and as
# many after each reminder, at most this many times.
DSAR_QUESTION_REMINDER_DAYS = 7
DSAR_QUESTION_REMINDERS = 2
DSAR_RECORD_RETENTION_MONTHS = 24
DSAR_ERASURE_CHECK_HOURS = 24
DSAR_JOB_BATCH = 500

# The systems that hold personal data, one file each (connectors/systems.py): DSAR_SYSTEMS, or
# the demo estate's, whose data `make run` then loads.
DSAR_DEMO_ESTATE = config.systems is None
DSAR_SYSTEMS_AT_START_UP = True  # read and checked when Django starts
DSAR_SYSTEMS = SystemsDirectory(config.systems or BASE_DIR / DEMO_SYSTEMS, environ=systems_environment(config))
# The key of the third-party suppression list's hashes (connectors/third_party.py); None: derived
# from SECRET_KEY.
DSAR_SUPPRESSION_KEY = config.suppression_key and config.suppression_key.get_secret_value()
# The audit trail's MAC key, and where its newest head is shipped (dsar/lifecycle.py).
DSAR_AUDIT_KEY = config.audit_key.get_secret_value()
DSAR_AUDIT_HEAD_DIR = config.audit_head_dir

# --- API ------------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["dsar.api.common.NestingSafeJSONParser"],
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
        "dsar.api.schema.document_malformed_request_answer",
        "dsar.api.schema.document_https_required_answer",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RequestTypeEnum": "dsar.models.RequestType",
        "RequestStatusEnum": "dsar.models.Status",
        "TaskStatusEnum": "dsar.models.TaskStatus",
        "QuestionPurposeEnum": "dsar.models.QuestionPurpose",
        "DenialGroundEnum": "dsar.models.DenialGround",
        "RetentionReasonEnum": "dsar.exports.RETENTION_REASONS",
        "AuthorityEnum": "dsar.models.Authority",
    },
}

# --- Security and logging -------------------------------------------------------------------------

DATA_UPLOAD_MAX_MEMORY_SIZE = DSAR_MAX_BODY_BYTES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 8 * 3600
CSRF_COOKIE_HTTPONLY = True
# Flashed messages live in the session, not in a cookie of their own: one carries a new member's
# one-time setup code, and a cookie's content is signed but readable.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Reached over HTTPS (an https:// DSAR_PUBLIC_URL): cookies only over HTTPS, HSTS, and redirects to
# HTTPS. A proxy that terminates TLS must set X-Forwarded-Proto.
if config.tls:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    # `__Host-`: the browser takes the cookie only if it is Secure, has Path=/ and no Domain (as
    # Django sets them), so no sibling host or plain-HTTP page can plant or overwrite it (ASVS 3.3.1).
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SECURE_SSL_REDIRECT = True
    # Pages are redirected to HTTPS; the API is refused over HTTP (dsar/middleware.py,
    # HttpsOnlyApiMiddleware), and the health checks, which load balancers probe inside the network,
    # are answered as they come.
    SECURE_REDIRECT_EXEMPT = [r"^api/", r"^healthz"]
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
    # Not the member's username or email (ASVS 6.2.11), nor the product's and the organisation's names:
    # these words, and the names in DSAR_PUBLIC_URL's host and DSAR_FROM_EMAIL's domain (dsar/passwords.py).
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "dsar.passwords.ContextWordsValidator", "OPTIONS": {"words": ["dsar", "privacy", "console"]}},
]
LANGUAGE_CODE = "en"
# The languages people can read the portal, their emails and their export in.
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
TIME_ZONE = "UTC"
USE_I18N = True
# The catalogues (dsar/locale, made by `make messages`) and each language's date formats.
LOCALE_PATHS = [BASE_DIR / "dsar" / "locale"]
FORMAT_MODULE_PATH = ["dsar.formats_locale"]
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Django logs the path of every 4xx and 5xx: a mistyped download link's signature among them.
    "filters": {"redacted": {"()": "dsar.access_log.RedactingFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redacted"]}},
    "root": {"handlers": ["console"], "level": config.log_level},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
DSAR_TAXONOMY_FILE = str(config.taxonomy_file)
