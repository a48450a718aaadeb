"""Projection status from the checkpoint rows: one source for the CLI, the admin endpoint and metrics.

Readers need nothing of the projector's code: each checkpoint row names the
stream types its projection follows, so lag is counted in the event store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from shared.infrastructure.postgres import Connection

# Counting a lag larger than this is pointless work: the table says "at least".
LAG_COUNT_LIMIT: Final = 1_000_000

_STATUS: Final = """
SELECT c.projection, c.position, c.stream_sequence, c.state, c.halted_reason, c.last_event_at, c.updated_at,
       (SELECT count(*) FROM dead_letters d
         WHERE d.projection = c.projection AND d.dropped_at IS NULL) AS dead_letters,
       lag.events AS lag_events,
       extract(epoch FROM now() - lag.oldest) AS lag_seconds
  FROM projection_checkpoints c
  LEFT JOIN LATERAL (
       SELECT count(*) AS events, min(recorded_at) AS oldest FROM (
           SELECT recorded_at FROM events e
            WHERE e.global_position > c.position AND e.stream_type = ANY(c.stream_types)
            LIMIT $1
       ) behind
  ) lag ON true
 ORDER BY c.projection
"""


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    # The highest global position applied, and the last JetStream sequence.
    checkpoint: int
    stream_sequence: int
    # Events JetStream holds for the projection's consumer (None: NATS not asked or unreachable).
    pending: int | None
    # Events in the store beyond the checkpoint, and the age of the oldest of them.
    lag_events: int
    lag_seconds: float
    dead_letters: int
    state: str
    halted_reason: str | None
    last_event_at: datetime | None
    updated_at: datetime


PendingLookup = Callable[[str], Awaitable[int | None]]


async def read_statuses(
    connection: Connection, pending_of: PendingLookup | None = None
) -> list[ProjectionStatus]:
    rows = await connection.fetch(_STATUS, LAG_COUNT_LIMIT)
    statuses = []
    for row in rows:
        pending = await pending_of(row["projection"]) if pending_of is not None else None
        statuses.append(
            ProjectionStatus(
                name=row["projection"],
                checkpoint=row["position"],
                stream_sequence=row["stream_sequence"],
                pending=pending,
                lag_events=row["lag_events"],
                lag_seconds=max(0.0, float(row["lag_seconds"] or 0.0)),
                dead_letters=row["dead_letters"],
                state=row["state"],
                halted_reason=row["halted_reason"],
                last_event_at=row["last_event_at"],
                updated_at=row["updated_at"],
            )
        )
    return statuses
