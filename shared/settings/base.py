"""Setting groups shared by the processes; each process composes its own class.

Field names are global (`command_api_port`, not `port`) because one
environment often feeds every process, as `cqrs dev` and compose.yaml do.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from shared.auth.keys import InvalidKeyConfiguration, KeySet, load_key_set
from shared.http.client_address import parse_networks
from shared.ratelimit.policies import (
    DEFAULT_AUTH_LIMITS,
    DEFAULT_COMMAND_LIMITS,
    DEFAULT_QUERY_LIMITS,
    RouteClassLimits,
)
from shared.settings.dev_keys import DEV_JWT_PRIVATE_KEY
from shared.settings.loader import env_var_name
from shared.settings.secret import Secret

Profile = Literal["dev", "test", "prod"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["auto", "json", "console"]
JwtAlgorithm = Literal["EdDSA", "ES256", "HS256"]

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=300)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

_DATABASE_SCHEMES = ("postgresql://", "postgres://", "postgresql+asyncpg://")
_NATS_SCHEMES = ("nats://", "tls://", "ws://", "wss://")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class ProcessSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What every process has: its profile and how it logs."""

    # Unset means "not declared": it behaves as dev for logging and such, but
    # never unlocks the committed development key (see HttpApiSettings).
    profile: Profile | None = None
    log_level: LogLevel = "info"
    log_format: LogFormat = "auto"
    debug: bool = False

    def __post_init__(self) -> None:
        if self.profile == "prod" and self.debug:
            raise ValueError(f"{env_var_name('debug')} must be off in the prod profile")


class DatabaseSettings(ProcessSettings, frozen=True, kw_only=True):
    """Enough for database work alone, such as `cqrs migrate`."""

    database_url: str
    database_pool_size: PositiveInt = 20
    database_connect_timeout_seconds: Seconds = 5.0
    database_command_timeout_seconds: Seconds = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_scheme("database_url", self.database_url, _DATABASE_SCHEMES)


class CommonSettings(DatabaseSettings, frozen=True, kw_only=True):
    """What the long-running processes need: the three servers."""

    nats_urls: tuple[str, ...]
    nats_stream: Name = "EVENTS"
    nats_subject_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")] = (
        "events"
    )
    nats_connect_timeout_seconds: Seconds = 2.0
    # Retention of the distribution log; 0 and -1 keep everything. Safe to
    # bound: the event store is the truth and `cqrs events republish` refills.
    nats_stream_max_age_seconds: Annotated[float, msgspec.Meta(ge=0)] = 0
    nats_stream_max_bytes: Annotated[int, msgspec.Meta(ge=-1)] = -1
    # 3 on a three-node cluster. Every process that sets the stream up uses it,
    # so none ever scales the stream down by accident.
    nats_stream_replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1

    redis_url: str
    redis_key_prefix: str = "cqrs:"
    redis_timeout_seconds: Seconds = 0.5

    health_check_timeout_seconds: Seconds = 1.0
    # Where the relay and the projectors serve their health and metrics (each on its own port).
    ops_host: str = "127.0.0.1"
    # OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces); unset: no tracing.
    # Needs the `tracing` extra (`uv sync --extra tracing`).
    otlp_endpoint: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.nats_urls:
            raise ValueError(f"{env_var_name('nats_urls')} needs at least one URL")
        for url in self.nats_urls:
            _require_scheme("nats_urls", url, _NATS_SCHEMES)
        _require_scheme("redis_url", self.redis_url, _REDIS_SCHEMES)


