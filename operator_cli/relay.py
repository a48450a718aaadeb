"""`cqrs relay` and `cqrs events ...`: moving events from PostgreSQL to JetStream."""

from __future__ import annotations

import asyncio

import click

from operator_cli.settings_option import settings_or_exit
from relay.main import run_relay
from relay.republish import Progress, RepublishFailed, republish
from relay.settings import RelaySettings


@click.command("relay")
def relay() -> None:
    """Run the outbox relay (one active per database; more instances stand by)."""
    settings = settings_or_exit(RelaySettings)
    asyncio.run(run_relay(settings))


@click.group("events")
def events() -> None:
    """The event store as operators see it."""


def _report(progress: Progress) -> None:
    eta = "?" if progress.eta_seconds == float("inf") else f"{progress.eta_seconds:.0f}s"
    click.echo(
        f"\rrepublished {progress.done}/{progress.total} events ({progress.rate:,.0f}/s, ETA {eta})",
        nl=False,
        err=True,
    )


@events.command("republish")
@click.option("--from-position", type=click.IntRange(min=1), required=True, help="First global position.")
@click.option(
    "--to-position", type=click.IntRange(min=1), default=None, help="Last global position (default: the end)."
)
def republish_command(from_position: int, to_position: int | None) -> None:
    """Re-publish a range of the event store to JetStream (deduplicated by event id)."""
    settings = settings_or_exit(RelaySettings)
    try:
        result = asyncio.run(republish(settings, from_position, to_position, _report))
    except RepublishFailed as error:
        raise click.ClickException(str(error)) from error
    click.echo("", err=True)
    click.echo(f"republished {result.done} events in {result.elapsed_seconds:.1f}s")
