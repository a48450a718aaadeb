"""The PostgreSQL EventStore: one round trip to load, one to append.

Loading reads the state rows of the streams and the idempotency record in a
single statement; appending is one call of `cqrs_append` (migration 0002),
which writes everything of a command in one transaction or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from uuid import UUID

import msgspec
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import events as events_table
from shared.eventsourcing.store import (
    ConcurrencyConflict,
    IdempotencyKeyTaken,
    IdempotencyLookup,
    IdempotencyRecord,
    NewEvent,
    RecordedEvent,
    Snapshot,
    StoredResponse,
    StreamState,
    StreamWrite,
)

IDEMPOTENCY_KEY_TAKEN: Final = "CQ001"
VERSION_CONFLICT: Final = "CQ002"
UNIQUE_VIOLATION: Final = "23505"
DEADLOCK: Final = "40P01"

_LOAD = text(
    """
    SELECT stream_id, version, state::text AS state,
           NULL::bytea AS fingerprint, NULL::smallint AS status, NULL::text AS headers, NULL::bytea AS body
      FROM aggregate_states WHERE stream_id = ANY(CAST(:stream_ids AS uuid[]))
    UNION ALL
    SELECT NULL, NULL, NULL, request_fingerprint, response_status, response_headers::text, response_body
      FROM idempotency_records
     WHERE principal = :principal AND idempotency_key = :key AND expires_at > now()
    """
)

_APPEND = text(
    """
    SELECT cqrs_append(
        :principal, :key, :fingerprint, :expires_at,
        CAST(:status AS smallint), CAST(:headers AS jsonb), :body,
        CAST(:stream_ids AS uuid[]), CAST(:stream_types AS text[]), CAST(:expected AS int[]),
        CAST(:new_versions AS int[]), CAST(:states AS jsonb[]),
        CAST(:event_ids AS uuid[]), CAST(:event_stream_ids AS uuid[]), CAST(:event_stream_types AS text[]),
        CAST(:event_versions AS int[]), CAST(:event_types AS text[]), CAST(:schema_versions AS smallint[]),
        CAST(:data AS jsonb[]), CAST(:metadata AS jsonb[])
    )
    """
)

_headers_decoder = msgspec.json.Decoder(dict[str, str])


def _sqlstate(error: DBAPIError) -> str | None:
    original = getattr(error.orig, "__cause__", None) or error.orig
    return getattr(original, "sqlstate", None)


class PostgresEventStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def load(
        self, stream_ids: Sequence[UUID], idempotency: IdempotencyLookup | None = None
    ) -> Snapshot:
        params = {
            "stream_ids": list(stream_ids),
            "principal": idempotency.principal if idempotency else None,
            "key": idempotency.key if idempotency else None,
        }
        async with self._engine.connect() as connection:
            rows = (await connection.execute(_LOAD, params)).all()
        states: dict[UUID, StreamState] = {}
        stored: StoredResponse | None = None
        for row in rows:
            if row.stream_id is not None:
                states[row.stream_id] = StreamState(row.stream_id, row.version, row.state.encode())
            else:
                stored = StoredResponse(
                    fingerprint=bytes(row.fingerprint),
                    status=row.status,
                    headers=_headers_decoder.decode(row.headers or "{}"),
                    body=bytes(row.body or b""),
                )
        return Snapshot(states=states, stored_response=stored)

    async def append(
        self,
        writes: Sequence[StreamWrite],
        events: Sequence[NewEvent],
        idempotency: IdempotencyRecord | None = None,
    ) -> list[int]:
        params = _append_parameters(writes, events, idempotency)
        try:
            async with self._engine.begin() as connection:
                positions = (await connection.execute(_APPEND, params)).scalar_one()
        except DBAPIError as error:
            state = _sqlstate(error)
            if state == IDEMPOTENCY_KEY_TAKEN:
                raise IdempotencyKeyTaken(idempotency.key if idempotency else "") from error
            # A unique violation on (stream_id, version) or a deadlock between two
            # transfers is the same thing as a version conflict: decide again.
            if state in (VERSION_CONFLICT, UNIQUE_VIOLATION, DEADLOCK):
                raise ConcurrencyConflict(str(error.orig)) from error
            raise
        return list(positions)

    async def load_stream(self, stream_id: UUID, from_version: int = 1) -> list[RecordedEvent]:
        query = (
            select(events_table)
            .where(events_table.c.stream_id == stream_id, events_table.c.version >= from_version)
            .order_by(events_table.c.version)
        )
        async with self._engine.connect() as connection:
            return [_recorded(row._mapping) for row in await connection.execute(query)]

    async def read_all(
        self, from_position: int = 1, to_position: int | None = None, limit: int = 1000
    ) -> list[RecordedEvent]:
        query = select(events_table).where(events_table.c.global_position >= from_position)
        if to_position is not None:
            query = query.where(events_table.c.global_position <= to_position)
        query = query.order_by(events_table.c.global_position).limit(limit)
        async with self._engine.connect() as connection:
            return [_recorded(row._mapping) for row in await connection.execute(query)]


_json = msgspec.json.Encoder()


def _recorded(row: Any) -> RecordedEvent:
    return RecordedEvent(
        global_position=row["global_position"],
        event_id=row["event_id"],
        stream_id=row["stream_id"],
        stream_type=row["stream_type"],
        version=row["version"],
        event_type=row["event_type"],
        schema_version=row["schema_version"],
        # JSONB comes back decoded; the store hands out bytes, as it takes them.
        data=_json.encode(row["data"]),
        metadata=_json.encode(row["metadata"]),
        recorded_at=row["recorded_at"],
    )


def _append_parameters(
    writes: Sequence[StreamWrite], events: Sequence[NewEvent], idempotency: IdempotencyRecord | None
) -> dict[str, Any]:
    response = idempotency.response if idempotency else None
    return {
        "principal": idempotency.principal if idempotency else None,
        "key": idempotency.key if idempotency else None,
        "fingerprint": response.fingerprint if response else None,
        "expires_at": idempotency.expires_at if idempotency else None,
        "status": response.status if response else None,
        "headers": _json.encode(dict(response.headers)).decode() if response else None,
        "body": response.body if response else None,
        "stream_ids": [w.stream_id for w in writes],
        "stream_types": [w.stream_type for w in writes],
        "expected": [w.expected_version for w in writes],
        "new_versions": [w.new_version for w in writes],
        "states": [w.state.decode() for w in writes],
        "event_ids": [e.event_id for e in events],
        "event_stream_ids": [e.stream_id for e in events],
        "event_stream_types": [e.stream_type for e in events],
        "event_versions": [e.version for e in events],
        "event_types": [e.event_type for e in events],
        "schema_versions": [e.schema_version for e in events],
        "data": [e.data.decode() for e in events],
        "metadata": [e.metadata.decode() for e in events],
    }
