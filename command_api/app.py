"""Composition root of the command API: settings in, ASGI app out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from litestar import Router
from litestar.datastructures import State
from litestar.di import Provide

from command_api.execution.executor import CommandExecutor
from command_api.ledger.commands import ROUTES as LEDGER_ROUTES
from command_api.runtime import CommandRuntime
from command_api.settings import CommandApiSettings
from contexts.catalogue import REGISTRY
from shared.http.app_factory import create_http_app, token_verifier
from shared.http.request_context import RequestContextMiddleware
from shared.infrastructure.event_store import PostgresEventStore
from shared.infrastructure.resources import Resources
from shared.observability.logging import configure_logging
from shared.settings import load_settings

PROCESS_NAME = "command-api"


def _provide_runtime(state: State) -> CommandRuntime:
    runtime: CommandRuntime = state.command_runtime
    return runtime


def create_app(settings: CommandApiSettings) -> RequestContextMiddleware:
    verifier = token_verifier(settings)

    def runtime_of(resources: Resources) -> Mapping[str, Any]:
        executor = CommandExecutor(
            store=PostgresEventStore(
                resources.pool, acquire_timeout_seconds=settings.database_connect_timeout_seconds
            ),
            registry=REGISTRY,
            max_attempts=settings.command_max_attempts,
            idempotency_ttl=timedelta(seconds=settings.idempotency_ttl_seconds),
        )
        return {"command_runtime": CommandRuntime(executor, verifier, settings.require_idempotency_key)}

    v1 = Router(
        path="/v1",
        route_handlers=LEDGER_ROUTES,
        dependencies={"runtime": Provide(_provide_runtime, sync_to_thread=False)},
        security=[{"BearerToken": []}],
        tags=["ledger"],
    )
    return create_http_app(
        title="CQRS platform: command API",
        description="Writes: commands validated, decided and stored as events with idempotency keys.",
        process_name=PROCESS_NAME,
        settings=settings,
        route_handlers=[v1],
        # What the command API uses today; Redis joins with the rate limits.
        readiness_checks=("postgres",),
        state_from_resources=runtime_of,
    )


def create_app_from_environment() -> RequestContextMiddleware:
    """Entry point for the ASGI server: each worker process builds its app once."""
    settings = load_settings(CommandApiSettings, os.environ)
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
