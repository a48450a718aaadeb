"""Fixtures of the query API tests: the command API to write with, the query API to read with."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.command_api.conftest import CommandClient, command_client
from tests.integration.query_api.ledger_helpers import query_client


@pytest.fixture
async def commands(service_environment: dict[str, str]) -> AsyncIterator[CommandClient]:
    async with command_client(service_environment) as client:
        yield client


@pytest.fixture
async def queries(service_environment: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with query_client(service_environment) as client:
        yield client
