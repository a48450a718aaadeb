"""The `cqrs` operator command line: one entry point for every process and task."""

from __future__ import annotations

import click

from operator_cli.database import migrate
from operator_cli.dev import dev
from operator_cli.docs import docs
from operator_cli.limits import limits
from operator_cli.projections import dlq, projections, projector
from operator_cli.relay import events, relay
from operator_cli.seed import seed_command
from operator_cli.serve import command_api, query_api
from operator_cli.stream import stream
from operator_cli.users import users


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cqrs-platform")
def cli() -> None:
    """Operate the CQRS platform: run its processes, migrate, inspect.

    Settings come from CQRS_* environment variables (see docs/configuration.md).
    """


for command in (
    dev,
    migrate,
    stream,
    command_api,
    query_api,
    relay,
    projector,
    projections,
    dlq,
    events,
    users,
    limits,
    docs,
    seed_command,
):
    cli.add_command(command)
