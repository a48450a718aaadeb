"""Events flow from the store through the relay and JetStream into every projection, exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.infrastructure.event_store import PostgresEventStore
from tests.integration.projectors.helpers import (
    dry_run,
    projected_versions,
    running_projectors,
    running_relay,
    wait_until,
)
from tests.integration.relay.helpers import append_accounts
from tests.support.isolation import event_store_for


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresEventStore]:
    async with event_store_for(database_url) as event_store:
        yield event_store


async def test_projections_follow_the_store_and_equal_a_rebuild(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str
) -> None:
    await append_accounts(store, accounts=20, deposits=5)
    async with running_relay(service_environment), running_projectors(service_environment):

        async def caught_up() -> bool:
            versions = await projected_versions(database_url, "accounts")
            summaries = await projected_versions(database_url, "owner_summaries")
            return len(versions) == 20 and set(versions.values()) == {6} and len(summaries) == 20

        await wait_until(caught_up, 30, "both ledger projections apply every event")
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        balances = await connection.fetch("SELECT balance, version FROM read.accounts")
        entries = await connection.fetchval("SELECT count(*) FROM read.account_entries")
        total = await connection.fetchval("SELECT sum(balance) FROM read.owner_summaries")
    finally:
        await connection.close()
    assert {(row["balance"], row["version"]) for row in balances} == {(5, 6)}
    assert entries == 100
    assert total == 100
    for name in ("accounts", "owner_summaries", "users"):
        report = await dry_run(database_url, name)
        assert report.differences == [], name
