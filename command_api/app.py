"""Composition root of the command API: settings in, ASGI app out."""

from __future__ import annotations

import os

from command_api.settings import CommandApiSettings
from shared.http.app_factory import create_http_app
from shared.http.request_context import RequestContextMiddleware
from shared.observability.logging import configure_logging
from shared.settings import load_settings

PROCESS_NAME = "command-api"


def create_app(settings: CommandApiSettings) -> RequestContextMiddleware:
    return create_http_app(
        title="CQRS platform: command API",
        description="Writes: commands validated, decided and stored as events with idempotency keys.",
        process_name=PROCESS_NAME,
        settings=settings,
        route_handlers=[],
    )


def create_app_from_environment() -> RequestContextMiddleware:
    """Entry point for the ASGI server: each worker process builds its app once."""
    settings = load_settings(CommandApiSettings, os.environ)
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
