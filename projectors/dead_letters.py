"""The dead-letter table: parking events a projection could not apply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

from projectors import checkpoints
from projectors.applier import BatchApplier, DeadLetter
from projectors.envelope import from_row
from projectors.projection import Projection
from shared.infrastructure.postgres import Connection

_PARK: Final = """
INSERT INTO dead_letters (projection, global_position, event_id, stream_id, stream_type, version,
                          event_type, error, attempts, first_failed_at)
SELECT $1, *, now() FROM unnest($2::bigint[], $3::uuid[], $4::uuid[], $5::text[], $6::int[], $7::text[],
                                $8::text[], $9::int[])
ON CONFLICT (projection, event_id) DO UPDATE SET
    -- Parked again as blocked (no attempt made, as when a later event of its stream reads it
    -- from the store again): its own failure stays the error shown.
    error = CASE WHEN EXCLUDED.attempts = 0 THEN dead_letters.error ELSE EXCLUDED.error END,
    attempts = dead_letters.attempts + EXCLUDED.attempts,
    parked_at = now()
"""


async def park(connection: Connection, projection: str, letters: Sequence[DeadLetter]) -> None:
    if not letters:
        return
    await connection.execute(
        _PARK,
        projection,
        [d.event.global_position for d in letters],
        [d.event.event_id for d in letters],
        [d.event.stream_id for d in letters],
        [d.event.stream_type for d in letters],
        [d.event.version for d in letters],
        [d.event.event_type for d in letters],
        [d.error[:4000] for d in letters],
        [d.attempts for d in letters],
    )


_LIST: Final = """
SELECT id, projection, global_position, event_id, stream_id, stream_type, version, event_type, error,
       attempts, first_failed_at, parked_at
  FROM dead_letters
 WHERE ($1::text IS NULL OR projection = $1) AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))
   AND dropped_at IS NULL
 ORDER BY projection, global_position
"""
_EVENTS_BY_ID: Final = """
SELECT global_position, event_id, stream_id, stream_type, version, event_type, schema_version,
       data::text AS data, recorded_at
  FROM events WHERE event_id = ANY($1::uuid[]) ORDER BY global_position
"""
_TAKE_STREAMS: Final = """
DELETE FROM dead_letters WHERE projection = $1 AND stream_id = ANY($2::uuid[]) AND dropped_at IS NULL
RETURNING event_id, attempts
"""


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    id: int
    projection: str
    global_position: int
    event_id: UUID
    stream_id: UUID
    stream_type: str
    version: int
    event_type: str
    error: str
    attempts: int
    first_failed_at: datetime
    parked_at: datetime


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    applied: int
    still_parked: int
    resumed: bool
    tags: frozenset[str]


class CannotDrop(RuntimeError):
    """Dropping this event would let its stream skip an earlier event that was never applied."""


async def list_parked(
    connection: Connection, projection: str | None = None, ids: Sequence[int] | None = None
) -> list[ParkedEvent]:
    rows = await connection.fetch(_LIST, projection, list(ids) if ids is not None else None)
    return [ParkedEvent(**dict(row)) for row in rows]


async def retry(
    connection: Connection, applier: BatchApplier, ids: Sequence[int] | None = None
) -> RetryOutcome:
    """Apply parked events again, inside the caller's transaction.

    A stream's events apply in order, so a retry takes every parked event of
    the streams it touches. Those that fail again are parked again, their
    attempts added up. A halted projection runs again once nothing failed.
    """
    projection = applier.projection.name
    checkpoint = await checkpoints.lock(connection, projection)
    chosen = await list_parked(connection, projection, ids)
    if not chosen:
        return RetryOutcome(0, 0, await checkpoints.resume_if_clear(connection, projection), frozenset())
    taken = await connection.fetch(_TAKE_STREAMS, projection, list({p.stream_id for p in chosen}))
    earlier_attempts = {row["event_id"]: row["attempts"] for row in taken}
    rows = await connection.fetch(_EVENTS_BY_ID, list(earlier_attempts))
    events = [from_row(applier.registry, row) for row in rows]
    result = await applier.apply(connection, events)
    if result.halted_by is not None:
        # Nothing of this retry is kept but the parked events, with their new attempts. The
        # rollback restores their rows (earlier attempts included) and `park` adds this retry's.
        raise _RetryFailed([*result.parked, result.halted_by])
    # Their rows were taken above: park them again with the attempts of both.
    failed = [
        DeadLetter(
            letter.event, letter.error, letter.attempts + earlier_attempts.get(letter.event.event_id, 0)
        )
        for letter in result.parked
    ]
    await park(connection, projection, failed)
    await checkpoints.advance(
        connection,
        projection,
        stream_sequence=0,
        position=result.max_position,
        last_event_at=result.last_recorded_at,
        pending_tags=set(checkpoint.pending_tags) | result.tags,
    )
    resumed = await checkpoints.resume_if_clear(connection, projection)
    return RetryOutcome(result.applied, len(failed), resumed, frozenset(result.tags))


class _RetryFailed(Exception):
    def __init__(self, letters: list[DeadLetter]) -> None:
        super().__init__(f"{len(letters)} event(s) failed again")
        self.letters = letters


async def retry_in_transaction(
    pool_connection: Connection, applier: BatchApplier, ids: Sequence[int] | None
) -> RetryOutcome:
    """`retry` in a transaction of its own; a halting failure keeps only the new attempt counts."""
    try:
        async with pool_connection.transaction():
            return await retry(pool_connection, applier, ids)
    except _RetryFailed as failure:
        async with pool_connection.transaction():
            await checkpoints.lock(pool_connection, applier.projection.name)
            await park(pool_connection, applier.projection.name, failure.letters)
        return RetryOutcome(0, len(failure.letters), False, frozenset())


async def drop(connection: Connection, projection: Projection, ids: Sequence[int]) -> int:
    """Give up on parked events: their streams move past them, as if they had no effect.

    The rows stay, marked dropped, so that a rebuild skips the events too.

    Only a stream's earliest parked event can go (or one already applied):
    dropping a later one would skip events that never applied.
    """
    await checkpoints.lock(connection, projection.name)
    letters = await list_parked(connection, projection.name, ids)
    streams = projection.qualified(projection.streams)
    for letter in sorted(letters, key=lambda p: (p.stream_id, p.version)):
        applied = await connection.fetchval(
            f"SELECT version FROM {streams} WHERE stream_id = $1", letter.stream_id
        )
        applied = applied or 0
        if applied == letter.version - 1:
            await connection.execute(
                f"INSERT INTO {streams} (stream_id, version) VALUES ($1, $2) "
                "ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version",
                letter.stream_id,
                letter.version,
            )
        elif applied < letter.version:
            raise CannotDrop(
                f"dead letter {letter.id} is version {letter.version} of {letter.stream_id}, which applied "
                f"only up to {applied}: retry or drop the earlier ones first"
            )
        await connection.execute("UPDATE dead_letters SET dropped_at = now() WHERE id = $1", letter.id)
    await checkpoints.resume_if_clear(connection, projection.name)
    return len(letters)
