"""The prefetching pull against a real JetStream: batches, order, renewal, and handing back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from projectors.prefetch import PrefetchingPull
from shared.messaging.jetstream import ensure_stream, stream_config
from tests.support.isolation import StreamNames

DURABLE = "prefetch-test"


@dataclass
class Bus:
    client: Client
    js: JetStreamContext
    names: StreamNames

    @property
    def subject(self) -> str:
        return f"{self.names.subject_prefix}.test.thing.1"

    async def publish(self, count: int, start: int = 0) -> None:
        for number in range(start, start + count):
            await self.js.publish(self.subject, str(number).encode())

    def pull(self, *, batch_size: int, ahead: int, expires: float = 10.0) -> PrefetchingPull:
        return PrefetchingPull(
            self.client,
            stream=self.names.stream,
            durable=DURABLE,
            batch_size=batch_size,
            ahead=ahead,
            request_expires_seconds=expires,
        )


@pytest.fixture
async def bus(nats_url: str, stream_names: StreamNames) -> AsyncIterator[Bus]:
    client = await nats.connect(servers=[nats_url], connect_timeout=5)
    js = client.jetstream(timeout=5)
    await ensure_stream(js, stream_config(stream_names.stream, stream_names.subject_prefix))
    await js.add_consumer(
        stream_names.stream,
        ConsumerConfig(
            durable_name=DURABLE,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=1_000,
        ),
    )
    try:
        yield Bus(client, js, stream_names)
    finally:
        await client.close()


async def take_until(pull: PrefetchingPull, count: int, *, seconds: float = 10.0) -> list[list[Msg]]:
    """Batches taken until `count` messages came, acked; fails past the deadline."""
    deadline = time.monotonic() + seconds
    batches: list[list[Msg]] = []
    while sum(map(len, batches)) < count:
        assert time.monotonic() < deadline, f"only {sum(map(len, batches))} of {count} arrived"
        if batch := await pull.take(0.5):
            batches.append(batch)
            for message in batch:
                await message.ack()
    return batches


async def test_every_event_arrives_once_in_order_in_bounded_batches(bus: Bus) -> None:
    await bus.publish(250)
    pull = bus.pull(batch_size=40, ahead=80)
    await pull.open()
    try:
        batches = await take_until(pull, 250)
        assert await pull.take(0.3) == []
    finally:
        await pull.close()
    assert max(map(len, batches)) <= 40
    assert [m.data for batch in batches for m in batch] == [str(n).encode() for n in range(250)]


async def test_events_published_after_the_requests_expired_still_arrive(bus: Bus) -> None:
    """Requests that ended (408) are asked again: an idle projector does not go deaf."""
    pull = bus.pull(batch_size=10, ahead=20, expires=0.3)
    await pull.open()
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # idle past a few expiries
            assert await pull.take(0.2) == []
        await bus.publish(15)
        batches = await take_until(pull, 15)
    finally:
        await pull.close()
    assert [m.data for batch in batches for m in batch] == [str(n).encode() for n in range(15)]


async def test_close_hands_back_what_was_never_taken(bus: Bus) -> None:
    """Prefetched but untaken events are nacked on close, redelivered long before ack_wait (30 s).

    The first pull is left with a request still open (after its first batch it asks
    for more than the stream holds): the hand-back must not be swallowed by it.
    """
    await bus.publish(30)
    first = bus.pull(batch_size=10, ahead=30, expires=1.0)
    await first.open()
    # All 30 arrived before the one take: it is then exactly one batch (taking while events still
    # streamed in could take a short batch and then a full one, more than 10 in all).
    deadline = time.monotonic() + 5
    while first.prefetched < 30:
        assert time.monotonic() < deadline, "the prefetch did not arrive"
        await bus.client.flush()
    taken = await first.take(0.5)
    for message in taken:
        await message.ack()
    assert [m.data for m in taken] == [str(n).encode() for n in range(10)]
    untaken = await first.close()
    assert [m.data for m in untaken] == [str(n).encode() for n in range(10, 30)]

    second = bus.pull(batch_size=50, ahead=50)
    await second.open()
    try:
        redelivered = await take_until(second, 20, seconds=5.0)
    finally:
        await second.close()
    assert sorted(int(m.data) for batch in redelivered for m in batch) == list(range(10, 30))
