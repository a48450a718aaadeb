"""Helpers for the relay tests: fill the outbox, read back what reached JetStream."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from contexts.catalogue import REGISTRY
from contexts.ledger.events import AccountOpened, MoneyDeposited
from shared.eventsourcing.store import NewEvent, StreamWrite
from shared.infrastructure.event_store import PostgresEventStore


@dataclass(frozen=True, slots=True)
class Delivered:
    msg_id: str
    stream_id: str
    version: int
    sequence: int
    headers: dict[str, str]


async def append_accounts(store: PostgresEventStore, accounts: int, deposits: int) -> int:
    """Append `accounts` streams of 1 + `deposits` events each; return the number of events."""
    for _ in range(accounts):
        account_id = uuid.uuid4()
        events = [AccountOpened(account_id=account_id, owner_id=uuid.uuid4(), currency="EUR", name="t")]
        events += [
            MoneyDeposited(account_id=account_id, entry_id=uuid.uuid4(), amount=1, reference=f"d{n}")
            for n in range(deposits)
        ]
        new_events = [
            NewEvent(
                event_id=uuid.uuid4(),
                stream_id=account_id,
                stream_type="account",
                version=version,
                event_type=REGISTRY.type_of(event).name,
                schema_version=1,
                data=REGISTRY.encode(event),
                metadata=b'{"correlation_id":"c-1","causation_id":"r-1"}',
            )
            for version, event in enumerate(events, start=1)
        ]
        write = StreamWrite(account_id, "account", 0, len(events), b"{}")
        await store.append([write], new_events)
    return accounts * (1 + deposits)


async def outbox_size(database_url: str) -> int:
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM outbox"))
    finally:
        await connection.close()


async def delivered(nats_url: str, stream: str) -> list[Delivered]:
    """Every message of the stream, in stream order."""
    client = await nats.connect(servers=[nats_url], connect_timeout=5)
    try:
        js = client.jetstream()
        info = await js.stream_info(stream)
        if info.state.messages == 0:
            return []
        subscription = await js.pull_subscribe(
            subject="",
            stream=stream,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
        )
        messages: list[Delivered] = []
        while len(messages) < info.state.messages:
            for message in await subscription.fetch(500, timeout=5):
                headers = dict(message.headers or {})
                messages.append(
                    Delivered(
                        msg_id=headers["Nats-Msg-Id"],
                        stream_id=headers["Stream-Id"],
                        version=int(headers["Stream-Version"]),
                        sequence=message.metadata.sequence.stream,
                        headers=headers,
                    )
                )
        return messages
    finally:
        await client.close()


def assert_exactly_once_in_order(messages: list[Delivered], expected_events: int) -> None:
    ids = [m.msg_id for m in messages]
    assert len(ids) == len(set(ids)), "an event reached JetStream twice"
    assert len(ids) == expected_events, f"{len(ids)} of {expected_events} events reached JetStream"
    last_version: dict[str, int] = {}
    for message in messages:
        assert message.version == last_version.get(message.stream_id, 0) + 1, "versions out of order"
        last_version[message.stream_id] = message.version


async def wait_until(condition: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds}s: {what}")


def start_relay(environment: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CQRS_")}
    return subprocess.Popen(
        [sys.executable, "-m", "operator_cli", "relay"],
        env={**env, **environment, "CQRS_LOG_FORMAT": "json", "CQRS_RELAY_STANDBY_CHECK_SECONDS": "0.2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
