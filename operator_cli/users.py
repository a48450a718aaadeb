"""`cqrs users ...`: user administration that cannot go through the API, such as the first admin."""

from __future__ import annotations

import asyncio
import getpass
import sys

import click

from command_api.identity.provisioning import ProvisioningRefused, create_user, provisioning
from command_api.settings import CommandApiSettings
from operator_cli.settings_option import settings_or_exit


@click.group("users")
def users() -> None:
    """Users of the identity context."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise click.ClickException("no terminal to prompt on: pass --password-stdin and pipe the password")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != password:
        raise click.ClickException("the passwords differ")
    return password


@users.command("create-admin")
@click.option("--email", required=True, help="The admin's email address (the login).")
@click.option("--display-name", default="Administrator", show_default=True, help="Name shown for the admin.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of stdin instead of prompting.",
)
def create_admin(email: str, display_name: str, password_stdin: bool) -> None:
    """Create a user with the admin role (prompts for the password twice)."""
    settings = settings_or_exit(CommandApiSettings)
    password = _read_password(password_stdin)

    async def create() -> str:
        async with provisioning(settings) as (executor, passwords):
            user_id = await create_user(
                executor,
                passwords,
                email=email,
                password=password,
                display_name=display_name,
                extra_roles=("admin",),
            )
        return str(user_id)

    try:
        user_id = asyncio.run(create())
    except ProvisioningRefused as refused:
        raise click.ClickException(str(refused)) from refused
    click.echo(f"created admin {email} (user id {user_id})")
