"""Applies a batch of events to a projection exactly once, in order per stream.

The same code serves the live projector (events from JetStream) and a rebuild
(events from the store). Per stream it knows the version applied so far:

- an event at or below it was applied before (a duplicate delivery): skipped;
- versions above it that the batch lacks (a gap, a reordering) are read from
  the event store, so a stream's events always apply as 1, 2, 3, ...;
- a stream with a parked event stays blocked: its later events are parked
  behind it, so no stream ever applies out of order.

The whole batch goes to the projection in one call (bulk SQL). Only if that
fails are the events tried one at a time, each a bounded number of times in
a savepoint of its own; the one that keeps failing is parked (or halts the
projection) and the rest still apply. A lost connection is not the event's
fault: it propagates, and the caller retries the batch without counting it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from uuid import UUID

import asyncpg
import structlog

from projectors.envelope import Envelope, from_row
from projectors.projection import PoisonPolicy, Projection
from shared.eventsourcing.registry import EventRegistry
from shared.infrastructure.postgres import Connection

# Failures of the infrastructure, never of an event: the batch is retried whole.
TRANSIENT_ERRORS: Final = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.InsufficientResourcesError,
)

_log = structlog.get_logger("projector.applier")

# Qualified: the ranges below have a `stream_id` column too.
_EVENT_COLUMNS: Final = """e.global_position, e.event_id, e.stream_id, e.stream_type, e.version, e.event_type,
       e.schema_version, e.data::text AS data, e.recorded_at"""

# Versions between lo and hi (inclusive) of each stream, in one round trip.
_READ_RANGES: Final = f"""
SELECT {_EVENT_COLUMNS}
  FROM events e
  JOIN unnest($1::uuid[], $2::int[], $3::int[]) AS r(stream_id, lo, hi)
    ON e.stream_id = r.stream_id AND e.version BETWEEN r.lo AND r.hi
 ORDER BY e.global_position
"""


class StreamGap(RuntimeError):
    """The store lacks versions that a later delivered event needs first: retry the batch later."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    event: Envelope
    error: str
    attempts: int


@dataclass(slots=True)
class BatchResult:
    applied: int = 0
    skipped: int = 0
    parked: list[DeadLetter] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)
    max_position: int = 0
    last_recorded_at: datetime | None = None
    # Set when a projection with the "halt" policy met an event it cannot apply:
    # the caller must roll the batch back and stop.
    halted_by: DeadLetter | None = None


@dataclass(frozen=True, slots=True)
class StreamState:
    version: int
    blocked: bool
    # Events of the stream an operator dropped: they advance its version and change nothing.
    dropped: frozenset[UUID] = frozenset()


def plan(
    events: Sequence[Envelope], states: dict[UUID, StreamState]
) -> tuple[list[Envelope], dict[UUID, tuple[int, int]], int]:
    """Which delivered events to apply, which versions to read from the store, how many to skip.

    Pure: given what was delivered and each stream's applied version, it
    returns the new events (one per version, the delivered copy), the ranges
    `(lo, hi)` each stream lacks, and the number of duplicates.
    """
    by_stream: dict[UUID, dict[int, Envelope]] = defaultdict(dict)
    skipped = 0
    for event in events:
        applied = states.get(event.stream_id, StreamState(0, False)).version
        if event.version <= applied or event.version in by_stream[event.stream_id]:
            skipped += 1
            continue
        by_stream[event.stream_id][event.version] = event
    fresh: list[Envelope] = []
    missing: dict[UUID, tuple[int, int]] = {}
    for stream_id, versions in by_stream.items():
        applied = states.get(stream_id, StreamState(0, False)).version
        top = max(versions)
        lacking = [
            v for v in range(applied + 1, top + 1) if v not in versions or versions[v].recorded_at is None
        ]
        if lacking:
            # Read the whole range once: simpler than several holes, and gaps are rare.
            missing[stream_id] = (lacking[0], top)
            fresh.extend(e for v, e in versions.items() if v < lacking[0])
        else:
            fresh.extend(versions.values())
    return fresh, missing, skipped


