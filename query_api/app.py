"""Composition root of the query API: settings in, ASGI app out."""

from __future__ import annotations

import os

from query_api.settings import QueryApiSettings
from shared.http.app_factory import create_http_app
from shared.http.request_context import RequestContextMiddleware
from shared.observability.logging import configure_logging
from shared.settings import load_settings

PROCESS_NAME = "query-api"


def create_app(settings: QueryApiSettings) -> RequestContextMiddleware:
    return create_http_app(
        title="CQRS platform: query API",
        description="Reads: read models served through a tag-invalidated cache, with consistency tokens.",
        process_name=PROCESS_NAME,
        settings=settings,
        route_handlers=[],
        database_url=settings.effective_read_database_url,
        readiness_checks=("postgres", "nats", "redis"),
        keys=settings.key_set,
    )


def create_app_from_environment() -> RequestContextMiddleware:
    """Entry point for the ASGI server: each worker process builds its app once."""
    settings = load_settings(QueryApiSettings, os.environ)
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
