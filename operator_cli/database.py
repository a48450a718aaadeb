"""`cqrs migrate`: bring the database schema to the newest revision."""

from __future__ import annotations

import asyncio

import alembic.util
import click

from operator_cli.settings_option import settings_or_exit
from shared.db import migrate as migrations
from shared.settings import DatabaseSettings


@click.command("migrate")
@click.option(
    "--to",
    "revision",
    default="head",
    show_default=True,
    help="Target revision (an older one downgrades).",
)
def migrate(revision: str) -> None:
    """Apply the database migrations; running it again changes nothing."""
    settings = settings_or_exit(DatabaseSettings)
    before = asyncio.run(migrations.current_revision(settings.database_url))
    target = migrations.head_revision() if revision == "head" else revision
    try:
        if target == before:
            pass
        elif migrations.is_after(target, before):
            migrations.upgrade(settings.database_url, target)
        else:
            migrations.downgrade(settings.database_url, target)
    except alembic.util.CommandError as error:
        raise click.ClickException(f"migration: {error}") from error
    after = asyncio.run(migrations.current_revision(settings.database_url))
    if before == after:
        click.echo(f"database already at {after}; nothing to do")
    else:
        click.echo(f"database migrated from {before or 'empty'} to {after or 'empty'}")
