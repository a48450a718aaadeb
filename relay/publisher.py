"""Publishes stored events to JetStream: in version order per aggregate, deduplicated by event id.

Events of one stream go one after another, each waiting for its ack, so a
failed publish can never let a later version overtake an earlier one; many
streams go at once. A publish that times out is retried with the same
Nats-Msg-Id, which JetStream deduplicates within the stream's window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import msgspec
import structlog
from nats.errors import ConnectionClosedError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError

from shared.eventsourcing.registry import EventRegistry
from shared.eventsourcing.store import RecordedEvent
from shared.observability.tracing import TRACEPARENT, Tracing

PUBLISH_ATTEMPTS: Final = 3
_log = structlog.get_logger("relay.publisher")
_metadata_decoder = msgspec.json.Decoder(dict[str, str])

RETRYABLE = (
    NatsTimeoutError,
    NoRespondersError,
    NoStreamResponseError,
    ConnectionClosedError,
    APIError,
    OSError,
)


def event_headers(event: RecordedEvent) -> dict[str, str]:
    """The message headers of design.md §4; the metadata never holds a secret."""
    metadata = _metadata_decoder.decode(event.metadata) if event.metadata else {}
    headers = {
        "Nats-Msg-Id": str(event.event_id),
        "Event-Type": event.event_type,
        "Event-Schema-Version": str(event.schema_version),
        "Stream-Id": str(event.stream_id),
        "Stream-Type": event.stream_type,
        "Stream-Version": str(event.version),
        "Global-Position": str(event.global_position),
        # Read models take their timestamps from here, so a rebuild from the
        # store gives the same rows as the live projection.
        "Recorded-At": event.recorded_at.isoformat(),
    }
    for key, header in (("correlation_id", "Correlation-Id"), ("causation_id", "Causation-Id")):
        if metadata.get(key):
            headers[header] = metadata[key]
    if metadata.get("traceparent"):
        headers["traceparent"] = metadata["traceparent"]
    return headers


@dataclass
class EventPublisher:
    js: JetStreamContext
    registry: EventRegistry
    subject_prefix: str
    timeout_seconds: float = 5.0
    max_in_flight: int = 256
    tracing: Tracing | None = None

    stop: asyncio.Event | None = None

    def subject(self, event: RecordedEvent) -> str:
        return self.registry.subject(self.subject_prefix, event.stream_type, str(event.stream_id))

    async def publish(self, events: Sequence[RecordedEvent]) -> list[int]:
        """Publish what can be; return the global positions JetStream acknowledged."""
        streams: dict[object, list[RecordedEvent]] = {}
        for event in events:
            streams.setdefault(event.stream_id, []).append(event)
        acked: list[int] = []
        slots = asyncio.Semaphore(self.max_in_flight)

        async def publish_stream(stream_events: list[RecordedEvent]) -> None:
            async with slots:
                for event in stream_events:
                    try:
                        published = await self._publish_one(event)
                    except Exception:  # noqa: BLE001 - one bad event must block only its own stream
                        _log.exception("cannot publish event", event_id=str(event.event_id))
                        published = False
                    if not published:
                        return  # the rest of this stream waits for the next round, in order
                    acked.append(event.global_position)

        await asyncio.gather(*(publish_stream(group) for group in streams.values()))
        return acked

    async def _publish_one(self, event: RecordedEvent) -> bool:
        subject = self.subject(event)
        headers = event_headers(event)
        if self.tracing is not None:
            # A span of the publish, child of the command's; the message carries the span's context.
            with self.tracing.span(
                f"publish {event.event_type}",
                parent=headers.get(TRACEPARENT),
                kind="PRODUCER",
                subject=subject,
                event_id=str(event.event_id),
            ):
                headers[TRACEPARENT] = self.tracing.current_traceparent() or headers.get(TRACEPARENT, "")
                return await self._send(subject, event, headers)
        return await self._send(subject, event, headers)

    async def _send(self, subject: str, event: RecordedEvent, headers: dict[str, str]) -> bool:
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            if attempt > 1 and self.stop is not None and self.stop.is_set():
                return False  # shutting down: the outbox keeps it for the next relay
            try:
                await self.js.publish(subject, event.data, timeout=self.timeout_seconds, headers=headers)
            except RETRYABLE as error:
                _log.warning(
                    "publish failed",
                    event_id=str(event.event_id),
                    attempt=attempt,
                    error=type(error).__name__,
                )
            else:
                return True
        return False
