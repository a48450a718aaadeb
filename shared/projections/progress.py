"""Projector progress as PostgreSQL notifications: what a consistency-token wait listens to.

Each projector batch's checkpoint update sends `NOTIFY projection_progress,
'<projection>'` inside its transaction, so it is delivered exactly when the
batch's changes become visible. A listener holds one connection of its own
(LISTEN needs the primary: a hot standby does not relay notifications) and
wakes every waiter of that projection; waiters also re-check on a timer, so
a lost connection or a replica behind the primary delays an answer but
never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import asyncpg
import structlog

PROGRESS_CHANNEL: Final = "projection_progress"
_RECONNECT_SECONDS: Final = 1.0

_log = structlog.get_logger("projections.progress")


class ProgressListener:
    """Wakes the waiters of a projection whenever one of its batches commits."""

    def __init__(self, database_url: str, *, connect_timeout_seconds: float) -> None:
        self._url = database_url
        self._timeout = connect_timeout_seconds
        self._events: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="projection-progress-listener")

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def next_progress(self, projection: str, timeout_seconds: float) -> None:
        """Return at the projection's next commit, or after the timeout, whichever comes first."""
        event = self._events.setdefault(projection, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_seconds)

    def _notified(self, _connection: Any, _pid: int, _channel: str, projection: object) -> None:
        # Waking swaps in a fresh event: waiters that come later wait for the NEXT commit.
        event = self._events.pop(str(projection), None)
        if event is not None:
            event.set()

    async def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                connection = await asyncpg.connect(self._url, timeout=self._timeout)
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                _log.warning("cannot listen for projection progress yet", error=repr(error))
                await self._pause()
                continue
            try:
                await connection.add_listener(PROGRESS_CHANNEL, self._notified)
                while not self._stop.is_set() and not connection.is_closed():
                    await self._pause()
            finally:
                with contextlib.suppress(Exception):
                    await connection.close(timeout=self._timeout)

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), _RECONNECT_SECONDS)
