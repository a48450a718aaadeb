"""A NATS connection that a process can start without NATS being up.

With unlimited reconnects nats-py keeps retrying even the first connect, so
the connect runs as a background task: `start()` waits for it a bounded time,
then lets the process go on (its readiness says "nats failed" until it lands).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import nats
import structlog
from nats.aio.client import Client as NatsClient

_log = structlog.get_logger("nats")


class NatsConnection:
    """Owns one client; `client` is None until the first connect succeeds."""

    def __init__(self, urls: Sequence[str], *, name: str, connect_timeout_seconds: float) -> None:
        self._urls = list(urls)
        self._name = name
        self._timeout = connect_timeout_seconds
        self._connect_task: asyncio.Task[None] | None = None
        self._failing = False
        self._closing = False
        self.client: NatsClient | None = None
        # Counts reconnections, so that a subscriber can tell it should subscribe
        # again (nats-py pull subscriptions can stall after a server restart).
        self.reconnections = 0

    async def start(self) -> None:
        """Begin connecting; return once connected or after the connect timeout."""
        self._connect_task = asyncio.create_task(self._connect(), name=f"nats-connect-{self._name}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._connect_task), self._timeout)

    async def _connect(self) -> None:
        self.client = await nats.connect(
            servers=self._urls,
            name=self._name,
            connect_timeout=self._timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._failing = False
        _log.info("nats connected")

    async def _on_error(self, exc: Exception) -> None:
        # One warning per outage, not one traceback per retry.
        if not self._failing:
            _log.warning("nats unreachable, retrying", error=type(exc).__name__)
        self._failing = True

    async def _on_disconnected(self) -> None:
        if not self._closing:
            _log.warning("nats disconnected")

    async def _on_reconnected(self) -> None:
        self.reconnections += 1
        self._failing = False
        _log.info("nats reconnected")

    async def close(self) -> None:
        self._closing = True
        if self._connect_task is not None and not self._connect_task.done():
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connect_task
        if self.client is not None and not self.client.is_closed:
            # Drain delivers what is in flight; the timeout bounds a shutdown on a dead link.
            try:
                await asyncio.wait_for(self.client.drain(), timeout=self._timeout)
            except Exception:  # noqa: BLE001 - whatever went wrong, the client must still close
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.client.close(), timeout=self._timeout)

    async def ping(self) -> None:
        client = self.client
        if client is None or not client.is_connected:
            raise ConnectionError("not connected")
        # nats-py types the timeout as int but accepts float seconds.
        await client.flush(timeout=self._timeout)  # type: ignore[arg-type]
