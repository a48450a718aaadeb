"""Keyset pagination of GET /v1/accounts holds while rows are inserted between the pages of a walk."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.command_api.conftest import CommandClient, register_admin
from tests.integration.query_api.ledger_helpers import account_row, insert_accounts

START = datetime(2026, 3, 1, tzinfo=UTC)
PRE_EXISTING = 20
MAX_PAGES = 100
SORTS = ["opened_at", "-opened_at", "name", "-name", "balance", "-balance", "updated_at", "-updated_at"]


def _row(owner_id: uuid.UUID, n: int) -> dict[str, Any]:
    """The n-th account: few distinct values per column, so every sort meets ties broken by id."""
    return account_row(
        owner_id,
        opened_at=START + timedelta(seconds=(n * 7) % 9),
        updated_at=START + timedelta(hours=1, seconds=(n * 5) % 4),
        name=f"acct-{n % 4}",
        balance=(n % 3) * 100,
    )


def _key(item: dict[str, Any], field: str) -> tuple[Any, uuid.UUID]:
    value = item[field]
    if field.endswith("_at"):
        value = datetime.fromisoformat(value)
    return value, uuid.UUID(item["account_id"])


@contextlib.asynccontextmanager
async def _inserting_between_pages(
    database_url: str, owner_id: uuid.UUID
) -> AsyncIterator[tuple[asyncio.Event, asyncio.Event, list[uuid.UUID]]]:
    """A task that inserts two accounts whenever a page was read, then lets the walk go on."""
    page_read, inserted_event = asyncio.Event(), asyncio.Event()
    inserted: list[uuid.UUID] = []
    connection = await asyncpg.connect(database_url, timeout=10)

    async def insert() -> None:
        while True:
            await page_read.wait()
            page_read.clear()
            rows = [_row(owner_id, PRE_EXISTING + len(inserted) + n) for n in range(2)]
            await insert_accounts(connection, rows)
            inserted.extend(row["account_id"] for row in rows)
            inserted_event.set()

    task = asyncio.create_task(insert())
    try:
        yield page_read, inserted_event, inserted
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await connection.close()


@pytest.mark.parametrize("sort", SORTS)
async def test_walking_a_paginated_list_under_concurrent_inserts_returns_every_pre_existing_row_exactly_once(
    commands: CommandClient,
    queries: httpx.AsyncClient,
    service_environment: dict[str, str],
    database_url: str,
    sort: str,
) -> None:
    admin = await register_admin(commands, service_environment)
    owner_id = uuid.uuid4()
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        pre_existing = [_row(owner_id, n) for n in range(PRE_EXISTING)]
        await insert_accounts(connection, pre_existing)
    finally:
        await connection.close()

    walked: list[dict[str, Any]] = []
    async with _inserting_between_pages(database_url, owner_id) as (page_read, inserted_event, inserted):
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            query = {"owner_id": str(owner_id), "sort": sort, "limit": "3"}
            if cursor is not None:
                query["cursor"] = cursor
            response = await queries.get("/v1/accounts", params=query, headers=admin.headers)
            assert response.status_code == 200, response.text
            walked += response.json()["items"]
            cursor = response.json()["next_cursor"]
            if cursor is None:
                break
            page_read.set()
            await asyncio.wait_for(inserted_event.wait(), 10)
            inserted_event.clear()
        else:
            pytest.fail(f"the walk did not end within {MAX_PAGES} pages")

    ids = [uuid.UUID(item["account_id"]) for item in walked]
    assert len(ids) == len(set(ids)), "a row appeared twice"
    assert {row["account_id"] for row in pre_existing} <= set(ids), "a pre-existing row was skipped"
    assert inserted, "nothing was inserted during the walk"
    field = sort.removeprefix("-")
    keys = [_key(item, field) for item in walked]
    assert keys == sorted(keys, reverse=sort.startswith("-"))