class HttpApiSettings(CommonSettings, frozen=True, kw_only=True):
    """What both HTTP APIs add: binding, limits, CORS and token verification."""

    host: str = "127.0.0.1"
    workers: PositiveInt = 1
    http_server: Literal["granian", "uvicorn"] = "granian"
    max_body_bytes: PositiveInt = 64 * 1024
    cors_origins: tuple[str, ...] = ()

    jwt_algorithm: JwtAlgorithm = "EdDSA"
    # The key that signs access tokens: a PEM private key (Ed25519 for EdDSA,
    # P-256 for ES256), or the shared secret of an explicit HS256. Only the
    # command API signs; any API holding it also verifies with its public half.
    jwt_private_key: Secret | None = None
    # More PEM public keys that verify but never sign: the next key before it
    # signs, the previous one until its last token expired (docs/operations.md).
    jwt_public_keys: str | None = None
    jwt_issuer: str = "cqrs-platform"
    jwt_audience: str = "cqrs-api"
    jwt_leeway_seconds: Annotated[int, msgspec.Meta(ge=0, le=30)] = 10

    # Rate limits (docs/operations.md): per route class, a JSON object of policies per tier
    # (and `anonymous`, per IP) and the fail mode while Redis is unavailable.
    rate_limits_enabled: bool = True
    rate_limit_queries: RouteClassLimits = DEFAULT_QUERY_LIMITS
    rate_limit_commands: RouteClassLimits = DEFAULT_COMMAND_LIMITS
    rate_limit_auth: RouteClassLimits = DEFAULT_AUTH_LIMITS
    # Tokens a process takes from Redis at once and spends on its own (1: a round trip
    # per request), and how long it may hold them; see shared/ratelimit/limiter.py.
    rate_limit_lease_max: Annotated[int, msgspec.Meta(ge=1, le=1_000)] = 256
    rate_limit_lease_seconds: Seconds = 1.0
    rate_limit_timeout_seconds: Seconds = 0.25
    rate_limit_breaker_failures: Annotated[int, msgspec.Meta(ge=1, le=1_000)] = 5
    rate_limit_breaker_reset_seconds: Annotated[int, msgspec.Meta(ge=1, le=300)] = 5
    # A client refused this many times its quota within one window is blocked (0: never).
    rate_limit_abuse_factor: Annotated[float, msgspec.Meta(ge=0, le=1_000)] = 4.0
    rate_limit_abuse_block_seconds: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 300.0
    # Proxies whose X-Forwarded-For is believed (CIDR), and the client networks let in or kept out.
    trusted_proxies: tuple[str, ...] = ()
    ip_allow: tuple[str, ...] = ()
    ip_deny: tuple[str, ...] = ()

    @property
    def signing_key(self) -> Secret | None:
        """The configured key; the development key where dev or test was declared and no key is set."""
        if self.jwt_private_key is not None:
            return self.jwt_private_key
        if self.profile in ("dev", "test") and not self.jwt_public_keys:
            return Secret(DEV_JWT_PRIVATE_KEY)
        return None

    @property
    def key_set(self) -> KeySet:
        signing = self.signing_key
        return load_key_set(self.jwt_algorithm, signing.reveal() if signing else None, self.jwt_public_keys)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.signing_key is None and not self.jwt_public_keys:
            raise ValueError(
                f"{env_var_name('jwt_private_key')} or {env_var_name('jwt_public_keys')} is required unless "
                f"{env_var_name('profile')} is dev or test (which use the development key)"
            )
        for field_name in ("trusted_proxies", "ip_allow", "ip_deny"):
            try:
                parse_networks(getattr(self, field_name))
            except ValueError as error:
                raise ValueError(f"{env_var_name(field_name)}: {error}") from None
        if self.rate_limit_auth.anonymous is None and self.rate_limits_enabled:
            raise ValueError(f"{env_var_name('rate_limit_auth')} needs an 'anonymous' policy (per client IP)")
        try:
            self.key_set  # noqa: B018 - parsed here so that a bad key fails at start, naming its variable
        except InvalidKeyConfiguration as error:
            names = f"{env_var_name('jwt_private_key')}/{env_var_name('jwt_public_keys')}"
            raise ValueError(f"{names}: {error}") from None
        if self.profile != "prod":
            return
        if "*" in self.cors_origins:
            raise ValueError(f"{env_var_name('cors_origins')} may not be '*' in the prod profile")
        if self.signing_key is not None and self.signing_key.reveal().strip() == DEV_JWT_PRIVATE_KEY.strip():
            raise ValueError(
                f"{env_var_name('jwt_private_key')} is the development key; "
                "the prod profile needs a key of its own"
            )


def _require_scheme(field_name: str, url: str, schemes: tuple[str, ...]) -> None:
    if not url.startswith(schemes):
        raise ValueError(f"{env_var_name(field_name)} must start with one of {', '.join(schemes)}")
