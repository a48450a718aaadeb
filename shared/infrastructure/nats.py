"""A NATS connection that keeps trying in the background when the server is away.

nats-py reconnects an established connection by itself, but a first connect
that fails raises. A process must still start (and say it is not ready) when
NATS is down, so the first connect is retried here with a capped backoff.
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
        self.client: NatsClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Try once now; if that fails, keep trying in the background."""
        if not await self._try_connect():
            self._task = asyncio.create_task(self._keep_trying(), name=f"nats-connect-{self._name}")

    async def _try_connect(self) -> bool:
        try:
            self.client = await nats.connect(
                servers=self._urls,
                name=self._name,
                connect_timeout=self._timeout,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
            )
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            _log.warning("nats connect failed", error=type(exc).__name__)
            return False
        return True

    async def _keep_trying(self) -> None:
        delay = 0.5
        while not await self._try_connect():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.client is not None and not self.client.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.drain(), timeout=self._timeout)

    async def ping(self) -> None:
        client = self.client
        if client is None or not client.is_connected:
            raise ConnectionError("not connected")
        # nats-py types the timeout as int but accepts float seconds.
        await client.flush(timeout=self._timeout)  # type: ignore[arg-type]
