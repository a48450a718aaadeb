"""Consistency tokens on the read side: wait until a projection reflects a write, bounded.

A token names the streams a command changed and the versions they reached
(shared/consistency.py). A projection reflects the write once its stream
versions table holds at least those versions for the streams of its own
aggregate types; the token's other streams (a registration's user, read by
another projection) do not concern it. A stream the read database does not
know yet counts as not reflected: a replica behind the primary makes the
query wait, never answer stale.

Waiting sleeps until the projection's next commit (ProgressListener) or a
short re-check period, whichever is first: never a tight loop.
"""

from __future__ import annotations

import time
from typing import Final
from uuid import UUID

import asyncpg

from shared.consistency import InvalidConsistencyToken, decode_token
from shared.db.schema import READ_SCHEMA
from shared.http.problems import problem
from shared.projections.progress import ProgressListener

# How often a wait re-checks without a notification (lost listener, replica lag).
RECHECK_SECONDS: Final = 0.1

# The stream types come from the projector's checkpoint row: a projection that
# never ran has none, and is behind every token.
_BEHIND: Final = """
WITH types AS (SELECT stream_types FROM projection_checkpoints WHERE projection = $3)
SELECT NOT EXISTS (SELECT 1 FROM types) OR EXISTS (
    SELECT 1
      FROM unnest($1::uuid[], $2::int[]) AS t(stream_id, version)
     CROSS JOIN types
      LEFT JOIN aggregate_states a ON a.stream_id = t.stream_id
      LEFT JOIN {streams} s ON s.stream_id = t.stream_id
     WHERE a.stream_id IS NULL
        OR (a.stream_type = ANY(types.stream_types) AND coalesce(s.version, 0) < t.version)
)
"""


class ConsistencyWaiter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        listener: ProgressListener,
        *,
        timeout_seconds: float,
        acquire_timeout_seconds: float,
    ) -> None:
        self._pool = pool
        self._listener = listener
        self._timeout = timeout_seconds
        self._acquire_timeout = acquire_timeout_seconds

    async def wait(self, token: str, projection: str) -> None:
        """Return once `projection` reflects the token's write; 400 for a bad token, 503 past the bound."""
        try:
            streams = decode_token(token)
        except InvalidConsistencyToken as error:
            raise problem(
                400, f"Consistency-Token: {error}.", type_="/problems/invalid-consistency-token"
            ) from None
        if not streams:
            return
        deadline = time.monotonic() + self._timeout
        while await self._behind(projection, streams):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise problem(
                    503,
                    f"The {projection} read model has not caught up with this write yet; try again.",
                    type_="/problems/not-caught-up",
                    headers={"Retry-After": "1"},
                )
            await self._listener.next_progress(projection, min(remaining, RECHECK_SECONDS))

    async def _behind(self, projection: str, streams: dict[UUID, int]) -> bool:
        # `projection` is a name in the code, never input; quoted all the same.
        statement = _BEHIND.format(streams=f'"{READ_SCHEMA}"."{projection}_streams"')
        async with self._pool.acquire(timeout=self._acquire_timeout) as connection:
            behind: bool = await connection.fetchval(
                statement, list(streams), list(streams.values()), projection
            )
        return behind
