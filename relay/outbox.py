"""The outbox as the relay sees it, on the connection that holds the relay's lock.

Reading and deleting on that same connection means a relay that lost its
lock (its session died) cannot touch the outbox any more.
"""

from __future__ import annotations

from typing import Final

import asyncpg

from shared.eventsourcing.store import RecordedEvent
from shared.infrastructure.event_store import recorded_event

# The outbox rows are picked first, then joined: joining first let the planner
# walk the events index from position 1 once the store was large (benchmarked:
# 660 ms per batch at 2.5 M events, against 2 ms this way).
_FETCH: Final = """
SELECT e.global_position, e.event_id, e.stream_id, e.stream_type, e.version, e.event_type,
       e.schema_version, e.data::text AS data, e.metadata::text AS metadata, e.recorded_at
  FROM (SELECT global_position FROM outbox ORDER BY global_position LIMIT $1) o
  JOIN events e ON e.global_position = o.global_position
 ORDER BY o.global_position
"""
_DELETE: Final = "DELETE FROM outbox WHERE global_position = ANY($1::bigint[])"
_SWEEP: Final = """
DELETE FROM idempotency_records
 WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_records WHERE expires_at <= now() LIMIT $1))
"""
SWEEP_BATCH: Final = 5000


async def fetch_batch(connection: asyncpg.Connection, limit: int) -> list[RecordedEvent]:
    return [recorded_event(row) for row in await connection.fetch(_FETCH, limit)]


async def delete_published(connection: asyncpg.Connection, positions: list[int]) -> None:
    if positions:
        await connection.execute(_DELETE, positions)


async def sweep_idempotency_records(connection: asyncpg.Connection, batch: int = SWEEP_BATCH) -> int:
    """Delete one bounded batch of expired idempotency records; return how many went.

    One batch per call, so a large backlog of expiries never holds up publishing.
    """
    status = await connection.execute(_SWEEP, batch)
    return int(status.split()[-1])
