"""The deployment's configuration: every environment variable the product reads, with its type,
default and meaning, in one typed class. `dsar/settings.py` maps it onto Django's settings, and no
other module reads the environment.

`make run` and `make test` start PostgreSQL and Redis when DATABASE_URL and REDIS_URL are unset,
and `make run` records their URLs in $DSAR_DATA_DIR/services.env, which is read after the
environment so that `manage.py` works beside a running stack.

A value that cannot be used stops start-up with an ImproperlyConfigured naming the variable and
what is wrong with it. `python -m dsar.config` prints the reference, docs/configuration.md.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from dotenv import dotenv_values
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, FilePath, SecretStr, ValidationError, ValidationInfo, field_validator,
                      model_validator)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, DotEnvSettingsSource, NoDecode, SettingsConfigDict

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = BASE_DIR / "var"
EMBEDDED_SERVICES_FILE = "services.env"
DEMO_SYSTEMS = "estate/systems"  # the demo estate's system files, served when DSAR_SYSTEMS is unset  # written by `make run` (devstack.py) under DSAR_DATA_DIR

# A rate limit: calls per window, such as 30/m, 60/10m or 5/h (dsar/throttle.py parses it).
RATE = r"^(\d+)/(\d*)([smhd])$"


def _matching(pattern: str, what: str):
    """A validator of text that must match `pattern`, saying `what` it must be otherwise."""
    def check(value: str) -> str:
        if not re.match(pattern, value):
            raise ValueError(f"must be {what}")
        return value

    return AfterValidator(check)


Rate = Annotated[str, _matching(RATE, "calls per window, such as 30/m, 60/10m, 5/h or 1/d")]
DottedPath = Annotated[str, _matching(r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$", "the dotted path of a class")]
# Lists are written comma-separated and JSON is parsed here, so a wrong value gets a plain message.
CommaSeparated = Annotated[list[str], NoDecode]


class RateLimits(BaseModel):
    """The limits that are security controls (dsar/throttle.py says why each is counted as it is):
    filing per client network, per email and per email from one network; code attempts per network."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file_ip: Rate = "30/m"
    file_email: Rate = "5/h"
    file_email_ip: Rate = "2/h"
    verify_ip: Rate = "60/10m"


class Storage(BaseModel):
    """A Django storage: its class and the keyword arguments it is built with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: DottedPath
    options: dict[str, Any] = {}


class Smtp(BaseModel):
    """An SMTP relay, read from a URL: smtp:// (plain), smtp+tls:// (STARTTLS) or smtps:// (TLS)."""

    host: str
    port: int
    user: str
    password: str
    use_tls: bool
    use_ssl: bool


def _json_object(raw: Any) -> Any:
    """A JSON object given as text (pydantic would only say the text is not an object)."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error})") from None


def _url(raw: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in schemes:
        raise ValueError(f"must be a URL beginning with {' or '.join(f'{s}://' for s in schemes)}")
    if not parts.netloc and parts.scheme != "unix":
        raise ValueError("names no host")
    return raw


class Authority(BaseModel):
    """A data protection supervisory authority, as the export's report names it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1)]
    website: str

    @field_validator("website")
    @classmethod
    def _web(cls, value: str) -> str:
        return _url(value, ("https", "http"))


class AgesByLaw(BaseModel):
    """An age in whole years under each law a request can be answered under."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gdpr: int = Field(ge=0, le=18)
    ccpa: int = Field(ge=0, le=18)


# A placeholder that is at least true anywhere in the EEA: the board's page lists every national
# authority. A deployment names its own lead authority.
PLACEHOLDER_AUTHORITY = Authority(name="The data protection authority of the country where you live or work",
                                  website="https://www.edpb.europa.eu/about-edpb/about-edpb/members_en")


def _contrast_with_white(colour: str) -> float:
    """WCAG 2's contrast ratio of `colour` (#rrggbb) with white."""
    def linear(channel: int) -> float:
        value = channel / 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(int(colour[i:i + 2], 16)) for i in (1, 3, 5))
    return 1.05 / (0.2126 * red + 0.7152 * green + 0.0722 * blue + 0.05)


