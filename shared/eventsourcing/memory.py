"""An in-memory EventStore with the same semantics as the PostgreSQL one (a fake for tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

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
    StreamState,
    StreamWrite,
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class InMemoryEventStore:
    clock: Callable[[], datetime] = _utc_now
    events: list[RecordedEvent] = field(default_factory=list)
    states: dict[UUID, StreamState] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = field(default_factory=dict)
    side_writes: list[SideWrite] = field(default_factory=list)
    unique_values: set[str] = field(default_factory=set)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def load(
        self, stream_ids: Sequence[UUID], idempotency: IdempotencyLookup | None = None
    ) -> Snapshot:
        states = {stream_id: self.states[stream_id] for stream_id in stream_ids if stream_id in self.states}
        record = self._live_record(idempotency.principal, idempotency.key) if idempotency else None
        return Snapshot(states=states, stored_response=record.response if record else None)

    def _live_record(self, principal: str, key: str) -> IdempotencyRecord | None:
        record = self.idempotency.get((principal, key))
        if record is None or record.expires_at <= self.clock():
            return None
        return record

    async def append(
        self,
        writes: Sequence[StreamWrite],
        events: Sequence[NewEvent],
        idempotency: IdempotencyRecord | None = None,
        side_writes: Sequence[SideWrite] = (),
    ) -> list[int]:
        async with self._lock:
            if idempotency and self._live_record(idempotency.principal, idempotency.key):
                raise IdempotencyKeyTaken(idempotency.key)
            for write in writes:
                current = self.states.get(write.stream_id)
                if (current.version if current else 0) != write.expected_version:
                    raise ConcurrencyConflict(str(write.stream_id))
            claimed: set[str] = set()
            for side_write in side_writes:
                if side_write.unique is not None:
                    if side_write.unique in self.unique_values or side_write.unique in claimed:
                        raise SideWriteRejected(side_write)
                    claimed.add(side_write.unique)
            self.unique_values |= claimed
            self.side_writes.extend(side_writes)
            if idempotency:
                self.idempotency[(idempotency.principal, idempotency.key)] = idempotency
            for write in writes:
                self.states[write.stream_id] = StreamState(
                    write.stream_id, write.new_version, write.state, write.stream_type
                )
            positions = []
            for event in events:
                position = len(self.events) + 1
                self.events.append(
                    RecordedEvent(
                        global_position=position,
                        event_id=event.event_id,
                        stream_id=event.stream_id,
                        stream_type=event.stream_type,
                        version=event.version,
                        event_type=event.event_type,
                        schema_version=event.schema_version,
                        data=event.data,
                        metadata=event.metadata,
                        recorded_at=self.clock(),
                    )
                )
                positions.append(position)
            return positions

    async def load_stream(self, stream_id: UUID, from_version: int = 1) -> list[RecordedEvent]:
        return [e for e in self.events if e.stream_id == stream_id and e.version >= from_version]

    async def read_all(
        self, from_position: int = 1, to_position: int | None = None, limit: int = 1000
    ) -> list[RecordedEvent]:
        last = to_position if to_position is not None else len(self.events)
        return [e for e in self.events if from_position <= e.global_position <= last][:limit]
