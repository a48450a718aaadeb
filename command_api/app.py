"""Composition root of the command API: settings in, ASGI app out."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from litestar import Router
from litestar.datastructures import State
from litestar.di import Provide

from command_api.execution.executor import CommandExecutor
from command_api.identity.credentials import Credentials
from command_api.identity.routes import ROUTES as IDENTITY_ROUTES
from command_api.identity.runtime import IdentityRuntime
from command_api.identity.sessions import RefreshSessions
from command_api.identity.throttle import LoginThrottle, ThrottlePolicy
from command_api.ledger.commands import ROUTES as LEDGER_ROUTES
from command_api.runtime import CommandRuntime
from command_api.settings import CommandApiSettings
from contexts.catalogue import REGISTRY
from shared.auth.passwords import PasswordService
from shared.auth.tokens import AccessTokenIssuer
from shared.http.app_factory import create_http_app, token_verifier
from shared.http.auth import Authenticator
from shared.http.client_address import ClientAddresses
from shared.http.openapi import document_routes
from shared.http.request_context import RequestContextMiddleware
from shared.infrastructure.api_key_store import ApiKeyStore
from shared.infrastructure.event_store import PostgresEventStore
from shared.infrastructure.resources import Resources
from shared.observability.logging import configure_logging
from shared.observability.tracing import Tracing, start_tracing
from shared.ratelimit.limiter import RateLimiter
from shared.ratelimit.setup import open_rate_limiter, route_limits
from shared.settings import load_settings

PROCESS_NAME = "command-api"
# What a command may answer besides the problems every route may give (docs/api.md, Errors).
COMMAND_PROBLEMS = {
    409: "Refused by the domain (insufficient funds, account closed, ...), a concurrent update after "
    "the retries, or a request with the same Idempotency-Key still in flight.",
    413: "The body is over CQRS_MAX_BODY_BYTES.",
    415: "The body is not application/json.",
}


def _provide_runtime(state: State) -> CommandRuntime:
    runtime: CommandRuntime = state.command_runtime
    return runtime


def _provide_identity(state: State) -> IdentityRuntime:
    identity: IdentityRuntime = state.identity_runtime
    return identity


def password_service(settings: CommandApiSettings) -> PasswordService:
    hasher = PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )
    return PasswordService(hasher, max_concurrent=settings.password_max_concurrent_hashes)


def create_app(settings: CommandApiSettings, tracing: Tracing | None = None) -> RequestContextMiddleware:
    """The command API; `tracing` defaults to what the settings ask for (CQRS_OTLP_ENDPOINT)."""
    tracing = tracing or start_tracing(PROCESS_NAME, endpoint=settings.otlp_endpoint)
    keys = settings.key_set
    verifier = token_verifier(settings, keys)
    issuer = AccessTokenIssuer(
        keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    timeout = settings.database_connect_timeout_seconds

    addresses = ClientAddresses(settings.trusted_proxies)

    @contextlib.asynccontextmanager
    async def runtime_of(resources: Resources) -> AsyncIterator[Mapping[str, Any]]:
        async with open_rate_limiter(settings, name=PROCESS_NAME) as limiter:
            yield _runtime(resources, limiter)

    def _runtime(resources: Resources, limiter: RateLimiter | None) -> Mapping[str, Any]:
        executor = CommandExecutor(
            store=PostgresEventStore(resources.pool, acquire_timeout_seconds=timeout),
            registry=REGISTRY,
            max_attempts=settings.command_max_attempts,
            idempotency_ttl=timedelta(seconds=settings.idempotency_ttl_seconds),
        )
        authenticator = Authenticator(
            verifier,
            ApiKeyStore(resources.pool, acquire_timeout_seconds=timeout),
            route_limits(settings, limiter, "commands", addresses),
        )
        commands = CommandRuntime(executor, authenticator, settings.require_idempotency_key, tracing)
        identity = IdentityRuntime(
            commands=commands,
            passwords=password_service(settings),
            credentials=Credentials(resources.pool, acquire_timeout_seconds=timeout),
            sessions=RefreshSessions(
                resources.pool,
                idle=timedelta(seconds=settings.refresh_token_idle_seconds),
                lifetime=timedelta(seconds=settings.refresh_token_lifetime_seconds),
                acquire_timeout_seconds=timeout,
            ),
            throttle=LoginThrottle(
                resources.redis,
                ThrottlePolicy(
                    window_seconds=settings.login_failure_window_seconds,
                    max_failures_per_account=settings.login_max_failures_per_account,
                    max_failures_per_ip=settings.login_max_failures_per_ip,
                ),
                key_prefix=settings.redis_key_prefix,
            ),
            issuer=issuer,
            addresses=addresses,
            anonymous_limits=route_limits(settings, limiter, "auth", addresses),
        )
        return {"command_runtime": commands, "identity_runtime": identity}

    document_routes([*LEDGER_ROUTES, *IDENTITY_ROUTES], COMMAND_PROBLEMS)
    v1 = Router(
        path="/v1",
        route_handlers=[
            Router(path="/", route_handlers=LEDGER_ROUTES, tags=["ledger"]),
            Router(path="/", route_handlers=IDENTITY_ROUTES, tags=["identity"]),
        ],
        dependencies={
            "runtime": Provide(_provide_runtime, sync_to_thread=False),
            "identity": Provide(_provide_identity, sync_to_thread=False),
        },
    )
    return create_http_app(
        title="CQRS platform: command API",
        description="Writes: commands validated, decided and stored as events with idempotency keys.",
        process_name=PROCESS_NAME,
        settings=settings,
        route_handlers=[v1],
        keys=keys,
        # What the command API needs for every route; Redis only for login (which fails closed without it).
        readiness_checks=("postgres",),
        state_lifespan=runtime_of,
        tracing=tracing,
    )


def create_app_from_environment() -> RequestContextMiddleware:
    """Entry point for the ASGI server: each worker process builds its app once."""
    settings = load_settings(CommandApiSettings, os.environ)
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