class Brand(BaseModel):
    """The company as people see it on the portal's pages, the console and in the emails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=80)] = "Example Company"
    colour: str = "#1d4ed8"
    logo: FilePath | None = None
    contact_email: str | None = None
    privacy_statement_url: str | None = None

    @field_validator("colour")
    @classmethod
    def _readable(cls, value: str) -> str:
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            raise ValueError("must be written #rrggbb")
        if _contrast_with_white(value) < 4.5:
            raise ValueError(f"is too light: white text on it must reach a contrast of 4.5 to 1 (WCAG AA), "
                             f"it reaches {_contrast_with_white(value):.1f}")
        return value.lower()

    @field_validator("logo")
    @classmethod
    def _image(cls, value: Path | None) -> Path | None:
        if value is not None and value.suffix.lower() not in LOGO_TYPES:
            raise ValueError(f"must be a {', '.join(sorted(LOGO_TYPES))} file")
        return value

    @field_validator("contact_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        try:
            if value is not None:
                validate_email(value)  # the same rule as the product's for a person's address
        except DjangoValidationError:
            raise ValueError("must be an email address") from None
        return value

    @field_validator("privacy_statement_url")
    @classmethod
    def _statement(cls, value: str | None) -> str | None:
        return value and _url(value, ("https", "http"))


# The logo's file types, and the type each is served as.
LOGO_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def setting(default: Any = ..., *, env: str, group: str, description: str, shown: str | None = None, **constraints: Any) -> Any:
    """A field read from the environment variable `env`; `shown` is the default as the reference
    states it, where the value itself depends on the machine or on other variables."""
    return Field(default, alias=env, description=description, json_schema_extra={"group": group, "shown": shown}, **constraints)


class Config(BaseSettings):
    """Everything a deployment can set, read from the environment."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore", validate_default=True)

    # --- Services ---------------------------------------------------------------------------------
    database_url: str = setting(
        env="DATABASE_URL", group="Services", shown="`make run`/`make test`: an embedded PostgreSQL under `DSAR_DATA_DIR`",
        description="The product's PostgreSQL database, `postgresql://user:password@host:port/name`.")
    redis_url: str = setting(
        env="REDIS_URL", group="Services", shown="`make run`/`make test`: an embedded Redis under `DSAR_DATA_DIR`",
        description="Redis: the cache, rate-limit counters, the email doorbell, and the Celery broker unless "
                    "`DSAR_BROKER_URL` names another.")
    broker_url: str | None = setting(
        None, env="DSAR_BROKER_URL", group="Services", shown="`REDIS_URL`",
        description="The Celery broker, where it is not the Redis: RabbitMQ, `amqp://user:password@host:5672/vhost` (its "
                    "queues durable, its messages persistent: a broker restarted keeps them).")
    data_dir: Path = setting(
        DEFAULT_DATA_DIR, env="DSAR_DATA_DIR", group="Services", shown="`var/` in the checkout",
        description="Where embedded services, exports and other local state live.")
    storage: Annotated[Storage, NoDecode] | None = setting(
        None, env="DSAR_STORAGE", group="Services", shown="files under `DSAR_DATA_DIR/storage`",
        description='The Django storage of exports and the connectors\' work area, `{"backend": dotted class, '
                    '"options": {...}}`; for S3, `storages.backends.s3.S3Storage` with options such as `bucket_name` and '
                    "`endpoint_url`.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = setting(
        "INFO", env="DSAR_LOG_LEVEL", group="Services", description="The least severe log records written.")

    # --- Web --------------------------------------------------------------------------------------
    host: str = setting("127.0.0.1", env="HOST", group="Web", description="The address `make run` binds the web server to.")
    port: int = setting(8000, env="PORT", group="Web", ge=1, le=65535, description="The port `make run` binds the web server to.")
    public_url: str | None = setting(
        None, env="DSAR_PUBLIC_URL", group="Web", shown="`http://HOST:PORT`",
        description="The address people reach the product at; links in emails use it. An `https://` address turns on "
                    "HTTPS-only cookies, HSTS (a year, subdomains included, preload) and redirects to HTTPS; a proxy that "
                    "terminates TLS must then set `X-Forwarded-Proto`.")
    allowed_hosts: CommaSeparated | None = setting(
        None, env="DSAR_ALLOWED_HOSTS", group="Web", shown="the public URL's host, `127.0.0.1`, `localhost`",
        description="Host names the web server answers to (Django's `ALLOWED_HOSTS`).")
    trusted_proxies: CommaSeparated = setting(
        [], env="DSAR_TRUSTED_PROXIES", group="Web", shown="none",
        description="Addresses of reverse proxies whose `X-Forwarded-For` names the client; the rate "
                    "limits count the address it names.")
    rate_limits: Annotated[RateLimits, NoDecode] = setting(
        RateLimits(), env="DSAR_RATE_LIMITS", group="Web",
        description="Calls per window (`30/m`, `60/10m`, `5/h`, `1/d`): filing a request per client address "
                    "(`file_ip`), per email (`file_email`, which bounds the codes a stranger can have sent to someone) "
                    "and per email from one client address (`file_email_ip`, kept below `file_email` so that one "
                    "stranger cannot use up an address's codes); trying a code per client address (`verify_ip`). "
                    "Keys left out keep their default.")
    secret_key: SecretStr = setting(
        env="DSAR_SECRET_KEY", group="Web", shown="`make run`/`make test`: made once in `DSAR_DATA_DIR/secret_key`",
        description="Django's signing key; codes, tokens and status links are keyed with it. 50 or more random characters.")
    audit_key: SecretStr = setting(
        env="DSAR_AUDIT_KEY", group="Audit trail", shown="`make run`/`make test`: made once in `DSAR_DATA_DIR/audit_key`",
        description="The key of the audit trail's MACs: each entry and each shipped head carries one, so a row written "
                    "without it is found by `verify_audit`. Keep it out of the database and its backups, and never "
                    "change it: the trail's entries are checked with it for as long as they are kept. 32 or more random "
                    "characters.")
    audit_head_dir: Path | None = setting(
        None, env="DSAR_AUDIT_HEAD_DIR", group="Audit trail", shown="`DSAR_DATA_DIR/audit-heads`",
        description="Where the `audit_head_ship` job appends the audit chain's newest head (one line a run, with its "
                    "MAC), and where `verify_audit` reads the newest one to check the chain still holds it. Put it off "
                    "the database's machine, on storage the database's operators cannot rewrite (an append-only mount "
                    "or a synced folder).")

    # --- Mail -------------------------------------------------------------------------------------
    email_file_path: Path | None = setting(
        None, env="EMAIL_FILE_PATH", group="Mail", shown="`make run`: `DSAR_DATA_DIR/mail`; otherwise unset",
        description="When set, outgoing mail is written as files into this directory (Django's file backend) instead "
                    "of going to the SMTP relay.")
    smtp_url: str = setting(
        "smtp://localhost:25", env="DSAR_SMTP_URL", group="Mail",
        description="The SMTP relay: `smtp://` (plain, port 25), `smtp+tls://` (STARTTLS, port 587) or `smtps://` (TLS, "
                    "port 465), with `user:password@` if it asks for a login (percent-encode `@`, `:` and `/` in them).")
    from_email: str = setting(
        "privacy@example.com", env="DSAR_FROM_EMAIL", group="Mail",
        description="The sender of every email, which people reply to: the export's report gives it as the privacy "
                    "team's address for the rights the portal does not handle.")

    # --- Branding ---------------------------------------------------------------------------------
    brand: Annotated[Brand, NoDecode] = setting(
        Brand(), env="DSAR_BRAND", group="Branding",
        description='The company as people see it: `{"name": "...", "colour": "#rrggbb", "logo": "/path/to/logo.svg", '
                    '"contact_email": "...", "privacy_statement_url": "https://..."}`. The name is on every page and in '
                    "every email's subject; the colour is the pages' accent, and must be dark enough for white text on it "
                    "(contrast 4.5:1); the logo (PNG, SVG, JPEG or WebP) is served by the product itself; the contact "
                    "address (by default `DSAR_FROM_EMAIL`) and the privacy statement's link are in every page's footer. "
                    "Keys left out keep their default.")

    # --- Requests ---------------------------------------------------------------------------------
    auto_approve: bool = setting(
        False, env="DSAR_AUTO_APPROVE", group="Requests",
        description="`1`: a verified request goes straight to processing, with no staff review.")
    review_before_release: bool = setting(
        False, env="DSAR_REVIEW_BEFORE_RELEASE", group="Requests",
        description="`1`: a completed access request's export waits for staff to release it after a look at its summary.")
    export_ttl_days: int = setting(
        7, env="DSAR_EXPORT_TTL_DAYS", group="Requests", ge=1,
        description="Days an export can be downloaded before it is deleted.")
    jurisdiction: Literal["gdpr", "ccpa"] = setting(
        "gdpr", env="DSAR_JURISDICTION", group="Requests",
        description="The deadline rule: `gdpr` (one month, extendable once by two more) or `ccpa` (45 days, extendable "
                    "once by 45 more).")
    answer_file_max_bytes: int = setting(
        10 * 1024 * 1024, env="DSAR_ANSWER_FILE_MAX_BYTES", group="Requests", ge=1, shown="`10485760` (10 MiB)",
        description="The largest file, in bytes, a person may attach to their answer when staff ask them for more "
                    "information (a PDF, PNG or JPEG).")
    supervisory_authority: Annotated[Authority, NoDecode] = setting(
        PLACEHOLDER_AUTHORITY, env="DSAR_SUPERVISORY_AUTHORITY", group="Requests",
        shown="a placeholder to replace: \"the data protection authority of the country where you live or work\", "
              "with the European Data Protection Board's list of them",
        description='The authority a person may complain to, which the export\'s report names with its website: '
                    '`{"name": "...", "website": "https://..."}`. Set it to your lead supervisory authority (under the CCPA, '
                    "the California Privacy Protection Agency).")
    child_age: Annotated[AgesByLaw, NoDecode] = setting(
        AgesByLaw(gdpr=16, ccpa=13), env="DSAR_CHILD_AGE", group="Requests",
        description="The age under which a person is a child, per law: `gdpr` (Art. 8: 16, or as low as 13 where a member "
                    "state's law says so) and `ccpa` (§1798.120(c): 13). A verified request whose subject a system shows "
                    "may be younger is flagged and waits for a reviewer, even with `DSAR_AUTO_APPROVE`, who confirms "
                    "whose authority it is made on.")
    child_youngest_age: Annotated[AgesByLaw, NoDecode] = setting(
        AgesByLaw(gdpr=13, ccpa=13), env="DSAR_CHILD_YOUNGEST_AGE", group="Requests",
        description="The age under which only a parent or guardian may receive a child's sensitive data (the taxonomy's "
                    "`sensitive` categories: location, pictures, voice, video), per law as in `DSAR_CHILD_AGE` and at "
                    "most its age.")
    taxonomy_file: FilePath = setting(
        BASE_DIR / "dsar" / "taxonomy.yaml", env="DSAR_TAXONOMY_FILE", group="Requests", shown="`dsar/taxonomy.yaml`",
        description="The data categories with the organisation's own wording: what each is, why it is processed, how long "
                    "it is kept, who receives it. The ids must stay those of TAXONOMY.md.")

    # --- Systems ----------------------------------------------------------------------------------
    systems: Path | None = setting(
        None, env="DSAR_SYSTEMS", group="Systems", shown="the demo estate's systems, `estate/systems/`",
        description="A directory of system files, one `*.yaml` a system where the company keeps personal data "
                    "(docs/connect-a-system.md). `${VAR}` in a file is read from the environment. Set, only those "
                    "systems are served and `make run` loads no demo data.")
    suppression_key: SecretStr | None = setting(
        None, env="DSAR_SUPPRESSION_KEY", group="Systems", shown="derived from `DSAR_SECRET_KEY`",
        description="The key of the third-party suppression list's hashes. Set it before the secret key is ever rotated: "
                    "the list must keep matching the people it suppresses.")

    @field_validator("audit_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("must be 32 or more random characters")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgresql(cls, value: str | None) -> str | None:
        return value and _url(value, ("postgresql", "postgres"))

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        return value and _url(value, ("redis", "rediss", "unix"))

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, value: str | None) -> str | None:
        return value and _url(value, ("redis", "rediss", "amqp", "amqps"))

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: str | None) -> str | None:
        return value and _url(value, ("http", "https")).rstrip("/")

    @field_validator("smtp_url")
    @classmethod
    def _smtp(cls, value: str) -> str:
        return _url(value, ("smtp", "smtp+tls", "smtps"))

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"{address!r} is not an IP address") from None
        return value

    @field_validator("allowed_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value

    @field_validator("rate_limits", "storage", "brand", "supervisory_authority", "child_age", "child_youngest_age", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return _json_object(value)

    @field_validator("child_youngest_age")
    @classmethod
    def _not_above_child_age(cls, value: AgesByLaw, info: ValidationInfo) -> AgesByLaw:
        child = info.data.get("child_age")
        if above := [law for law in ("gdpr", "ccpa") if child and getattr(value, law) > getattr(child, law)]:
            raise ValueError(f"must be at most DSAR_CHILD_AGE's age, for {' and '.join(above)}")
        return value

    @field_validator("jurisdiction", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _derived(self) -> Config:
        """Fill in the defaults that follow from other values."""
        self.data_dir = self.data_dir.resolve()
        if self.audit_head_dir is None:
            self.audit_head_dir = self.data_dir / "audit-heads"
        if self.public_url is None:
            self.public_url = f"http://{self.host}:{self.port}"
        if self.allowed_hosts is None:
            self.allowed_hosts = list(dict.fromkeys([urlsplit(self.public_url).hostname, "127.0.0.1", "localhost"]))
        return self

    @property
    def tls(self) -> bool:
        """Whether people reach the product over HTTPS."""
        return self.public_url.startswith("https://")

    @property
    def smtp(self) -> Smtp:
        """The SMTP relay's address, login and encryption."""
        parts = urlsplit(self.smtp_url)
        secure = {"smtp": 25, "smtp+tls": 587, "smtps": 465}
        return Smtp(host=parts.hostname or "localhost", port=parts.port or secure[parts.scheme], user=unquote(parts.username or ""),
                    password=unquote(parts.password or ""), use_tls=parts.scheme == "smtp+tls", use_ssl=parts.scheme == "smtps")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        """The environment first, then the services `make run` started (their file lives in the data directory,
        which the environment may move)."""
        data_dir = Path(env_settings().get("DSAR_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
        return init_settings, env_settings, DotEnvSettingsSource(settings_cls, env_file=data_dir / EMBEDDED_SERVICES_FILE)


class SystemsCommandConfig(Config):
    """What `manage.py systems` reads: it reaches only the systems, so the product's own database,
    broker and secret may be absent."""

    database_url: str | None = Field(None, alias="DATABASE_URL")
    redis_url: str | None = Field(None, alias="REDIS_URL")
    secret_key: SecretStr | None = Field(None, alias="DSAR_SECRET_KEY")
    audit_key: SecretStr | None = Field(None, alias="DSAR_AUDIT_KEY")


def config_load(kind: type[Config] = Config) -> Config:
    """The configuration, from the environment; ImproperlyConfigured naming each variable that is
    missing or wrong."""
    try:
        return kind()
    except ValidationError as error:
        raise ImproperlyConfigured("\n".join(_problem(problem) for problem in error.errors())) from None


def systems_environment(config: Config) -> dict[str, str]:
    """What `${VAR}` in a system file reads: the environment, then the services `make run` started."""
    services = config.data_dir / EMBEDDED_SERVICES_FILE
    return {**(dotenv_values(services) if services.exists() else {}), **os.environ}


def _problem(problem: dict) -> str:
    """One line per problem: the variable, the key inside its JSON if any, and what is wrong."""
    variable, *inside = problem["loc"]
    where = variable + "".join(f"[{key!r}]" for key in inside)
    if problem["type"] == "missing" and not inside:
        field = next(f for f in Config.model_fields.values() if f.alias == variable)
        return f"{variable} is not set: {field.description} Set it, or use `make run`, which sets it."
    field = next((f for f in Config.model_fields.values() if f.alias == variable), None)
    secret = field is not None and field.annotation is SecretStr  # a wrong key is still not printed
    shown = "" if isinstance(problem["input"], dict) or secret else f" (got {problem['input']!r})"
    return f"{where}: {problem['msg'].removeprefix('Value error, ')}{shown}"


# --- The reference -----------------------------------------------------------------------------------

REFERENCE_HEADER = """# Configuration

Every environment variable the product reads, generated from `dsar/config.py` by
`python -m dsar.config > docs/configuration.md` (`make config-docs`); a test fails when the two
disagree. Only `dsar/config.py` reads the environment (for system files too). A value that cannot be used stops start-up
with a message naming the variable and what is wrong with it.

Booleans take `1`/`0` (or `true`/`false`, `yes`/`no`, `on`/`off`). An empty variable counts as unset.
Under `make run`, `DATABASE_URL`, `REDIS_URL`, `DSAR_SECRET_KEY` and `DSAR_AUDIT_KEY` need not be set: it starts or
makes what they name and records it in `DSAR_DATA_DIR/services.env`, which the settings read after
the environment. System files (`DSAR_SYSTEMS`) read the variables they name as `${VAR}`; those of
the demo estate's files are listed last.

Libraries read a few variables of their own: the `support` connector honours the usual proxy
variables (`HTTPS_PROXY`, `NO_PROXY`) and trusts the system's certificate authorities or the bundle
OpenSSL's `SSL_CERT_FILE` names; S3 storage takes its credentials from the usual `AWS_*` variables.
Timings inside the product (leases, retries, batch sizes, time limits) are constants in
`dsar/settings.py`, not configuration.
"""


def config_reference() -> str:
    """The reference of every variable, in Markdown, grouped as in the class."""
    groups: dict[str, list[str]] = {}
    for field in Config.model_fields.values():
        extra = field.json_schema_extra
        default = extra["shown"] or _shown(field.default)
        row = f"| `{field.alias}` | {_kind(field)} | {field.description} | {default} |"
        groups.setdefault(extra["group"], []).append(row)
    sections = [f"## {group}\n\n| variable | type | meaning | default |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
                for group, rows in groups.items()]
    return "\n".join([REFERENCE_HEADER, *sections, _demo_systems_reference()])


def _demo_systems_reference() -> str:
    """The variables the demo estate's system files read, each with the comment on its line."""
    rows = []
    for path in sorted((BASE_DIR / DEMO_SYSTEMS).glob("*.yaml")):
        for line in path.read_text().splitlines():
            for match in re.finditer(r"\$\{(\w+)(?::-([^}]*))?\}", line):
                meaning = line.partition(" # ")[2].strip() or "—"
                default = f"`{match[2]}`" if match[2] else ("—" if match[2] is not None else "required")
                rows.append(f"| `{match[1]}` | `{DEMO_SYSTEMS}/{path.name}` | {meaning} | {default} |")
    return ("## The demo estate's systems\n\nRead by the demo estate's system files, which serve when `DSAR_SYSTEMS` is unset.\n\n"
            "| variable | file | meaning | default |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")


def _shown(default: Any) -> str:
    if default is ...:
        return "required"
    if isinstance(default, bool):
        return f"`{int(default)}`"
    if isinstance(default, BaseModel):
        return f"`{json.dumps(default.model_dump())}`"
    return f"`{default}`"


def _kind(field: FieldInfo) -> str:
    """What sort of value a variable takes, in words."""
    annotation = field.annotation
    if get_origin(annotation) in (Union, UnionType):  # optional: the reference says what unset means
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Literal:
        return " or ".join(f"`{value}`" for value in get_args(annotation))
    if get_origin(annotation) is list:
        return "comma-separated list"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "JSON object"
    words = {SecretStr: "secret", bool: "boolean", int: "whole number", Path: "path"}
    return words.get(annotation, "URL" if field.alias.endswith("_URL") else "text")


if __name__ == "__main__":
    sys.stdout.write(config_reference())
