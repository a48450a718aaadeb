"""`cqrs command-api` and `cqrs query-api`: serve an API with granian or uvicorn."""

from __future__ import annotations

import click
import uvicorn
from granian.constants import Interfaces
from granian.server import Server

from command_api.settings import CommandApiSettings
from operator_cli.settings_option import settings_or_exit
from query_api.settings import QueryApiSettings


def _serve(target: str, host: str, port: int, workers: int, server: str) -> None:
    if server == "uvicorn":
        uvicorn.run(
            target,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            # Our own canonical line per request replaces the access log,
            # and logging is configured by the app factory, not uvicorn.
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=20,
        )
        return
    Server(
        target,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        # Our own canonical line per request replaces granian's access log.
        log_access=False,
        # granian's own lines go through the root logger, so they come out as ours do.
        log_dictconfig={
            "version": 1,
            "disable_existing_loggers": False,
            "loggers": {"_granian": {"handlers": [], "propagate": True}},
        },
    ).serve()


@click.command("command-api")
@click.option("--host", default=None, help="Address to bind [CQRS_HOST, default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [CQRS_COMMAND_API_PORT, default 8000].")
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Worker processes [CQRS_WORKERS, default 1].",
)
def command_api(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the command API (writes)."""
    settings = settings_or_exit(CommandApiSettings)
    _serve(
        "command_api.app:create_app_from_environment",
        host or settings.host,
        port or settings.command_api_port,
        workers or settings.workers,
        settings.http_server,
    )


@click.command("query-api")
@click.option("--host", default=None, help="Address to bind [CQRS_HOST, default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [CQRS_QUERY_API_PORT, default 8001].")
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Worker processes [CQRS_WORKERS, default 1].",
)
def query_api(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the query API (reads)."""
    settings = settings_or_exit(QueryApiSettings)
    _serve(
        "query_api.app:create_app_from_environment",
        host or settings.host,
        port or settings.query_api_port,
        workers or settings.workers,
        settings.http_server,
    )
