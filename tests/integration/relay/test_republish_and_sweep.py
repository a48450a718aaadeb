"""Operator tools of the write side: re-publishing a range, sweeping expired idempotency records."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from relay.outbox import SWEEP_BATCH, sweep_idempotency_records
from relay.service import Relay
from relay.settings import RelaySettings
from shared.eventsourcing.store import IdempotencyRecord, StoredResponse
from shared.infrastructure.event_store import PostgresEventStore
from shared.settings import load_settings
from tests.integration.relay.helpers import (
    append_accounts,
    assert_exactly_once_in_order,
    delivered,
    wait_until,
)
from tests.support.isolation import event_store_for


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresEventStore]:
    async with event_store_for(database_url) as event_store:
        yield event_store


def _republish(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CQRS_")}
    return subprocess.run(
        [sys.executable, "-m", "operator_cli", "events", "republish", *args],
        env={**env, **environment, "CQRS_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
async def test_republish_refeeds_a_range_and_is_safe_to_repeat(
    store: PostgresEventStore, service_environment: dict[str, str], nats_url: str
) -> None:
    """A range of the store reaches JetStream once per event, in order, even when republished twice."""
    total = await append_accounts(store, accounts=6, deposits=9)
    first = _republish(service_environment, "--from-position", "1")
    assert first.returncode == 0, first.stderr
    assert f"republished {total} events" in first.stdout
    assert "events/s" not in first.stdout  # progress goes to stderr
    assert f"/{total} events" in first.stderr
    again = _republish(service_environment, "--from-position", "1", "--to-position", str(total))
    assert again.returncode == 0, again.stderr
    assert_exactly_once_in_order(await delivered(nats_url, service_environment["CQRS_NATS_STREAM"]), total)


@pytest.mark.slow
async def test_republish_of_a_window_publishes_only_that_window(
    store: PostgresEventStore, service_environment: dict[str, str], nats_url: str
) -> None:
    """--from-position and --to-position bound what is published."""
    await append_accounts(store, accounts=4, deposits=4)
    result = _republish(service_environment, "--from-position", "6", "--to-position", "10")
    assert result.returncode == 0, result.stderr
    messages = await delivered(nats_url, service_environment["CQRS_NATS_STREAM"])
    assert sorted(int(m.headers["Global-Position"]) for m in messages) == [6, 7, 8, 9, 10]


async def test_the_sweeper_deletes_only_expired_records(store: PostgresEventStore, database_url: str) -> None:
    """Expired idempotency records are deleted; live ones stay."""
    now = datetime.now(UTC)
    response = StoredResponse(b"fp", 201, {}, b"{}")
    for n in range(30):
        expires = now - timedelta(seconds=1) if n < 20 else now + timedelta(hours=1)
        await store.append([], [], IdempotencyRecord("user:x", f"key-{n}-{uuid.uuid4()}", response, expires))
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        assert await sweep_idempotency_records(connection) == 20
        assert await connection.fetchval("SELECT count(*) FROM idempotency_records") == 10
        assert await sweep_idempotency_records(connection) == 0
    finally:
        await connection.close()


async def test_the_relay_sweeps_a_backlog_beyond_one_batch_without_waiting_an_interval(
    service_environment: dict[str, str], database_url: str
) -> None:
    """More expired records than one sweep batch are all gone promptly, not one batch per interval."""
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        await connection.execute(
            "INSERT INTO idempotency_records"
            " (principal, idempotency_key, request_fingerprint, state, expires_at)"
            " SELECT 'user:x', 'k' || n, '\\x00', 'completed', now() - interval '1 second'"
            " FROM generate_series(1, $1) AS n",
            SWEEP_BATCH + 100,
        )
        environment = {**service_environment, "CQRS_IDEMPOTENCY_SWEEP_INTERVAL_SECONDS": "60"}
        relay = Relay(load_settings(RelaySettings, environment))
        task = asyncio.create_task(relay.run())
        try:
            await wait_until(lambda: _no_records(connection), 20, "every expired record is swept")
        finally:
            relay.stop.set()
            await asyncio.wait_for(task, 30)
    finally:
        await connection.close()


async def _no_records(connection: asyncpg.Connection) -> bool:
    return await connection.fetchval("SELECT count(*) FROM idempotency_records") == 0
