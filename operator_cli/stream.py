"""`cqrs stream ...`: the JetStream stream of events."""

from __future__ import annotations

import asyncio

import click

from operator_cli.settings_option import settings_or_exit
from shared.messaging.jetstream import ensure_stream_once
from shared.settings import CommonSettings


@click.group("stream")
def stream() -> None:
    """The JetStream stream that carries the events."""


@stream.command("ensure")
def ensure() -> None:
    """Create the stream, or update it to the CQRS_NATS_STREAM_* settings."""
    settings = settings_or_exit(CommonSettings)
    info = asyncio.run(ensure_stream_once(settings))
    click.echo(f"stream {info.config.name} ready: subjects {', '.join(info.config.subjects or [])}")
