"""The `cqrs` command line: every command is listed and explains itself."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from operator_cli.main import cli

EXPECTED_COMMANDS = {"dev", "migrate", "stream", "command-api", "query-api", "relay", "events", "seed"}


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        path = (*prefix, name)
        yield path
        if isinstance(command, click.Group):
            yield from _all_commands(command, path)


def test_help_lists_the_commands() -> None:
    """`cqrs --help` names every top-level command."""
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()}
    assert listed >= EXPECTED_COMMANDS


@pytest.mark.parametrize("path", sorted(_all_commands(cli)), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    """Each command and subcommand answers --help with a description."""
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    description = result.output.split("\n\n")[1].strip()
    assert description


def test_a_bad_setting_is_a_clean_error() -> None:
    """A command with a bad CQRS_* value exits 1 with the variable's name, not a traceback."""
    result = CliRunner().invoke(cli, ["migrate"], env={"CQRS_DATABASE_URL": "mysql://nope"})
    assert result.exit_code == 1
    assert "CQRS_DATABASE_URL" in result.output
    assert "Traceback" not in result.output
