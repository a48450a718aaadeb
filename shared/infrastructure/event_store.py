"""The PostgreSQL EventStore: one round trip to load, one to append, on asyncpg.

The tables are described once, in SQLAlchemy Core (shared/db/schema.py), and
migrated by Alembic; these fixed statements run on a plain asyncpg pool,
which costs a fraction of SQLAlchemy's pooled connection per checkout.

Loading reads the state rows of the streams and the idempotency record in a
single statement; appending is one call of `cqrs_append` (migration 0002),
which writes everything of a command in one transaction or nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final
from uuid import UUID

import asyncpg
import msgspec
import structlog

from shared.eventsourcing.store import (
    ConcurrencyConflict,
    IdempotencyKeyTaken,
    IdempotencyLookup,
    IdempotencyRecord,
    NewEvent,
    RecordedEvent,
    SideWrite,
    SideWriteRejected,
    Snapshot,
    StoredResponse,
    StreamState,
    StreamWrite,
)

OUTBOX_CHANNEL: Final = "cqrs_outbox"
IDEMPOTENCY_KEY_TAKEN: Final = "CQ001"
VERSION_CONFLICT: Final = "CQ002"
UNIQUE_VIOLATION: Final = "23505"
DEADLOCK: Final = "40P01"

# The two statements of every command: one round trip each.
_LOAD: Final = """
SELECT stream_id, stream_type, version, state::text AS state,
       NULL::bytea AS fingerprint, NULL::smallint AS status, NULL::text AS headers, NULL::bytea AS body
  FROM aggregate_states
 WHERE stream_id = ANY($1::uuid[])
UNION ALL
SELECT NULL, NULL, NULL, NULL, request_fingerprint, response_status, response_headers::text, response_body
  FROM idempotency_records
 WHERE principal = $2 AND idempotency_key = $3 AND expires_at > now()
"""

_APPEND: Final = """
SELECT cqrs_append(
    $1, $2, $3, $4, $5::smallint, $6::jsonb, $7,
    $8::uuid[], $9::text[], $10::int[], $11::int[], $12::jsonb[],
    $13::uuid[], $14::uuid[], $15::text[], $16::int[], $17::text[], $18::smallint[],
    $19::jsonb[], $20::jsonb[]
)
"""

_LOAD_STREAM: Final = """
SELECT global_position, event_id, stream_id, stream_type, version, event_type, schema_version,
       data::text AS data, metadata::text AS metadata, recorded_at
  FROM events WHERE stream_id = $1 AND version >= $2 ORDER BY version
"""
_READ_ALL: Final = """
SELECT global_position, event_id, stream_id, stream_type, version, event_type, schema_version,
       data::text AS data, metadata::text AS metadata, recorded_at
  FROM events
 WHERE global_position >= $1 AND ($2::bigint IS NULL OR global_position <= $2)
 ORDER BY global_position LIMIT $3
"""

_headers_decoder = msgspec.json.Decoder(dict[str, str])
_log = structlog.get_logger("event_store")


class OutboxNotifier:
    """Tells the relay that the outbox has new rows: one NOTIFY for many appends.

    The NOTIFY goes out after the appends committed, in a statement of its own,
    never inside a command's transaction (see migration 0003). While one is in
    flight, further appends only mark another as due, so a busy process sends
    at most one per round trip. A lost NOTIFY costs latency, not events: the
    relay also polls.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._due = False
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._due = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._due:
            self._due = False
            try:
                await self._pool.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
            except asyncpg.InterfaceError:
                return  # the pool is closing: the process is shutting down
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                _log.warning("outbox notify failed; the relay will poll", error=type(error).__name__)
                return


