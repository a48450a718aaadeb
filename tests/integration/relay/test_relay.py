"""The relay: every outbox event reaches JetStream once, in order, through kills and outages."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from devstack.ports import free_port
from devstack.servers import EmbeddedNats
from relay.service import Relay
from relay.settings import RelaySettings
from shared.eventsourcing.store import NewEvent, StreamWrite
from shared.infrastructure.event_store import PostgresEventStore
from shared.settings import load_settings
from tests.integration.relay.helpers import (
    append_accounts,
    assert_exactly_once_in_order,
    delivered,
    outbox_size,
    start_relay,
    wait_until,
)
from tests.support.isolation import event_store_for


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresEventStore]:
    async with event_store_for(database_url) as event_store:
        yield event_store


@contextlib.asynccontextmanager
async def running_relay(environment: dict[str, str]) -> AsyncIterator[Relay]:
    relay = Relay(load_settings(RelaySettings, environment))
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        relay.stop.set()
        await asyncio.wait_for(task, 30)


async def test_outbox_events_reach_jetstream_in_order_with_headers(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str, nats_url: str
) -> None:
    """Each event is published once with the design's headers, and its outbox row is deleted after the ack."""
    total = await append_accounts(store, accounts=3, deposits=4)
    async with running_relay(service_environment):
        await wait_until(lambda: _empty(database_url), 20, "the outbox drains")
    messages = await delivered(nats_url, service_environment["CQRS_NATS_STREAM"])
    assert_exactly_once_in_order(messages, total)
    headers = messages[0].headers
    for name in ("Event-Type", "Event-Schema-Version", "Stream-Version", "Global-Position", "Correlation-Id"):
        assert headers[name]
    assert headers["Correlation-Id"] == "c-1"
    assert headers["Causation-Id"] == "r-1"


async def test_a_new_event_is_published_promptly_after_notify(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str, nats_url: str
) -> None:
    """An idle relay wakes on the append's NOTIFY rather than its poll interval."""
    environment = {**service_environment, "CQRS_RELAY_POLL_INTERVAL_SECONDS": "60"}
    async with running_relay(environment) as relay:
        await asyncio.wait_for(relay.idle.wait(), 10)
        await append_accounts(store, accounts=1, deposits=1)
        await wait_until(lambda: _empty(database_url), 10, "published without waiting for the 60 s poll")


@pytest.mark.slow
async def test_a_relay_killed_while_publishing_loses_and_duplicates_nothing(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str, nats_url: str
) -> None:
    """SIGKILL mid-backlog, then a restart: every event is on JetStream exactly once, in version order."""
    total = await append_accounts(store, accounts=40, deposits=49)
    first = start_relay({**service_environment, "CQRS_RELAY_BATCH_SIZE": "200"})
    try:
        await wait_until(lambda: _below(database_url, total - 200), 30, "the relay publishes some")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert await outbox_size(database_url) > 0, "the kill came too late to test anything"
    second = start_relay(service_environment)
    try:
        await wait_until(lambda: _empty(database_url), 60, "the restarted relay drains the outbox")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert second.returncode == 0
    assert_exactly_once_in_order(await delivered(nats_url, service_environment["CQRS_NATS_STREAM"]), total)


@pytest.mark.slow
async def test_a_standby_relay_takes_over_from_a_killed_one(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str, nats_url: str
) -> None:
    """With two relays running, killing the active one lets the standby publish within seconds."""
    relays = [start_relay(service_environment), start_relay(service_environment)]
    try:
        await wait_until(lambda: _lock_held(database_url), 20, "one relay holds the lock")
        active_pid = await _holder(database_url)
        assert active_pid in {p.pid for p in relays}
        active = next(p for p in relays if p.pid == active_pid)
        standby = next(p for p in relays if p.pid != active_pid)
        active.send_signal(signal.SIGKILL)
        active.wait(10)
        total = await append_accounts(store, accounts=5, deposits=3)
        await wait_until(lambda: _empty(database_url), 10, "the standby took over and drained the outbox")
        assert await _holder(database_url) == standby.pid
    finally:
        for process in relays:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
    assert_exactly_once_in_order(await delivered(nats_url, service_environment["CQRS_NATS_STREAM"]), total)


async def test_commands_keep_working_while_nats_is_down(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    """With NATS stopped, appends still succeed into the outbox; once NATS is back, every event arrives."""
    server = EmbeddedNats(tmp_path / "nats", free_port(), free_port())
    server.start()
    server.wait_ready(30)
    environment = {**service_environment, "CQRS_NATS_URLS": server.url}
    try:
        async with running_relay(environment):
            total = await append_accounts(store, accounts=5, deposits=5)
            await wait_until(lambda: _empty(database_url), 20, "published while NATS is up")
            server.stop()
            total += await append_accounts(store, accounts=5, deposits=5)
            assert await outbox_size(database_url) > 0
            server.start()
            server.wait_ready(30)
            await wait_until(lambda: _empty(database_url), 60, "the outbox drains after NATS returns")
        assert_exactly_once_in_order(
            await delivered(server.url, service_environment["CQRS_NATS_STREAM"]), total
        )
    finally:
        server.stop()


async def _empty(database_url: str) -> bool:
    return await outbox_size(database_url) == 0


async def _below(database_url: str, count: int) -> bool:
    return await outbox_size(database_url) < count


async def _holder(database_url: str) -> int | None:
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        name = await connection.fetchval(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'cqrs-relay-%' "
            "AND a.datname = current_database()"
        )
    finally:
        await connection.close()
    return int(name.rsplit("-", 1)[1]) if name else None


async def _lock_held(database_url: str) -> bool:
    return await _holder(database_url) is not None


async def test_an_event_of_an_unknown_aggregate_blocks_only_its_own_stream(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str, nats_url: str
) -> None:
    """An event this relay cannot route stays in the outbox; every other stream is still published."""
    unknown = uuid.uuid4()
    await store.append(
        [StreamWrite(unknown, "gadget", 0, 1, b"{}")],
        [NewEvent(uuid.uuid4(), unknown, "gadget", 1, "GadgetBuilt", 1, b"{}")],
    )
    total = await append_accounts(store, accounts=3, deposits=2)
    async with running_relay(service_environment):
        await wait_until(lambda: _below(database_url, 2), 20, "every known stream is published")
    assert await outbox_size(database_url) == 1
    assert_exactly_once_in_order(await delivered(nats_url, service_environment["CQRS_NATS_STREAM"]), total)


async def test_the_relay_touches_its_heartbeat_while_running(
    service_environment: dict[str, str], tmp_path: Path
) -> None:
    """With a heartbeat path set, the relay keeps that file fresh (the container health check reads it)."""
    heartbeat = tmp_path / "relay.alive"
    environment = {**service_environment, "CQRS_RELAY_HEARTBEAT_PATH": str(heartbeat)}
    async with running_relay(environment) as relay:
        await asyncio.wait_for(relay.idle.wait(), 10)
        first = heartbeat.stat().st_mtime_ns
        await wait_until(lambda: _touched_after(heartbeat, first), 10, "the heartbeat is touched again")


async def _touched_after(path: Path, mtime_ns: int) -> bool:
    return path.stat().st_mtime_ns > mtime_ns  # noqa: ASYNC240 - one stat of a local temp file
