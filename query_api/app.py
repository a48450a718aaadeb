"""Composition root of the query API: settings in, ASGI app out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from litestar import Router
from litestar.datastructures import State
from litestar.di import Provide

from query_api.admin.projections import projections
from query_api.identity.me import me
from query_api.runtime import QueryRuntime
from query_api.settings import QueryApiSettings
from shared.http.app_factory import create_http_app, token_verifier
from shared.http.auth import Authenticator
from shared.http.request_context import RequestContextMiddleware
from shared.infrastructure.api_key_store import ApiKeyStore
from shared.infrastructure.resources import Resources
from shared.observability.logging import configure_logging
from shared.settings import load_settings

PROCESS_NAME = "query-api"


def _provide_runtime(state: State) -> QueryRuntime:
    runtime: QueryRuntime = state.query_runtime
    return runtime


def create_app(settings: QueryApiSettings) -> RequestContextMiddleware:
    keys = settings.key_set
    verifier = token_verifier(settings, keys)
    timeout = settings.database_connect_timeout_seconds

    def runtime_of(resources: Resources) -> Mapping[str, Any]:
        # API keys are read where the query API reads: on a replica, a revocation
        # takes effect after the replication lag (milliseconds, usually).
        api_keys = ApiKeyStore(resources.pool, acquire_timeout_seconds=timeout)
        authenticator = Authenticator(verifier, api_keys)
        return {"query_runtime": QueryRuntime(authenticator, resources.pool, timeout)}

    v1 = Router(
        path="/v1",
        route_handlers=[me, projections],
        dependencies={"runtime": Provide(_provide_runtime, sync_to_thread=False)},
        security=[{"BearerToken": []}, {"ApiKey": []}],
    )
    return create_http_app(
        title="CQRS platform: query API",
        description="Reads: read models served through a tag-invalidated cache, with consistency tokens.",
        process_name=PROCESS_NAME,
        settings=settings,
        route_handlers=[v1],
        database_url=settings.effective_read_database_url,
        readiness_checks=("postgres", "nats", "redis"),
        keys=keys,
        state_from_resources=runtime_of,
    )


def create_app_from_environment() -> RequestContextMiddleware:
    """Entry point for the ASGI server: each worker process builds its app once."""
    settings = load_settings(QueryApiSettings, os.environ)
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
