"""`cqrs dev`: the whole system on embedded servers, for a newcomer and for demos."""

from __future__ import annotations

import os
from pathlib import Path

import click

from devstack.stack import RequestedPorts
from devstack.supervisor import DevOptions, DevStackError, run_dev
from shared.observability.logging import configure_logging


@click.command("dev")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".cqrs-data"),
    show_default=True,
    help="Where the embedded servers keep their data.",
)
@click.option("--fresh", is_flag=True, help="Wipe the data directory first.")
@click.option(
    "--seed",
    is_flag=True,
    help="Once the APIs are ready, create demo users and accounts (`cqrs seed`) and print their logins.",
)
@click.option(
    "--external",
    is_flag=True,
    help="Use the servers named by CQRS_* settings instead of embedded ones.",
)
@click.option("--command-api-port", type=int, default=8000, show_default=True)
@click.option("--query-api-port", type=int, default=8001, show_default=True)
@click.option(
    "--postgres-port",
    type=int,
    default=None,
    help="Default: the last one used, or a free one.",
)
@click.option(
    "--nats-port",
    type=int,
    default=None,
    help="Default: the last one used, or a free one.",
)
@click.option(
    "--redis-port",
    type=int,
    default=None,
    help="Default: the last one used, or a free one.",
)
def dev(
    data_dir: Path,
    fresh: bool,
    seed: bool,
    external: bool,
    command_api_port: int,
    query_api_port: int,
    postgres_port: int | None,
    nats_port: int | None,
    redis_port: int | None,
) -> None:
    """Start PostgreSQL, NATS and Redis, migrate, then run every process until Ctrl-C."""
    configure_logging("info", os.environ.get("CQRS_LOG_FORMAT", "auto"))
    options = DevOptions(
        data_dir=data_dir.resolve(),
        fresh=fresh,
        seed=seed,
        external=external,
        command_api_port=command_api_port,
        query_api_port=query_api_port,
        ports=RequestedPorts(postgres=postgres_port, nats=nats_port, redis=redis_port),
    )
    try:
        code = run_dev(options, os.environ, click.echo)
    except DevStackError as exc:
        raise click.ClickException(str(exc)) from exc
    raise SystemExit(code)
