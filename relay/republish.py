"""Re-feed JetStream from the event store: a range of global positions, page by page.

Safe to repeat: JetStream drops a message whose Nats-Msg-Id (the event id)
it saw within its dedupe window, and every projector skips versions it has
applied. The outbox is left alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import nats

from contexts.catalogue import REGISTRY
from relay.publisher import EventPublisher
from relay.settings import RelaySettings
from shared.infrastructure.event_store import PostgresEventStore
from shared.infrastructure.postgres import PoolSettings, close_pool, create_pool
from shared.messaging.jetstream import ensure_stream, stream_config_from


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int
    elapsed_seconds: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float:
        return (self.total - self.done) / self.rate if self.rate > 0 else float("inf")


class RepublishFailed(RuntimeError):
    """Some events could not be published; the message says from where to resume."""


async def republish(
    settings: RelaySettings,
    from_position: int,
    to_position: int | None,
    report: Callable[[Progress], None],
    page_size: int = 1000,
) -> Progress:
    pool = await create_pool(
        PoolSettings(
            url=settings.database_url,
            application_name="republish",
            size=2,
            connect_timeout_seconds=settings.database_connect_timeout_seconds,
            command_timeout_seconds=settings.database_command_timeout_seconds,
        )
    )
    client = await nats.connect(
        servers=list(settings.nats_urls), connect_timeout=settings.nats_connect_timeout_seconds
    )
    try:
        js = client.jetstream(timeout=settings.relay_publish_timeout_seconds)
        await ensure_stream(js, stream_config_from(settings))
        publisher = EventPublisher(
            js, REGISTRY, settings.nats_subject_prefix, settings.relay_publish_timeout_seconds
        )
        store = PostgresEventStore(pool)
        total = await _count(pool, from_position, to_position)
        started, done, position = time.monotonic(), 0, from_position
        while True:
            page = await store.read_all(position, to_position, limit=page_size)
            if not page:
                break
            acked = set(await publisher.publish(page))
            missing = [event.global_position for event in page if event.global_position not in acked]
            done += len(acked)
            if missing:
                raise RepublishFailed(f"publishing failed at position {min(missing)}; resume from there")
            position = page[-1].global_position + 1
            report(Progress(done, total, time.monotonic() - started))
        return Progress(done, total, time.monotonic() - started)
    finally:
        await client.close()
        await close_pool(pool, settings.database_connect_timeout_seconds)


async def _count(pool: asyncpg.Pool, from_position: int, to_position: int | None) -> int:
    count = await pool.fetchval(
        "SELECT count(*) FROM events"
        " WHERE global_position >= $1 AND ($2::bigint IS NULL OR global_position <= $2)",
        from_position,
        to_position,
    )
    return int(count)
