"""Runs one command: load, decide, append; with idempotency replay and bounded retries.

The pipeline is the same for every command of every context; a command only
supplies the streams it touches and a pure `decide` over their states.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID

import msgspec
import structlog
from uuid_utils.compat import uuid7

from command_api.execution.keyed_locks import KeyedLocks
from shared.consistency import encode_token
from shared.eventsourcing.registry import EventRegistry
from shared.eventsourcing.store import (
    ConcurrencyConflict,
    EventStore,
    IdempotencyKeyTaken,
    IdempotencyLookup,
    IdempotencyRecord,
    NewEvent,
    SideWrite,
    SideWriteRejected,
    StoredResponse,
    StreamState,
    StreamWrite,
)

CONSISTENCY_HEADER: Final = "Consistency-Token"
MAX_BACKOFF_SECONDS: Final = 0.05
_log = structlog.get_logger("commands")
_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class StreamChange:
    """New events for one stream and the state they lead to."""

    stream_id: UUID
    stream_type: str
    events: Sequence[msgspec.Struct]
    state: msgspec.Struct
    # False for a stream the caller may change but not see (the target of a
    # transfer to another user): its version stays out of the answer and token.
    visible_to_caller: bool = True


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer as stored for replay: status, headers and the encoded body."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    replayed: bool = False
    # What a replay gets instead of `body`, when the body holds a secret shown
    # once (a new API key) that must not be kept in the idempotency record.
    replay_body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a command decided: changes, and how to answer once versions are known."""

    changes: Sequence[StreamChange]
    respond: Callable[[Mapping[UUID, int], str], Answer]
    # Write-side rows committed with the events (design.md §3: secrets, uniqueness).
    side_writes: Sequence[SideWrite] = ()
    # The answer when a side write breaks a uniqueness rule; without it the error propagates.
    on_rejected: Callable[[SideWrite], Answer] | None = None