class PostgresEventStore:
    """Every statement runs alone on an asyncpg pool connection, so it is its own
    transaction: a load is one round trip, an append (one function call, atomic
    by itself) one more, instead of BEGIN / statement / COMMIT. Round trips
    dominate a command's cost (docs/benchmarks.md)."""

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout_seconds: float = 5.0) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout_seconds
        self._notifier = OutboxNotifier(pool)

    async def load(
        self, stream_ids: Sequence[UUID], idempotency: IdempotencyLookup | None = None
    ) -> Snapshot:
        principal = idempotency.principal if idempotency else None
        key = idempotency.key if idempotency else None
        async with self._pool.acquire(timeout=self._acquire_timeout) as connection:
            rows = await connection.fetch(_LOAD, list(stream_ids), principal, key)
        states: dict[UUID, StreamState] = {}
        stored: StoredResponse | None = None
        for row in rows:
            if row["stream_id"] is not None:
                states[row["stream_id"]] = StreamState(
                    row["stream_id"], row["version"], row["state"].encode(), row["stream_type"]
                )
            else:
                stored = StoredResponse(
                    fingerprint=bytes(row["fingerprint"]),
                    status=row["status"],
                    headers=_headers_decoder.decode(row["headers"] or "{}"),
                    body=bytes(row["body"] or b""),
                )
        return Snapshot(states=states, stored_response=stored)

    async def append(
        self,
        writes: Sequence[StreamWrite],
        events: Sequence[NewEvent],
        idempotency: IdempotencyRecord | None = None,
        side_writes: Sequence[SideWrite] = (),
    ) -> list[int]:
        params = _append_parameters(writes, events, idempotency)
        try:
            async with self._pool.acquire(timeout=self._acquire_timeout) as connection:
                if side_writes:
                    positions = await _append_with_side_writes(connection, params, side_writes)
                else:
                    positions = await connection.fetchval(_APPEND, *params)
        except asyncpg.PostgresError as error:
            if error.sqlstate == IDEMPOTENCY_KEY_TAKEN:
                raise IdempotencyKeyTaken(idempotency.key if idempotency else "") from error
            # A unique violation on (stream_id, version) or a deadlock between two
            # transfers is the same thing as a version conflict: decide again.
            if error.sqlstate in (VERSION_CONFLICT, UNIQUE_VIOLATION, DEADLOCK):
                raise ConcurrencyConflict(str(error)) from error
            raise
        if events:
            self._notifier.poke()
        return list(positions)

    async def load_stream(self, stream_id: UUID, from_version: int = 1) -> list[RecordedEvent]:
        async with self._pool.acquire(timeout=self._acquire_timeout) as connection:
            rows = await connection.fetch(_LOAD_STREAM, stream_id, from_version)
        return [recorded_event(row) for row in rows]

    async def read_all(
        self, from_position: int = 1, to_position: int | None = None, limit: int = 1000
    ) -> list[RecordedEvent]:
        async with self._pool.acquire(timeout=self._acquire_timeout) as connection:
            rows = await connection.fetch(_READ_ALL, from_position, to_position, limit)
        return [recorded_event(row) for row in rows]


_json = msgspec.json.Encoder()


async def _append_with_side_writes(
    connection: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
    params: tuple[Any, ...],
    side_writes: Sequence[SideWrite],
) -> list[int]:
    """The append and its side writes in one explicit transaction (rare commands: registration,
    API keys), at the price of BEGIN and COMMIT round trips the hot path does without."""
    async with connection.transaction():
        positions: list[int] = await connection.fetchval(_APPEND, *params)
        for side_write in side_writes:
            try:
                await connection.execute(side_write.statement, *side_write.arguments)
            except asyncpg.UniqueViolationError as error:
                raise SideWriteRejected(side_write) from error
    return positions


def recorded_event(row: asyncpg.Record) -> RecordedEvent:
    """An event row (data and metadata selected as text) as the store hands it out."""
    return RecordedEvent(
        global_position=row["global_position"],
        event_id=row["event_id"],
        stream_id=row["stream_id"],
        stream_type=row["stream_type"],
        version=row["version"],
        event_type=row["event_type"],
        schema_version=row["schema_version"],
        data=row["data"].encode(),
        metadata=row["metadata"].encode(),
        recorded_at=row["recorded_at"],
    )


def _append_parameters(
    writes: Sequence[StreamWrite], events: Sequence[NewEvent], idempotency: IdempotencyRecord | None
) -> tuple[Any, ...]:
    response = idempotency.response if idempotency else None
    return (
        idempotency.principal if idempotency else None,
        idempotency.key if idempotency else None,
        response.fingerprint if response else None,
        idempotency.expires_at if idempotency else None,
        response.status if response else None,
        _json.encode(dict(response.headers)).decode() if response else None,
        response.body if response else None,
        [w.stream_id for w in writes],
        [w.stream_type for w in writes],
        [w.expected_version for w in writes],
        [w.new_version for w in writes],
        [w.state.decode() for w in writes],
        [e.event_id for e in events],
        [e.stream_id for e in events],
        [e.stream_type for e in events],
        [e.version for e in events],
        [e.event_type for e in events],
        [e.schema_version for e in events],
        [e.data.decode() for e in events],
        [e.metadata.decode() for e in events],
    )
