"""The relay: while it holds the lock, move outbox rows to JetStream, oldest first.

A row is deleted only after JetStream acknowledged its message, so a crash at
any point re-publishes at most what was in flight, and JetStream's dedupe
window (keyed by event id) drops those copies. It wakes on the NOTIFY the
event store sends after its appends commit, and polls as a fallback; a failed
round backs off and checks the stream again (NATS may have lost it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import asyncpg
import nats.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from contexts.catalogue import REGISTRY
from relay.leadership import Leadership
from relay.ops import ACTIVE, PUBLISH_ERRORS, PUBLISHED
from relay.outbox import SWEEP_BATCH, delete_published, fetch_batch, sweep_idempotency_records
from relay.publisher import EventPublisher
from relay.settings import RelaySettings
from shared.infrastructure.nats import NatsConnection
from shared.messaging.jetstream import ensure_stream, stream_config_from
from shared.observability.tracing import Tracing

_log = structlog.get_logger("relay")
MAX_BACKOFF_SECONDS = 5.0


class Relay:
    def __init__(self, settings: RelaySettings, tracing: Tracing | None = None) -> None:
        self.settings = settings
        self.tracing = tracing
        self.stop = asyncio.Event()
        # Observability (read by the benchmark and tests): events acknowledged by
        # JetStream since start, and whether the relay waits with an empty outbox.
        self.published_total = 0
        self.idle = asyncio.Event()
        self._leadership = Leadership(
            settings.database_url,
            connect_timeout=settings.database_connect_timeout_seconds,
            command_timeout=settings.database_command_timeout_seconds,
            check_interval=settings.relay_standby_check_seconds,
        )
        self._nats = NatsConnection(
            settings.nats_urls, name="relay", connect_timeout_seconds=settings.nats_connect_timeout_seconds
        )

    async def run(self) -> None:
        await self._nats.start()
        try:
            while not self.stop.is_set():
                if not await self._leadership.acquire(self.stop, self._heartbeat):
                    break
                ACTIVE.set(1)
                try:
                    await self._lead()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                    _log.warning("lost the database; standing down", error=type(error).__name__)
                except nats.errors.Error as error:
                    _log.warning("NATS failed; standing down to retry", error=type(error).__name__)
                finally:
                    ACTIVE.set(0)
                    await self._leadership.release()
                if not self.stop.is_set():
                    await self._idle(MAX_BACKOFF_SECONDS, wake_on_notify=False)
        finally:
            await self._nats.close()

    async def nats_ping(self) -> None:
        await self._nats.ping()

    @property
    def active(self) -> bool:
        """Whether this relay holds the lock (and publishes) right now."""
        return self._leadership.is_held()

    async def _lead(self) -> None:
        publisher = await self._publisher()
        connection = self._leadership.connection
        backoff = 0.0
        next_sweep = 0.0
        while not self.stop.is_set() and self._leadership.is_held() and connection is not None:
            self._heartbeat()
            if time.monotonic() >= next_sweep:
                swept = await sweep_idempotency_records(connection)
                if swept:
                    _log.info("expired idempotency records swept", count=swept)
                # A full batch means more are waiting: sweep again next round, between
                # publishing batches, rather than only once an interval.
                backlog = swept >= SWEEP_BATCH
                next_sweep = time.monotonic() + (
                    0 if backlog else self.settings.idempotency_sweep_interval_seconds
                )
            self._leadership.wakeup.clear()
            batch = await fetch_batch(connection, self.settings.relay_batch_size)
            if not batch:
                self.idle.set()
                await self._idle(self.settings.relay_poll_interval_seconds)
                continue
            self.idle.clear()
            acked = await publisher.publish(batch)
            await delete_published(connection, acked)
            self.published_total += len(acked)
            PUBLISHED.inc(len(acked))
            if len(acked) < len(batch):
                PUBLISH_ERRORS.inc(len(batch) - len(acked))
                backoff = min(max(backoff * 2, 0.1), MAX_BACKOFF_SECONDS)
                _log.warning("some events not published; retrying", pending=len(batch) - len(acked))
                await self._idle(backoff, wake_on_notify=False)
                await self._ensure_stream(publisher.js)
            else:
                backoff = 0.0

    def _heartbeat(self) -> None:
        if self.settings.relay_heartbeat_path:
            Path(self.settings.relay_heartbeat_path).touch()

    async def _publisher(self) -> EventPublisher:
        client = await self._wait_for_nats()
        js = client.jetstream(timeout=self.settings.relay_publish_timeout_seconds)
        backoff = 0.1
        while not await self._ensure_stream(js):
            # JetStream not ready yet (recovering after a restart, no quorum):
            # the outbox keeps everything meanwhile.
            if self.stop.is_set():
                raise TimeoutError("stopped before JetStream was ready")
            await self._idle(backoff, wake_on_notify=False)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        return EventPublisher(
            js=js,
            registry=REGISTRY,
            subject_prefix=self.settings.nats_subject_prefix,
            timeout_seconds=self.settings.relay_publish_timeout_seconds,
            max_in_flight=self.settings.relay_max_in_flight,
            tracing=self.tracing,
            stop=self.stop,
        )

    async def _ensure_stream(self, js: JetStreamContext) -> bool:
        try:
            await ensure_stream(js, stream_config_from(self.settings))
        except (nats.errors.Error, OSError) as error:
            _log.warning("cannot set up the JetStream stream yet", error=type(error).__name__)
            return False
        return True

    async def _wait_for_nats(self) -> NatsClient:
        # The outbox keeps every event while NATS is away; nothing is lost by waiting.
        while self._nats.client is None and not self.stop.is_set():
            await self._idle(0.5, wake_on_notify=False)
        if self._nats.client is None:
            raise TimeoutError("stopped before NATS was reachable")
        return self._nats.client

    async def _idle(self, seconds: float, *, wake_on_notify: bool = True) -> None:
        waiters = [asyncio.ensure_future(self.stop.wait())]
        if wake_on_notify:
            waiters.append(asyncio.ensure_future(self._leadership.wakeup.wait()))
        _, pending = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for waiter in pending:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