Decide = Callable[[Mapping[UUID, StreamState]], Outcome]


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Who asks, with which key, and the ids that tie the events to the request."""

    principal: str
    fingerprint: bytes
    idempotency_key: str | None
    correlation_id: str
    causation_id: str
    traceparent: str | None = None


class CommandConflict(Exception):
    """The streams kept changing under the command; the client may retry."""


class IdempotencyMismatch(Exception):
    """The key was used before with a different request."""


@dataclass
class CommandExecutor:
    store: EventStore
    registry: EventRegistry
    max_attempts: int = 10
    idempotency_ttl: timedelta = timedelta(hours=24)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    locks: KeyedLocks = field(default_factory=KeyedLocks)
    # How long a command queues behind others on the same stream in this process;
    # past it the API answers 503 with Retry-After (a TimeoutError) instead of piling up.
    lock_timeout_seconds: float = 5.0

    async def execute(self, context: CommandContext, stream_ids: Sequence[UUID], decide: Decide) -> Answer:
        lookup = (
            IdempotencyLookup(context.principal, context.idempotency_key) if context.idempotency_key else None
        )
        for attempt in range(self.max_attempts):
            async with self.locks.hold(stream_ids, self.lock_timeout_seconds):
                snapshot = await self.store.load(stream_ids, lookup)
                if snapshot.stored_response is not None:
                    return _replay(snapshot.stored_response, context.fingerprint)
                outcome = decide(snapshot.states)
                writes, events, versions = self._plan(outcome.changes, snapshot.states, context)
                answer = _answer(outcome, versions)
                record = self._record(context, answer)
                if not writes and record is None and not outcome.side_writes:
                    return answer  # a refusal with no key to remember it by: nothing to write
                written = await self._append(outcome, answer, writes, events, record, attempt)
                if written is not None:
                    return written
            # Another process wrote in between: back off a little, with jitter, then decide again.
            if attempt + 1 < self.max_attempts:
                backoff = min(MAX_BACKOFF_SECONDS, 0.002 * 2**attempt)
                await asyncio.sleep(random.uniform(0, backoff))  # noqa: S311 - jitter, not security
        raise CommandConflict("the streams kept changing; retry the request")

    async def _append(  # noqa: PLR0917 - a private step of execute, called once
        self,
        outcome: Outcome,
        answer: Answer,
        writes: Sequence[StreamWrite],
        events: Sequence[NewEvent],
        record: IdempotencyRecord | None,
        attempt: int,
    ) -> Answer | None:
        """The answer once written; None when the command must be decided again."""
        try:
            await self.store.append(writes, events, record, outcome.side_writes)
        except SideWriteRejected as rejected:
            if outcome.on_rejected is None:
                raise
            # Not remembered under the key: a retry finds the same row and the same answer.
            return outcome.on_rejected(rejected.side_write)
        except ConcurrencyConflict:
            _log.info("version conflict, deciding again", attempt=attempt + 1)
            return None
        except IdempotencyKeyTaken:
            return None  # a request with the same key won the race: the next load replays it
        return answer

    def _plan(
        self, changes: Sequence[StreamChange], states: Mapping[UUID, StreamState], context: CommandContext
    ) -> tuple[list[StreamWrite], list[NewEvent], dict[UUID, int]]:
        metadata = _json.encode(
            {
                "correlation_id": context.correlation_id,
                "causation_id": context.causation_id,
                **({"traceparent": context.traceparent} if context.traceparent else {}),
            }
        )
        writes: list[StreamWrite] = []
        events: list[NewEvent] = []
        versions: dict[UUID, int] = {}
        # State rows are updated in stream-id order by every process, so two
        # commands touching the same streams (A->B and B->A transfers) never
        # lock them in opposite orders and deadlock in PostgreSQL.
        for change in sorted(changes, key=lambda change: change.stream_id):
            if not change.events:
                continue
            current = states.get(change.stream_id)
            expected = current.version if current else 0
            for offset, event in enumerate(change.events, start=1):
                event_type = self.registry.type_of(event)
                events.append(
                    NewEvent(
                        event_id=UUID(bytes=uuid7().bytes),
                        stream_id=change.stream_id,
                        stream_type=change.stream_type,
                        version=expected + offset,
                        event_type=event_type.name,
                        schema_version=event_type.schema_version,
                        data=self.registry.encode(event),
                        metadata=metadata,
                    )
                )
            new_version = expected + len(change.events)
            versions[change.stream_id] = new_version
            writes.append(
                StreamWrite(
                    change.stream_id, change.stream_type, expected, new_version, _json.encode(change.state)
                )
            )
        return writes, events, versions

    def _record(self, context: CommandContext, answer: Answer) -> IdempotencyRecord | None:
        if context.idempotency_key is None:
            return None
        body = answer.body if answer.replay_body is None else answer.replay_body
        response = StoredResponse(context.fingerprint, answer.status, dict(answer.headers), body)
        return IdempotencyRecord(
            context.principal, context.idempotency_key, response, self.clock() + self.idempotency_ttl
        )


def _replay(stored: StoredResponse, fingerprint: bytes) -> Answer:
    if stored.fingerprint != fingerprint:
        raise IdempotencyMismatch("this Idempotency-Key was used with a different request")
    return Answer(status=stored.status, body=stored.body, headers=stored.headers, replayed=True)


def _answer(outcome: Outcome, versions: Mapping[UUID, int]) -> Answer:
    """The outcome's answer, with the versions and token of the streams the caller may see."""
    visible = {change.stream_id for change in outcome.changes if change.visible_to_caller}
    shown = {stream: version for stream, version in versions.items() if stream in visible}
    token = encode_token(shown)
    answer = outcome.respond(shown, token)
    return _with_header(answer, CONSISTENCY_HEADER, token) if shown else answer


def _with_header(answer: Answer, name: str, value: str) -> Answer:
    headers = {**answer.headers, name: value}
    return Answer(answer.status, answer.body, headers, answer.replayed, answer.replay_body)
