"""Runs one projection: fetch a batch, apply it and advance the checkpoint in one transaction, ack, announce.

Crash-safety follows from the order. A crash before the commit leaves
nothing: JetStream redelivers the batch (possibly after newer events). A
crash after the commit and before the acks redelivers events already
applied: their stream versions show it, and they are skipped.
The cache tags of a commit are stored in it too, and announced again after a
restart if the announcement may have been lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import asyncpg
import nats.errors
import structlog
from nats.aio.msg import Msg

from projectors import checkpoints, dead_letters
from projectors.applier import TRANSIENT_ERRORS, BatchApplier, DeadLetter, StreamGap
from projectors.consumer import ConsumerSpec, EventConsumer
from projectors.envelope import Envelope, MalformedMessage, from_message
from projectors.ops import APPLIED
from projectors.projection import Projection
from projectors.settings import ProjectorSettings
from shared.cache.tags import TagAnnouncer, projection_tag, reset_tag
from shared.eventsourcing.registry import EventRegistry
from shared.infrastructure.nats import NatsConnection
from shared.observability.tracing import Tracing, traceparent_of

_log = structlog.get_logger("projector")
MAX_BACKOFF_SECONDS: Final = 5.0


def subject_filter(prefix: str, registry: EventRegistry, stream_types: frozenset[str]) -> str:
    """The narrowest filter that covers the projection's streams (one subject: NATS 2.9 has no lists)."""
    contexts = {entry.context for entry in registry.types if entry.aggregate in stream_types}
    if len(stream_types) == 1 and len(contexts) == 1:
        return f"{prefix}.{contexts.pop()}.{next(iter(stream_types))}.>"
    if len(contexts) == 1:
        return f"{prefix}.{contexts.pop()}.>"
    return f"{prefix}.>"


class Halted(Exception):
    """The projection is halted (by a poison event or by an operator)."""


