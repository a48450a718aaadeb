"""One event as a projection sees it, from the bus or from the event store alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from shared.eventsourcing.registry import EventRegistry


class MalformedMessage(ValueError):
    """A bus message that does not carry the headers of design.md §4."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A stored event: where it sits in its stream and in the store, and its data.

    `event` is None when the data could not be decoded; `decode_error` then
    says why, and the projection's failure handling treats it like any other
    failure to apply (retried, then parked).
    """

    global_position: int
    event_id: UUID
    stream_id: UUID
    stream_type: str
    version: int
    event_type: str
    schema_version: int
    recorded_at: datetime | None
    data: bytes
    event: msgspec.Struct | None
    decode_error: str | None = None
    # The ids of the request that caused it (design.md §4), for the projector's log lines;
    # from the message's headers (an event read from the store does without).
    correlation_id: str | None = None
    causation_id: str | None = None

    @property
    def log_ids(self) -> dict[str, str]:
        """Its correlation and causation ids as log fields (those it has)."""
        ids = {"correlation_id": self.correlation_id, "causation_id": self.causation_id}
        return {name: value for name, value in ids.items() if value}

    @property
    def at(self) -> datetime:
        """When the event was stored; the applier reads an event without it from the store first."""
        if self.recorded_at is None:
            raise ValueError(f"{self.position_label} has no recorded time")
        return self.recorded_at

    @property
    def position_label(self) -> str:
        return f"{self.event_type} {self.stream_id} v{self.version} @{self.global_position}"


def decode(
    registry: EventRegistry,
    *,
    global_position: int,
    event_id: UUID,
    stream_id: UUID,
    stream_type: str,
    version: int,
    event_type: str,
    schema_version: int,
    recorded_at: datetime | None,
    data: bytes,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Envelope:
    event: msgspec.Struct | None = None
    error: str | None = None
    try:
        event = registry.decode(event_type, schema_version, data)
    except Exception as exc:  # noqa: BLE001 - any decode failure is this event's own problem
        error = f"{type(exc).__name__}: {exc}"
    return Envelope(
        global_position=global_position,
        event_id=event_id,
        stream_id=stream_id,
        stream_type=stream_type,
        version=version,
        event_type=event_type,
        schema_version=schema_version,
        recorded_at=recorded_at,
        data=data,
        event=event,
        decode_error=error,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )


def from_row(registry: EventRegistry, row: Mapping[str, Any] | asyncpg.Record) -> Envelope:
    """From a row of the `events` table (data selected as text)."""
    data = row["data"]
    return decode(
        registry,
        global_position=row["global_position"],
        event_id=row["event_id"],
        stream_id=row["stream_id"],
        stream_type=row["stream_type"],
        version=row["version"],
        event_type=row["event_type"],
        schema_version=row["schema_version"],
        recorded_at=row["recorded_at"],
        data=data.encode() if isinstance(data, str) else data,
    )


def from_message(subject: str, headers: Mapping[str, str], data: bytes, registry: EventRegistry) -> Envelope:
    """From a JetStream message the relay published (headers of design.md §4).

    Messages published before the relay sent `Stream-Type` and `Recorded-At`
    take the aggregate from the subject (`<prefix>.<context>.<aggregate>.<id>`)
    and the time from the store.
    """
    try:
        event_type = headers["Event-Type"]
        recorded = headers.get("Recorded-At")
        return decode(
            registry,
            global_position=int(headers["Global-Position"]),
            event_id=UUID(headers["Nats-Msg-Id"]),
            stream_id=UUID(headers["Stream-Id"]),
            stream_type=headers.get("Stream-Type") or subject.rsplit(".", 2)[-2],
            version=int(headers["Stream-Version"]),
            event_type=event_type,
            schema_version=int(headers["Event-Schema-Version"]),
            recorded_at=datetime.fromisoformat(recorded) if recorded else None,
            data=data,
            correlation_id=headers.get("Correlation-Id"),
            causation_id=headers.get("Causation-Id"),
        )
    except (KeyError, ValueError) as exc:
        raise MalformedMessage(f"{type(exc).__name__}: {exc}") from exc
