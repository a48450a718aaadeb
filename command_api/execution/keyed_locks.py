"""In-process locks per stream id, so commands on one aggregate queue instead of colliding.

The database's version check stays the guard across processes; these locks
only keep one process from racing itself (and wasting retries) on a hot
aggregate. Locks for several streams are taken in sorted order: no deadlock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from uuid import UUID


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[UUID, asyncio.Lock] = {}
        self._users: dict[UUID, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, keys: Iterable[UUID], timeout_seconds: float | None = None) -> AsyncIterator[None]:
        """Hold the locks of all keys; TimeoutError if they are not all free in time."""
        ordered = sorted(set(keys))
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(timeout_seconds):
                for key in ordered:
                    lock = self._locks.setdefault(key, asyncio.Lock())
                    self._users[key] = self._users.get(key, 0) + 1
                    stack.callback(self._release_user, key)
                    await stack.enter_async_context(lock)
            yield

    def _release_user(self, key: UUID) -> None:
        # Forget a lock nobody holds or waits for, so the table does not grow forever.
        self._users[key] -= 1
        if self._users[key] == 0:
            del self._users[key]
            del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