class ProjectionRunner:
    def __init__(
        self,
        projection: Projection,
        *,
        settings: ProjectorSettings,
        pool: asyncpg.Pool,
        nats: NatsConnection,
        announcer: TagAnnouncer,
        registry: EventRegistry,
        stop: asyncio.Event,
        tracing: Tracing | None = None,
    ) -> None:
        self.projection = projection
        self.settings = settings
        self._tracing = tracing
        self._pool = pool
        self._announcer = announcer
        self._registry = registry
        self._stop = stop
        self._applier = BatchApplier(
            projection,
            registry,
            max_attempts=settings.projector_max_attempts,
            retry_delay_seconds=settings.projector_retry_delay_seconds,
        )
        self.consumer = EventConsumer(
            nats,
            ConsumerSpec(
                stream=settings.nats_stream,
                durable=f"{settings.projector_consumer_prefix}{projection.name}",
                filter_subject=subject_filter(
                    settings.nats_subject_prefix, registry, projection.stream_types
                ),
                ack_wait_seconds=settings.projector_ack_wait_seconds,
                batch_size=settings.projector_batch_size,
            ),
            stall_check_seconds=settings.projector_stall_check_seconds,
        )
        # Tags committed but not yet announced (Redis unreachable); also in the checkpoint row.
        self._unannounced: set[str] = set()
        # What this runner last stored as pending in the checkpoint row.
        self._written_tags: set[str] = set()
        # Observability, read by tests and the benchmark.
        self.applied_total = 0
        self._applied_metric = APPLIED.labels(projection.name)
        self.batches_total = 0

    @property
    def owed_tags(self) -> int:
        """Cache tags committed but not announced yet (Redis away, or an announcement under way)."""
        return len(self._unannounced)

    async def run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            try:
                await self._start()
                backoff = 0.0
                await self._consume()
            except Halted:
                await self._wait_while_halted()
            except (*TRANSIENT_ERRORS, nats.errors.Error, ConnectionError, StreamGap) as error:
                backoff = min(max(backoff * 2, 0.1), MAX_BACKOFF_SECONDS)
                _log.warning(
                    "projection interrupted; retrying",
                    projection=self.projection.name,
                    error=f"{type(error).__name__}: {error}",
                    retry_in=backoff,
                )
                await self._sleep(backoff)
        await self.consumer.close()

    async def _start(self) -> None:
        async with self._pool.acquire() as connection:
            checkpoint = await checkpoints.ensure(
                connection, self.projection.name, self.projection.stream_types
            )
            if checkpoint.state == "halted":
                raise Halted
        self._unannounced.update(checkpoint.pending_tags)
        self._written_tags = set(checkpoint.pending_tags)
        await self._announce()
        # Waiting for NATS holds no database connection.
        epoch = await self._wait_for_bus_epoch()
        start_after = checkpoint.stream_sequence
        if checkpoint.bus_epoch != epoch:
            if checkpoint.bus_epoch is not None:
                _log.warning(
                    "JetStream stream was created anew; reading it from its start",
                    projection=self.projection.name,
                )
            async with self._pool.acquire() as connection:
                await checkpoints.start_epoch(connection, self.projection.name, epoch)
            start_after = 0
        await self.consumer.start(checkpoint_sequence=start_after)

    async def _wait_for_bus_epoch(self) -> str:
        backoff = 0.1
        while True:
            try:
                return await self.consumer.bus_epoch()
            except (nats.errors.Error, ConnectionError) as error:
                if self._stop.is_set():
                    raise
                _log.info(
                    "waiting for JetStream", projection=self.projection.name, error=type(error).__name__
                )
                await self._sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _consume(self) -> None:
        while not self._stop.is_set():
            messages = await self.consumer.fetch(self.settings.projector_fetch_timeout_seconds)
            self._heartbeat()
            if not messages:
                await self._announce()
                continue
            # Once fetched, a batch is finished even if a stop arrives meanwhile.
            try:
                await self._process(messages)
            except _HaltNow as halt:
                await self._record_halt(halt.letter)
                await _nak(messages, delay=None)
                raise Halted from None
            except Halted:
                await _nak(messages, delay=None)
                raise
            except BaseException:
                await _nak(messages, delay=1.0)
                raise

    async def _process(self, messages: Sequence[Msg]) -> None:
        envelopes: list[Envelope] = []
        for message in messages:
            try:
                envelopes.append(
                    from_message(message.subject, message.headers or {}, message.data, self._registry)
                )
            except MalformedMessage as error:
                # Not published by a relay: nothing in the store to apply or park.
                headers = message.headers or {}
                _log.error(
                    "message is not an event; skipped",
                    subject=message.subject,
                    error=str(error),
                    correlation_id=headers.get("Correlation-Id"),
                    causation_id=headers.get("Causation-Id"),
                )
        # A filter wider than the projection's aggregates (several of them) delivers others too.
        envelopes = [e for e in envelopes if e.stream_type in self.projection.stream_types]
        top_sequence = max(m.metadata.sequence.stream for m in messages)
        started = datetime.now(UTC)
        async with self._pool.acquire() as connection, connection.transaction():
            checkpoint = await checkpoints.lock(connection, self.projection.name)
            if checkpoint.state != "running":
                raise Halted
            # Every event goes to the applier, even one at or below the checkpoint's
            # sequence: JetStream redelivers a killed or nak'ed batch only after
            # newer events went by, so a low sequence may never have been applied.
            # The stream versions tell applied events from new ones.
            result = await self._applier.apply(connection, envelopes)
            if result.halted_by is not None:
                raise _HaltNow(result.halted_by)
            await dead_letters.park(connection, self.projection.name, result.parked)
            # Tags another writer stored (a dlq retry, a rebuild's swap, another instance)
            # stay pending until announced: this row is their only record.
            stored_by_others = set(checkpoint.pending_tags) - self._written_tags
            # The projection's own tag too: answers over all of its rows (an admin's list) depend on it.
            touched = result.tags | {projection_tag(self.projection.name)} if result.applied else result.tags
            pending = _bounded(self._unannounced | touched | stored_by_others, self.projection.name)
            await checkpoints.advance(
                connection,
                self.projection.name,
                stream_sequence=top_sequence,
                position=result.max_position,
                last_event_at=result.last_recorded_at,
                pending_tags=pending,
            )
            self._crash_if("before_commit")
        self._crash_if("after_commit")
        self._unannounced = pending
        self._written_tags = pending
        self.applied_total += result.applied
        self._applied_metric.inc(result.applied)
        self.batches_total += 1
        if self._tracing is not None:
            self._trace_applied(messages, started)
        for message in messages:
            with contextlib.suppress(nats.errors.Error):
                await message.ack()
        await self._announce()

    def _trace_applied(self, messages: Sequence[Msg], started: datetime) -> None:
        """A span per traced message, child of its publish span: the batch that applied it, as long
        as its transaction took."""
        if self._tracing is None:
            return
        committed = datetime.now(UTC)
        for message in messages:
            parent = traceparent_of(message.headers)
            if parent:
                self._tracing.record(
                    f"apply {self.projection.name}",
                    parent=parent,
                    start=started,
                    end=committed,
                    projection=self.projection.name,
                    batch_size=len(messages),
                )

    async def _record_halt(self, letter: DeadLetter) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            await checkpoints.lock(connection, self.projection.name)
            await dead_letters.park(connection, self.projection.name, [letter])
            await checkpoints.set_state(
                connection, self.projection.name, "halted", f"{letter.event.position_label}: {letter.error}"
            )
        _log.error(
            "event failed; projection halted",
            projection=self.projection.name,
            halted_event=letter.event.position_label,
            error=letter.error,
            **letter.event.log_ids,
        )

    async def _announce(self) -> None:
        if not self._unannounced:
            return
        try:
            await self._announcer.announce(self._unannounced)
        except Exception as error:  # noqa: BLE001 - Redis away: keep the tags, the next batch tries again
            _log.warning(
                "cannot announce cache tags yet",
                projection=self.projection.name,
                tags=len(self._unannounced),
                error=type(error).__name__,
            )
        else:
            self._unannounced = set()

    async def _wait_while_halted(self) -> None:
        _log.error("projection halted; waiting for an operator", projection=self.projection.name)
        while not self._stop.is_set():
            try:
                async with self._pool.acquire() as connection:
                    if await checkpoints.state(connection, self.projection.name) == "running":
                        _log.info("projection resumed", projection=self.projection.name)
                        return
            except TRANSIENT_ERRORS:
                pass
            await self._sleep(self.settings.projector_halt_poll_seconds)

    def _crash_if(self, point: str) -> None:
        if self.settings.projector_crash_point == point:
            _log.warning("crashing on purpose (test profile)", point=point)
            os.kill(os.getpid(), signal.SIGKILL)

    def _heartbeat(self) -> None:
        if self.settings.projector_heartbeat_path:
            Path(self.settings.projector_heartbeat_path).touch()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)


# Beyond this many unannounced tags (Redis away for long), the projection's reset tag stands for them all.
MAX_PENDING_TAGS: Final = 10_000


def _bounded(tags: set[str], projection: str) -> set[str]:
    return tags if len(tags) <= MAX_PENDING_TAGS else {projection_tag(projection), reset_tag(projection)}


class _HaltNow(Halted):
    def __init__(self, letter: DeadLetter) -> None:
        super().__init__()
        self.letter = letter


async def _nak(messages: Sequence[Msg], *, delay: float | None) -> None:
    for message in messages:
        with contextlib.suppress(Exception):
            await message.nak(delay=delay)
