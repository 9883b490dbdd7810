"""Runtime settings from the environment: `PRIVACY_*`, `__` for nesting, `*_FILE` for secrets.

Precedence (highest first): arguments passed to `Settings(...)`, environment variables,
`PRIVACY_<NAME>_FILE` files, defaults. Setting both `PRIVACY_X` and `PRIVACY_X_FILE` is an error.
An unknown PRIVACY_* variable, a bad value or (with PRIVACY_ENV=production) a development default is
a start-up error; every problem is listed at once (settings_check.py).
"""

from __future__ import annotations

import ipaddress
import os
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, create_model, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .errors import ConfigError
from .netguard import OutboundGuard, parse_networks
from .platforms import PLATFORM_SETTINGS
from .settings_check import (
    SettingsError,
    describe_validation,
    keys_url_problem,
    model_variables,
    production_problems,
    unknown_variables,
)
from .store.database import DEFAULT_DATABASE_URL, Database

ENV_PREFIX = "PRIVACY_"
NESTED = "__"


class JwtSettings(BaseModel):
    """How callers prove who they are. Keys: a shared secret, a public key (PEM) or a JWKS URL."""

    issuer: str | None = None
    audience: str | None = None
    algorithms: Annotated[list[str], NoDecode] = ["RS256", "ES256", "EdDSA"]
    secret: SecretStr | None = None
    public_key: str | None = None
    jwks_url: str | None = None
    leeway_seconds: int = Field(default=30, ge=0, le=600)
    jwks_cache_seconds: int = Field(default=600, ge=1)
    token_cache_size: int = Field(default=10_000, ge=0)
    token_cache_seconds: int = Field(default=60, ge=0)

    @field_validator("algorithms", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [a.strip() for a in value.split(",") if a.strip()] if isinstance(value, str) else value

    @field_validator("algorithms")
    @classmethod
    def _no_none(cls, value: list[str]) -> list[str]:
        allowed = {
            "HS256",
            "HS384",
            "HS512",
            "RS256",
            "RS384",
            "RS512",
            "PS256",
            "PS384",
            "PS512",
            "ES256",
            "ES384",
            "ES512",
            "EdDSA",
        }
        bad = [a for a in value if a not in allowed]
        if bad:
            raise ValueError(f"unsupported JWT algorithms {bad}; allowed: {sorted(allowed)}")
        if not value:
            raise ValueError("at least one JWT algorithm is required")
        return value


def _split_list(value: Any) -> Any:
    return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value


class ConsentSettings(BaseModel):
    """The consent cookie, receipts and the browser-facing API."""

    cookie_secret: SecretStr | None = None
    signing_key_file: Path | None = None
    allowed_origins: Annotated[list[str], NoDecode] = []
    cookie_domains: Annotated[list[str], NoDecode] = []
    secure_cookie: bool = True
    cache_seconds: float = Field(default=5.0, ge=0)

    _split = field_validator("allowed_origins", "cookie_domains", mode="before")(_split_list)


class DatabasePoolSettings(BaseModel):
    """Connection pool of the PostgreSQL store (SQLite has none), and SQLite's durability."""

    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    pool_timeout_seconds: float = Field(default=30.0, gt=0)
    pool_recycle_seconds: float = Field(default=-1)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    pgbouncer: bool = False
    # FULL: a committed erasure, consent change or audit event survives a power cut, not only a crash
    # of the process (WAL with NORMAL can lose the last commits to a power cut).
    sqlite_synchronous: Literal["full", "normal"] = "full"
    # The audit writer's SQLite page cache: every event adds an entry to the (subject, time) index at
    # a random place, and once the pages that take those entries no longer fit the cache each one is
    # read back before it is written. Filled only as pages are used; 0 keeps SQLite's 2 MB.
    sqlite_audit_cache_mb: int = Field(default=64, ge=0)


class AuditSettings(BaseModel):
    """The tamper-evident audit trail and login protection."""

    signing_key_file: Path | None = None
    side_record_key: SecretStr | None = None
    login_guard_key: SecretStr | None = None
    spool_dir: Path | None = None
    new_device_webhook: str | None = None
    checkpoint_every: int = Field(default=1000, ge=1)
    checkpoint_seconds: float = Field(default=60.0, gt=0)
    queue_size: int = Field(default=10_000, ge=100)
    retention_interval_seconds: float = Field(default=3600.0, ge=0)
    # PostgreSQL: one partition of audit events per this many days (retention drops whole partitions).
    partition_days: float = Field(default=7.0, ge=0.01, le=366)


class IdentitySettings(BaseModel):
    """Who is calling: identity providers tried in order (docs/identity.md)."""

    # jwt, introspection, session, django, or package.module:function (scope -> Principal | None).
    providers: Annotated[list[str], NoDecode] = ["jwt"]
    # Key for the keyed hashes that name cached tokens and cookies (never the raw value).
    cache_key: SecretStr | None = None
    cache_size: int = Field(default=10_000, ge=1)
    introspection_url: str | None = None
    introspection_client_id: str | None = None
    introspection_client_secret: SecretStr | None = None
    introspection_cache_seconds: float = Field(default=300.0, ge=0)
    session_cookie: str = "sessionid"
    # An absolute URL, or a path answered by the wrapped app (in-process or the proxied upstream).
    session_whoami_url: str | None = None
    session_subject_field: str = "id"
    session_scopes_field: str = "scopes"
    session_cache_seconds: float = Field(default=60.0, ge=0, le=3600)
    session_timeout_seconds: float = Field(default=5.0, gt=0)
    django_settings_module: str | None = None
    # Scope given to Django staff users (maps to a recipient via the policy's scope_recipients).
    django_staff_scope: str = ""
    # The user's Django group names are scopes too (a partner's account in group "logistics").
    django_group_scopes: bool = False

    _split = field_validator("providers", mode="before")(_split_list)


class SmtpSettings(BaseModel):
    """The mail server that sends guests their one-time codes (docs/guests.md)."""

    host: str | None = None
    port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "privacy@localhost"
    starttls: bool = False
    tls: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0)


