"""One active relay per database: a session advisory lock on a dedicated connection.

The lock lives as long as the session: if the active relay dies (even by
SIGKILL), PostgreSQL ends its session and frees the lock, and a standby,
which tries every second, takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Final

import asyncpg
import structlog

from shared.infrastructure.event_store import OUTBOX_CHANNEL
from shared.infrastructure.postgres import plain_dsn

# Any constant works as long as every relay of one database uses the same one.
RELAY_LOCK_KEY: Final = 0x63717273_72656C61  # "cqrsrela"
_log = structlog.get_logger("relay.leadership")


class Leadership:
    def __init__(
        self, database_url: str, *, connect_timeout: float, command_timeout: float, check_interval: float
    ) -> None:
        self._dsn = plain_dsn(database_url)
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._check_interval = check_interval
        self.connection: asyncpg.Connection | None = None
        self.wakeup = asyncio.Event()

    async def acquire(self, stop: asyncio.Event, heartbeat: Callable[[], None] = lambda: None) -> bool:
        """Wait until this relay holds the lock (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            heartbeat()
            try:
                if await self._try_acquire():
                    _log.info("relay is active")
                    return True
                if not announced:
                    _log.info("another relay is active; standing by")
                    announced = True
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                _log.warning("cannot reach PostgreSQL", error=type(error).__name__)
                await self.release()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._check_interval)
        return False

    async def _try_acquire(self) -> bool:
        if self.connection is None or self.connection.is_closed():
            self.connection = await asyncpg.connect(
                self._dsn,
                timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                server_settings={
                    # Operators (and tests) find the active relay's process by this name.
                    "application_name": f"cqrs-relay-{os.getpid()}",
                    # If this host vanishes, PostgreSQL ends the session (and frees the
                    # lock for a standby) within ~11 s instead of the kernel's ~2 h.
                    "tcp_keepalives_idle": "5",
                    "tcp_keepalives_interval": "2",
                    "tcp_keepalives_count": "3",
                },
            )
        held = bool(await self.connection.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY))
        if held:
            await self.connection.add_listener(OUTBOX_CHANNEL, self._notified)
        return held

    def _notified(self, *_: object) -> None:
        self.wakeup.set()

    def is_held(self) -> bool:
        return self.connection is not None and not self.connection.is_closed()

    async def release(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None and not connection.is_closed():
            # Closing the session frees the advisory lock with it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), self._connect_timeout)
