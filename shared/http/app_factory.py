"""What both HTTP APIs share: health, metrics, problem details, OpenAPI, limits."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from litestar import Litestar
from litestar.config.compression import CompressionConfig
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ControllerRouterHandler

from shared.auth.keys import KeySet
from shared.auth.tokens import AccessTokenVerifier
from shared.http.client_address import ClientAddresses
from shared.http.health import health_router
from shared.http.ip_filter import IpFilter
from shared.http.jwks import jwks_route
from shared.http.metrics_route import MetricsController
from shared.http.problems import (
    DEPENDENCY_ERRORS,
    dependency_unavailable_to_response,
    problem_details_plugin,
    unhandled_exception_to_response,
)
from shared.http.request_context import RequestContextMiddleware
from shared.infrastructure.resources import Resources, open_resources
from shared.observability.http_metrics import HttpMetrics
from shared.observability.tracing import Tracing
from shared.settings import HttpApiSettings

API_VERSION = "1.0.0"


def token_verifier(settings: HttpApiSettings, keys: KeySet) -> AccessTokenVerifier:
    """The verifier of the settings' keys, parsed once per app."""
    return AccessTokenVerifier(
        keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway_seconds=settings.jwt_leeway_seconds,
    )


def _tracing_plugins(tracing: Tracing | None) -> list[Any]:
    """litestar's OpenTelemetry plugin (a server span per request) when tracing is on."""
    if tracing is None:
        return []
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin  # noqa: PLC0415

    return [OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=tracing.provider))]


def create_http_app(
    *,
    title: str,
    description: str,
    process_name: str,
    settings: HttpApiSettings,
    route_handlers: Sequence[ControllerRouterHandler],
    database_url: str | None = None,
    readiness_checks: Sequence[str],
    keys: KeySet,
    state_lifespan: Callable[[Resources], AbstractAsyncContextManager[Mapping[str, Any]]] | None = None,
    compression: CompressionConfig | None = None,
    tracing: Tracing | None = None,
) -> RequestContextMiddleware:
    """Build a litestar app with the parts every API has, wrapped for request context.

    The wrapping is outside litestar on purpose: litestar runs middleware only
    for matched routes, and a 404 or 405 must still get a request id and a log line.
    The IP allow and deny lists, when set, are checked next, before litestar sees the request.
    `state_lifespan` builds the app's own state from the shared resources, and closes
    what it opened (tasks, connections) at shutdown.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_resources(
            settings, process_name=process_name, database_url=database_url
        ) as resources:
            app.state.resources = resources
            if state_lifespan is None:
                yield
                return
            async with state_lifespan(resources) as more:
                for name, value in more.items():
                    app.state[name] = value
                yield

    def dependency_checks(state: State) -> list[Any]:
        resources: Resources = state.resources
        return resources.dependency_checks(readiness_checks)

    app = Litestar(
        route_handlers=[
            health_router(dependency_checks, settings.health_check_timeout_seconds),
            MetricsController,
            jwks_route(keys),
            *route_handlers,
        ],
        lifespan=[lifespan],
        plugins=[problem_details_plugin(), *_tracing_plugins(tracing)],
        exception_handlers={
            Exception: unhandled_exception_to_response,
            **dict.fromkeys(DEPENDENCY_ERRORS, dependency_unavailable_to_response),
        },
        openapi_config=OpenAPIConfig(
            title=title,
            version=API_VERSION,
            description=description,
            path="/schema",
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        bearer_format="JWT",
                        description="An access token from login.",
                    ),
                    "ApiKey": SecurityScheme(
                        type="apiKey",
                        name="X-API-Key",
                        security_scheme_in="header",
                        description="An API key.",
                    ),
                }
            ),
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None,
        request_max_body_size=settings.max_body_bytes,
        compression_config=compression,
        debug=settings.debug,
        # Logging is configured once per process by its entry point, not by litestar.
        logging_config=None,
    )
    metrics = HttpMetrics(app_name=process_name, excluded_prefixes=("/metrics", "/schema"))
    if not (settings.ip_allow or settings.ip_deny):
        return RequestContextMiddleware(app, metrics)
    addresses = ClientAddresses(settings.trusted_proxies)
    return RequestContextMiddleware(
        IpFilter(app, addresses, allow=settings.ip_allow, deny=settings.ip_deny), metrics
    )