class GuestSettings(BaseModel):
    """Guest rights by e-mail code and order capabilities (docs/guests.md)."""

    # Key for capability and e-mail hashes and for signing guest sessions; same on every instance.
    secret: SecretStr | None = None
    code_minutes: float = Field(default=10.0, gt=0, le=60)
    code_attempts: int = Field(default=5, ge=1, le=20)
    session_minutes: float = Field(default=15.0, gt=0, le=120)
    codes_per_email_per_hour: int = Field(default=3, ge=1)
    codes_per_ip_per_hour: int = Field(default=10, ge=1)
    # Code checks per client per hour (each code also dies after `code_attempts` wrong tries).
    verifications_per_ip_per_hour: int = Field(default=30, ge=1)


class BreachSettings(BaseModel):
    """Canary records, finding sinks and checkpoint witnesses (docs/breach.md)."""

    canary_key: SecretStr | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # Findings are mailed to these addresses through the PRIVACY_SMTP__* server.
    mail_to: Annotated[list[str], NoDecode] = []
    sink_timeout_seconds: float = Field(default=5.0, gt=0)
    monitor: bool = True
    witness_url: str | None = None
    webhook_checkpoints: bool = True
    poll_seconds: float = Field(default=0.25, gt=0)

    _split = field_validator("mail_to", mode="before")(_split_list)


class WebhookSettingsBase(BaseModel):
    """Shop-platform privacy webhooks (`POST <mount>/webhooks/<platform>`). Unset: not mounted.

    The fields come from the platform settings table (`platforms/__init__.py`): platform `shopify`'s
    field `secrets` is `shopify_secrets` here and PRIVACY_WEBHOOKS__SHOPIFY_SECRETS in the
    environment; a list field is read from a comma-separated variable.
    """

    def platform(self, model: type[PlatformModel]) -> PlatformModel:
        """This platform's settings as its own model (the receiver's `from_settings` reads them so)."""
        name = _PLATFORM_OF[model]
        return model.model_construct(**{field: getattr(self, f"{name}_{field}") for field in model.model_fields})


PlatformModel = TypeVar("PlatformModel", bound=BaseModel)
_PLATFORM_OF = {model: name for name, model in PLATFORM_SETTINGS.items()}


