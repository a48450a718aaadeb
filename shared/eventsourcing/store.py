"""What a command needs from an event store, as a Protocol with plain data types.

Two implementations honour it: `InMemoryEventStore` (unit tests, a fake) and
`PostgresEventStore` (production). One contract test suite runs against both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from uuid import UUID


class ConcurrencyConflict(Exception):
    """A stream was not at the version the command was decided on."""


class IdempotencyKeyTaken(Exception):
    """Another request with the same key committed first."""


class SideWriteRejected(Exception):
    """A side write broke a uniqueness rule (an email already reserved); nothing was written."""

    def __init__(self, side_write: SideWrite) -> None:
        super().__init__(side_write.unique or "unique violation")
        self.side_write = side_write


@dataclass(frozen=True, slots=True)
class NewEvent:
    event_id: UUID
    stream_id: UUID
    stream_type: str
    version: int
    event_type: str
    schema_version: int
    data: bytes
    metadata: bytes = b"{}"


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    global_position: int
    event_id: UUID
    stream_id: UUID
    stream_type: str
    version: int
    event_type: str
    schema_version: int
    data: bytes
    metadata: bytes
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class StreamState:
    """The state row of one stream: its version and its state encoded as JSON."""

    stream_id: UUID
    version: int
    state: bytes
    stream_type: str = ""


@dataclass(frozen=True, slots=True)
class StreamWrite:
    """Move a stream from `expected_version` (0: new) to `new_version`, with its new state."""

    stream_id: UUID
    stream_type: str
    expected_version: int
    new_version: int
    state: bytes


@dataclass(frozen=True, slots=True)
class SideWrite:
    """A write-side row that must commit with the command's events, or not at all.

    Secrets and uniqueness live in such rows (design.md §3): a password hash, an
    email reservation, an API key hash. `statement` is parameterised SQL for
    PostgreSQL; `unique` names the value that must be unique (such as
    `email:<normalised address>`), so that the in-memory fake can honour the
    same rule as the database's unique index.
    """

    statement: str
    arguments: tuple[object, ...] = ()
    unique: str | None = None


@dataclass(frozen=True, slots=True)
class StoredResponse:
    fingerprint: bytes
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    principal: str
    key: str
    response: StoredResponse
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IdempotencyLookup:
    principal: str
    key: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a command reads before deciding, in one round trip."""

    states: Mapping[UUID, StreamState] = field(default_factory=dict)
    stored_response: StoredResponse | None = None


class EventStore(Protocol):
    async def load(
        self, stream_ids: Sequence[UUID], idempotency: IdempotencyLookup | None = None
    ) -> Snapshot:
        """The state rows of the streams and a live idempotency record, if any."""

    async def append(
        self,
        writes: Sequence[StreamWrite],
        events: Sequence[NewEvent],
        idempotency: IdempotencyRecord | None = None,
        side_writes: Sequence[SideWrite] = (),
    ) -> list[int]:
        """Append atomically; return the global positions. Raises on a conflict, writing nothing."""

    async def load_stream(self, stream_id: UUID, from_version: int = 1) -> list[RecordedEvent]:
        """The events of one stream in version order."""

    async def read_all(
        self, from_position: int = 1, to_position: int | None = None, limit: int = 1000
    ) -> list[RecordedEvent]:
        """Events with `from_position <= global_position <= to_position`, in position order."""
