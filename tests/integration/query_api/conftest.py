"""Fixtures of the query API tests: the command API to write with, the query API to read with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple

import httpx
import pytest

from tests.integration.command_api.conftest import (
    CommandClient,
    User,
    command_client,
    db,  # noqa: F401 - a fixture this package's tests use too: a direct connection
    register,
    register_admin,
)
from tests.integration.query_api.ledger_helpers import query_client


@pytest.fixture
async def commands(service_environment: dict[str, str]) -> AsyncIterator[CommandClient]:
    async with command_client(service_environment) as client:
        yield client


@pytest.fixture
async def queries(service_environment: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with query_client(service_environment) as client:
        yield client


class People(NamedTuple):
    alice: User
    bob: User
    admin: User


@pytest.fixture
async def people(commands: CommandClient, service_environment: dict[str, str]) -> People:
    """Two registered users and an admin, each logged in."""
    return People(
        await register(commands),
        await register(commands),
        await register_admin(commands, service_environment),
    )
