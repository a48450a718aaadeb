"""Helpers of the ledger query tests: the APIs in-process, read models filled by the real projector."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from query_api.app import create_app
from query_api.settings import QueryApiSettings
from shared.settings import load_settings
from tests.integration.command_api.conftest import app_client
from tests.integration.projectors.helpers import running_projectors, running_relay, wait_until

_PROJECTION_WAIT_SECONDS = 30


@contextlib.asynccontextmanager
async def query_client(environment: Mapping[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(load_settings(QueryApiSettings, environment))) as client:
        yield client


@contextlib.asynccontextmanager
async def projecting(environment: Mapping[str, str], *names: str) -> AsyncIterator[None]:
    """The relay and these projections running in this process, as in production."""
    async with running_relay(environment), running_projectors(environment, names):
        yield


async def project(
    environment: Mapping[str, str], database_url: str, projection: str, streams: Mapping[str, int]
) -> None:
    """Run the relay and `projection` until it has applied each stream (id -> version)."""
    async with projecting(environment, projection):
        await projected(database_url, projection, streams)


async def projected(database_url: str, projection: str, streams: Mapping[str, int]) -> None:
    """Wait until `projection` applied each stream (id -> version) up to that version."""
    table = f"read.{projection}_streams"
    ids = [uuid.UUID(stream_id) for stream_id in streams]

    async def caught_up() -> bool:
        connection = await asyncpg.connect(database_url, timeout=10)
        try:
            rows = await connection.fetch(
                f"SELECT stream_id, version FROM {table} WHERE stream_id = ANY($1::uuid[])",  # noqa: S608 - a fixed name
                ids,
            )
        finally:
            await connection.close()
        versions = {str(row["stream_id"]): row["version"] for row in rows}
        return all(versions.get(stream_id, 0) >= version for stream_id, version in streams.items())

    await wait_until(caught_up, _PROJECTION_WAIT_SECONDS, f"{projection} applies {dict(streams)}")


async def insert_accounts(connection: asyncpg.Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Rows straight into the read model: for tests of the query alone, not of the projector."""
    columns = ("account_id", "owner_id", "name", "currency", "balance", "status", "version")
    await connection.executemany(
        "INSERT INTO read.accounts (account_id, owner_id, name, currency, balance, status, version, "
        "opened_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [
            (*(row[column] for column in columns), row["opened_at"], row.get("updated_at", row["opened_at"]))
            for row in rows
        ],
    )


def account_row(owner_id: uuid.UUID, *, opened_at: datetime, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "account_id": uuid.uuid4(),
        "owner_id": owner_id,
        "name": "main",
        "currency": "EUR",
        "balance": 0,
        "status": "open",
        "version": 1,
        "opened_at": opened_at,
    }
    row.update(overrides)
    return row


def field_errors(response: httpx.Response) -> list[str]:
    return [error["field"] for error in response.json().get("errors", [])]