def _note_progress(result: BatchResult, events: Iterable[Envelope]) -> None:
    for event in events:
        result.max_position = max(result.max_position, event.global_position)
        if event.recorded_at is not None and (
            result.last_recorded_at is None or event.recorded_at > result.last_recorded_at
        ):
            result.last_recorded_at = event.recorded_at


class BatchApplier:
    """Applies batches of one projection inside transactions its caller opens."""

    def __init__(
        self,
        projection: Projection,
        registry: EventRegistry,
        *,
        max_attempts: int = 3,
        retry_delay_seconds: float = 0.05,
        dead_letters_table: bool = True,
        on_poison: PoisonPolicy | None = None,
    ) -> None:
        self.projection = projection
        self.registry = registry
        self.max_attempts = max_attempts
        self.retry_delay_seconds = retry_delay_seconds
        # A rebuild parks whatever the projection's policy: it never half-applies a chunk.
        self.on_poison = on_poison or projection.on_poison
        streams = projection.qualified(projection.streams)
        # Live: a stream is blocked while the dead-letter table holds one of its
        # events. A rebuild keeps its own parked streams in memory instead.
        self._dead_letters_table = dead_letters_table
        self.blocked_in_memory: set[UUID] = set()
        # A rebuild's copy is blocked by its own parked streams (in memory), the
        # live projection by the dead-letter table. Dropped events are read from
        # the table by both: an operator's drop holds for every applier.
        blocked = (
            "EXISTS (SELECT 1 FROM dead_letters d WHERE d.projection = $2 AND d.stream_id = s.stream_id"
            " AND d.dropped_at IS NULL)"
            if dead_letters_table
            else "false"
        )
        self._read_states = f"""
            SELECT s.stream_id, coalesce(v.version, 0) AS version, {blocked} AS blocked,
                   ARRAY(SELECT d.event_id FROM dead_letters d
                          WHERE d.projection = $2 AND d.stream_id = s.stream_id
                            AND d.dropped_at IS NOT NULL) AS dropped
              FROM unnest($1::uuid[]) AS s(stream_id)
              LEFT JOIN {streams} v ON v.stream_id = s.stream_id
        """
        self._write_versions = f"""
            INSERT INTO {streams} (stream_id, version)
            SELECT * FROM unnest($1::uuid[], $2::int[])
            ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version
        """

    async def apply(self, connection: Connection, events: Sequence[Envelope]) -> BatchResult:
        """Apply what is new in `events`; the caller's transaction commits it with the checkpoint."""
        result = BatchResult()
        if not events:
            return result
        _note_progress(result, events)
        states = await self._states(connection, {e.stream_id for e in events})
        fresh, missing, result.skipped = plan(events, states)
        if missing:
            fresh.extend(await read_stream_ranges(connection, self.registry, missing))
        fresh.sort(key=lambda e: e.global_position)
        new_versions: dict[UUID, int] = {}
        runnable, dropped_versions = self._sort_out(fresh, states, result)
        if runnable:
            await self._apply_runnable(connection, runnable, result, new_versions)
        if result.halted_by is not None:
            return result
        # A dropped event counts as applied up to the stream's first parked event,
        # wherever the batch (or a rebuild's chunk) happens to end.
        first_parked: dict[UUID, int] = {}
        for letter in result.parked:
            stream_id = letter.event.stream_id
            first_parked[stream_id] = min(
                first_parked.get(stream_id, letter.event.version), letter.event.version
            )
        for stream_id, versions in dropped_versions.items():
            below = [v for v in versions if v < first_parked.get(stream_id, v + 1)]
            if below:
                new_versions[stream_id] = max(new_versions.get(stream_id, 0), *below)
        if not self._dead_letters_table:
            self.blocked_in_memory.update(letter.event.stream_id for letter in result.parked)
        if new_versions:
            await connection.execute(self._write_versions, list(new_versions), list(new_versions.values()))
        _note_progress(result, fresh)
        return result

    def _sort_out(
        self, fresh: list[Envelope], states: dict[UUID, StreamState], result: BatchResult
    ) -> tuple[list[Envelope], dict[UUID, list[int]]]:
        """Park what a parked stream blocks; set dropped events aside; the rest is to apply."""
        runnable = []
        dropped_versions: dict[UUID, list[int]] = {}
        for event in fresh:
            state = states.get(event.stream_id, StreamState(0, False))
            if state.blocked:
                result.parked.append(
                    DeadLetter(event, "blocked: an earlier event of its stream is parked", 0)
                )
            elif event.event_id in state.dropped:
                dropped_versions.setdefault(event.stream_id, []).append(event.version)
            else:
                runnable.append(event)
        return runnable, dropped_versions

    async def _apply_runnable(
        self,
        connection: Connection,
        events: list[Envelope],
        result: BatchResult,
        new_versions: dict[UUID, int],
    ) -> None:
        if all(e.event is not None for e in events):
            try:
                async with connection.transaction():
                    result.tags |= await self.projection.apply(connection, events)
            except TRANSIENT_ERRORS:
                raise
            except Exception as error:  # noqa: BLE001 - find the event at fault, one by one
                _log.warning(
                    "batch failed; applying one by one",
                    projection=self.projection.name,
                    events=len(events),
                    error=f"{type(error).__name__}: {error}",
                )
            else:
                result.applied += len(events)
                for event in events:
                    new_versions[event.stream_id] = event.version
                return
        await self._apply_one_by_one(connection, events, result, new_versions)

    async def _apply_one_by_one(
        self,
        connection: Connection,
        events: list[Envelope],
        result: BatchResult,
        new_versions: dict[UUID, int],
    ) -> None:
        blocked: set[UUID] = set()
        for event in events:
            if event.stream_id in blocked:
                result.parked.append(
                    DeadLetter(event, "blocked: an earlier event of its stream is parked", 0)
                )
                continue
            failure = await self._try_event(connection, event, result)
            if failure is None:
                result.applied += 1
                new_versions[event.stream_id] = event.version
                continue
            blocked.add(event.stream_id)
            if self.on_poison == "halt":
                result.halted_by = failure
                return
            result.parked.append(failure)
            _log.error(
                "event parked",
                projection=self.projection.name,
                # Not `event=`: structlog takes the message as its `event` argument.
                parked_event=event.position_label,
                attempts=failure.attempts,
                error=failure.error,
                **event.log_ids,
            )

    async def _try_event(
        self, connection: Connection, event: Envelope, result: BatchResult
    ) -> DeadLetter | None:
        """None once applied, else the dead letter after the bounded attempts."""
        if event.event is None:
            # Decoding is deterministic: trying again cannot help.
            return DeadLetter(event, event.decode_error or "cannot decode", 1)
        error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                # Whatever the projection logs of this event carries the ids of its request.
                with structlog.contextvars.bound_contextvars(**event.log_ids):
                    async with connection.transaction():
                        result.tags |= await self.projection.apply(connection, [event])
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - the event's own failure, counted
                error = f"{type(exc).__name__}: {exc}"
                if attempt < self.max_attempts:
                    await asyncio.sleep(self.retry_delay_seconds * attempt)
            else:
                return None
        return DeadLetter(event, error, self.max_attempts)

    async def _states(self, connection: Connection, stream_ids: Iterable[UUID]) -> dict[UUID, StreamState]:
        rows = await connection.fetch(self._read_states, list(stream_ids), self.projection.name)
        return {
            row["stream_id"]: StreamState(
                row["version"],
                bool(row["blocked"]) or row["stream_id"] in self.blocked_in_memory,
                frozenset(row["dropped"]),
            )
            for row in rows
        }


async def read_stream_ranges(
    connection: Connection, registry: EventRegistry, ranges: dict[UUID, tuple[int, int]]
) -> list[Envelope]:
    """Versions lo..hi of each stream from the store, in position order; all of them or StreamGap."""
    ids = list(ranges)
    rows = await connection.fetch(_READ_RANGES, ids, [ranges[i][0] for i in ids], [ranges[i][1] for i in ids])
    found = [from_row(registry, row) for row in rows]
    expected = sum(hi - lo + 1 for lo, hi in ranges.values())
    if len(found) != expected:
        # Published events are committed ones, so this means a store that
        # lost rows or a bus fed from elsewhere: do not guess, retry later.
        raise StreamGap(f"the event store lacks {expected - len(found)} event(s) the bus delivered after")
    return found
