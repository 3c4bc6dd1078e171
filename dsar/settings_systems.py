"""The settings of `manage.py systems ...` (manage.py chooses them): the commands read the systems'
files and reach the systems themselves, so they need neither the product's database nor its broker
nor its secret. When the product's database is configured, `systems check` records its result
there for the workers and the console."""

from __future__ import annotations

import secrets

import dj_database_url

from connectors.systems import SystemsDirectory

from .config import BASE_DIR, DEMO_SYSTEMS, SystemsCommandConfig, config_load, systems_environment

config = config_load(SystemsCommandConfig)

DATA_DIR = config.data_dir
# Nothing these commands do is signed; a key of the moment keeps Django content.
SECRET_KEY = config.secret_key.get_secret_value() if config.secret_key else secrets.token_urlsafe(50)
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "pgtrigger", "dsar"]
DATABASES = {"default": dj_database_url.parse(config.database_url)} if config.database_url else {}
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING_CONFIG = None

DSAR_TAXONOMY_FILE = config.taxonomy_file
DSAR_DEMO_ESTATE = config.systems is None
# Read by the commands that use them (check, preview): scan and import-fides need none configured.
DSAR_SYSTEMS_AT_START_UP = False
DSAR_SYSTEMS = SystemsDirectory(config.systems or BASE_DIR / DEMO_SYSTEMS, environ=systems_environment(config))
DSAR_SUPPRESSION_KEY = config.suppression_key and config.suppression_key.get_secret_value()