def _webhook_fields() -> tuple[dict[str, Any], list[str]]:
    fields: dict[str, Any] = {}
    lists: list[str] = []
    for platform, model in PLATFORM_SETTINGS.items():
        for name, info in model.model_fields.items():
            annotation: Any = info.annotation
            if info.metadata:
                annotation = Annotated.__class_getitem__((annotation, *info.metadata))  # type: ignore[attr-defined]
            fields[f"{platform}_{name}"] = (annotation, Field(default=info.default, description=info.description))
            if typing.get_origin(info.annotation) is list:
                lists.append(f"{platform}_{name}")
    return fields, lists


if TYPE_CHECKING:

    class WebhookSettings(WebhookSettingsBase):
        def __getattr__(self, name: str) -> Any: ...

else:
    _fields, _lists = _webhook_fields()
    WebhookSettings = create_model(
        "WebhookSettings",
        __base__=WebhookSettingsBase,
        __module__=__name__,
        __validators__={"_split": field_validator(*_lists, mode="before")(_split_list)} if _lists else None,
        **_fields,
    )


class OutboundSettings(BaseModel):
    """Which non-public networks the middleware may call (docs/configuration.md, "Outbound calls").

    Every configured destination (webhooks, sinks, witness, who-am-I, introspection, JWKS, key
    service, shop APIs, SMTP) and every user-supplied one (portability transfers) must resolve to
    globally routable addresses only; these lists name the internal networks an operator allows.
    """

    # Networks configured destinations may reach besides the public internet (a self-hosted SMTP,
    # a Vault or who-am-I endpoint on the private network).
    allow: Annotated[list[str], NoDecode] = []
    # Networks a user-supplied portability target may reach. Empty: public addresses only.
    transfer_allow: Annotated[list[str], NoDecode] = []

    _split = field_validator("allow", "transfer_allow", mode="before")(_split_list)

    @field_validator("allow", "transfer_allow")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    def configured_guard(self) -> OutboundGuard:
        return OutboundGuard(parse_networks(self.allow), purpose="configured destination")

    def transfer_guard(self) -> OutboundGuard:
        return OutboundGuard(parse_networks(self.transfer_allow), purpose="portability transfer")


class PagesSettings(BaseModel):
    """The browser pages (privacy centre, officer console)."""

    # The shop's own cookie that carries the customer's bearer token, if it keeps one: the centre then
    # signs the customer in without a hand-over (see docs/privacy-centre.md).
    token_cookie: str = ""
    csrf_secret: SecretStr | None = None
    # The shop's sign-in page, linked from the centre's sign-in page (shops that sign customers in
    # with a session: the centre then knows them from that session).
    shop_login_url: str = ""


