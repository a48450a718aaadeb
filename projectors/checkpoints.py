"""A projection's checkpoint row: read under a lock at the start of each batch, advanced at its end.

The row lock serialises everything that writes one projection: two projector
instances take turns batch by batch, and a rebuild's swap or an operator's
dead-letter retry waits for the batch in flight and holds the next one off.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from shared.infrastructure.postgres import Connection
from shared.projections.progress import PROGRESS_CHANNEL

_ENSURE: Final = """
INSERT INTO projection_checkpoints (projection, stream_types) VALUES ($1, $2::text[])
ON CONFLICT (projection) DO UPDATE SET stream_types = EXCLUDED.stream_types
RETURNING stream_sequence, position, state, bus_epoch, pending_tags
"""
_LOCK: Final = """
SELECT stream_sequence, position, state, bus_epoch, pending_tags
  FROM projection_checkpoints WHERE projection = $1 FOR UPDATE
"""
# The notification is delivered at commit, when the batch becomes visible:
# consistency-token waits in the query API listen for it.
_ADVANCE: Final = f"""
WITH advanced AS (
    UPDATE projection_checkpoints
       SET stream_sequence = greatest(stream_sequence, $2),
           position = greatest(position, $3),
           last_event_at = CASE WHEN last_event_at IS NULL OR $4 > last_event_at
                                THEN $4 ELSE last_event_at END,
           pending_tags = $5::text[],
           updated_at = now()
     WHERE projection = $1
    RETURNING projection
)
SELECT pg_notify('{PROGRESS_CHANNEL}', projection) FROM advanced
"""
_NEW_EPOCH: Final = """
UPDATE projection_checkpoints SET bus_epoch = $2, stream_sequence = 0, updated_at = now()
 WHERE projection = $1
"""
_SET_STATE: Final = """
UPDATE projection_checkpoints SET state = $2, halted_reason = $3, updated_at = now() WHERE projection = $1
"""
_STATE: Final = "SELECT state FROM projection_checkpoints WHERE projection = $1"
_RESUME_IF_CLEAR: Final = """
UPDATE projection_checkpoints SET state = 'running', halted_reason = NULL, updated_at = now()
 WHERE projection = $1 AND state = 'halted'
   AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE projection = $1 AND dropped_at IS NULL)
RETURNING projection
"""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    stream_sequence: int
    position: int
    state: str
    bus_epoch: str | None
    pending_tags: tuple[str, ...]

    @classmethod
    def of(cls, row: asyncpg.Record) -> Checkpoint:
        return cls(
            row["stream_sequence"],
            row["position"],
            row["state"],
            row["bus_epoch"],
            tuple(row["pending_tags"]),
        )


async def ensure(connection: Connection, projection: str, stream_types: Iterable[str]) -> Checkpoint:
    row = await connection.fetchrow(_ENSURE, projection, sorted(stream_types))
    assert row is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
    return Checkpoint.of(row)


async def lock(connection: Connection, projection: str) -> Checkpoint:
    """Inside a transaction: wait for the projection's writers, then hold them off until commit."""
    row = await connection.fetchrow(_LOCK, projection)
    if row is None:
        raise LookupError(f"projection {projection} has no checkpoint; start its projector once")
    return Checkpoint.of(row)


async def advance(
    connection: Connection,
    projection: str,
    *,
    stream_sequence: int,
    position: int,
    last_event_at: datetime | None,
    pending_tags: Collection[str],
) -> None:
    await connection.execute(
        _ADVANCE, projection, stream_sequence, position, last_event_at, sorted(pending_tags)
    )


async def start_epoch(connection: Connection, projection: str, epoch: str) -> None:
    """The JetStream stream was created anew: its sequences mean nothing to the old checkpoint."""
    await connection.execute(_NEW_EPOCH, projection, epoch)


async def set_state(connection: Connection, projection: str, state: str, reason: str | None = None) -> None:
    await connection.execute(_SET_STATE, projection, state, reason)


async def state(connection: Connection, projection: str) -> str | None:
    value: str | None = await connection.fetchval(_STATE, projection)
    return value


async def resume_if_clear(connection: Connection, projection: str) -> bool:
    """A halted projection runs again once no dead letter of it is left (retried, dropped or rebuilt)."""
    return await connection.fetchval(_RESUME_IF_CLEAR, projection) is not None
