"""`cqrs stream ...`: the JetStream stream of events."""

from __future__ import annotations

import asyncio

import click
import nats

from operator_cli.settings_option import settings_or_exit
from shared.messaging.jetstream import ensure_stream, stream_config_from
from shared.settings import CommonSettings


@click.group("stream")
def stream() -> None:
    """The JetStream stream that carries the events."""


@stream.command("ensure")
@click.option(
    "--replicas",
    type=int,
    default=1,
    show_default=True,
    help="Stream replicas (3 on a NATS cluster).",
)
def ensure(replicas: int) -> None:
    """Create the stream, or update it when its configuration changed."""
    settings = settings_or_exit(CommonSettings)

    async def run() -> None:
        client = await nats.connect(
            servers=list(settings.nats_urls),
            connect_timeout=settings.nats_connect_timeout_seconds,
            max_reconnect_attempts=3,
        )
        try:
            config = stream_config_from(settings)
            info = await ensure_stream(client.jetstream(), config)
        finally:
            await client.close()
        click.echo(f"stream {info.config.name} ready: subjects {', '.join(info.config.subjects or [])}")

    asyncio.run(run())