class FileSecretsSource(PydanticBaseSettingsSource):
    """Reads `PRIVACY_<NAME>_FILE` (also nested: `PRIVACY_JWT__SECRET_FILE`) into `<name>`."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # values come from __call__ as one nested dict

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, path in os.environ.items():
            if not key.startswith(ENV_PREFIX) or not key.endswith("_FILE"):
                continue
            target = key[: -len("_FILE")]
            if target in os.environ:
                raise ConfigError(f"set either {target} or {key}, not both")
            try:
                content = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{key} names a file that cannot be read ({exc.strerror})") from None
            parts = target[len(ENV_PREFIX) :].lower().split(NESTED)
            node = values
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = content
        return values


class Settings(BaseSettings):
    """Every runtime knob; documented one by one in docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, extra="ignore", case_sensitive=False
    )

    env: Literal["development", "production"] = "development"
    policy_file: Path = Path("privacy-policy.toml")
    database_url: str = DEFAULT_DATABASE_URL
    database: DatabasePoolSettings = DatabasePoolSettings()
    redis_url: str | None = None
    redis_prefix: str = "privacy:"
    keys: str | None = None
    shop_adapter: str | None = None
    # The shop's own database, for PRIVACY_SHOP_ADAPTER=sql (it holds a password: a secret).
    shop_database_url: SecretStr | None = None
    pseudonym_secret: SecretStr | None = None
    jwt: JwtSettings = JwtSettings()
    consent: ConsentSettings = ConsentSettings()
    audit: AuditSettings = AuditSettings()
    webhooks: WebhookSettings = WebhookSettings()
    pages: PagesSettings = PagesSettings()
    identity: IdentitySettings = IdentitySettings()
    smtp: SmtpSettings = SmtpSettings()
    guests: GuestSettings = GuestSettings()
    breach: BreachSettings = BreachSettings()
    outbound: OutboundSettings = OutboundSettings()
    trusted_proxies: Annotated[list[str], NoDecode] = []
    erasure_poll_seconds: float = Field(default=0.25, gt=0)
    erasure_bound_seconds: float = Field(default=1.0, gt=0)
    receipt_signing_key_file: Path | None = None
    mount_path: str = "/privacy"
    metrics_path: str = "/metrics"
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_response_bytes: int = Field(default=8_388_608, ge=1024)
    auto_migrate: bool = True
    data_dir: Path = Path(".")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    def __init__(self, **values: Any) -> None:
        problems = unknown_variables(os.environ, type(self))
        try:
            super().__init__(**values)
        except ValidationError as exc:
            problems += describe_validation(exc, type(self))
            keys = values.get("keys", os.environ.get(f"{ENV_PREFIX}KEYS"))
            if isinstance(keys, str) and (problem := keys_url_problem(keys)):
                problems.append(problem)
            raise SettingsError(problems) from None
        except SettingsError as exc:
            raise SettingsError(problems + exc.problems) from None
        except ConfigError as exc:
            raise SettingsError([*problems, str(exc)]) from None
        if self.keys is not None and (problem := keys_url_problem(self.keys)):
            problems.append(problem)
        if self.env == "production":
            problems.extend(production_problems(self, workers=_workers()))
        if problems:
            raise SettingsError(problems)

    @field_validator("log_level", "log_format", "env", mode="before")
    @classmethod
    def _fold_case(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", "env", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IP address or CIDR") from None
        return value

    @field_validator("mount_path", "metrics_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if value and (not value.startswith("/") or value == "/"):
            raise ValueError("must start with '/' and not be '/' alone (or be empty to disable)")
        return value.rstrip("/")

    def open_database(self) -> Database:
        """The store PRIVACY_DATABASE_URL and PRIVACY_DATABASE__* describe."""
        pool = self.database
        return Database(
            self.database_url,
            pool_size=pool.pool_size,
            max_overflow=pool.max_overflow,
            pool_timeout=pool.pool_timeout_seconds,
            pool_recycle=pool.pool_recycle_seconds,
            connect_timeout=pool.connect_timeout_seconds,
            pgbouncer=pool.pgbouncer,
            sqlite_synchronous=pool.sqlite_synchronous,
            sqlite_audit_cache_mb=pool.sqlite_audit_cache_mb,
        )

    def data_file(self, configured: Path | None, name: str) -> Path:
        """A configured path, or a development default inside PRIVACY_DATA_DIR."""
        return configured if configured is not None else self.data_dir / name

    def secret(self, configured: SecretStr | None, name: str, label: str) -> bytes:
        """A configured secret, or a development default created in PRIVACY_DATA_DIR."""
        from .keyfiles import load_or_create_secret

        if configured is not None:
            value = configured.get_secret_value().encode()
            if len(value) < 16:
                raise ConfigError(f"{label} must be at least 16 bytes")
            return value
        return load_or_create_secret(self.data_dir / name, label)

    @property
    def keys_url(self) -> str:
        """PRIVACY_KEYS, or a development keyring file in the data directory."""
        return self.keys or f"local://{(self.data_dir / 'privacy-keyring.json').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, FileSecretsSource(settings_cls))


def _workers() -> int:
    """Worker processes the server will start (WEB_CONCURRENCY, as uvicorn and gunicorn read it)."""
    try:
        return max(1, int(os.environ.get("WEB_CONCURRENCY", "1")))
    except ValueError:
        return 1


def env_variables() -> dict[str, FieldInfo]:
    """Every PRIVACY_* variable the model reads, by name (used by the docs test)."""
    return model_variables(Settings)
