"""The command executor on the in-memory event store: replay, retries, refusals."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

import msgspec
import pytest

from command_api.execution.executor import (
    Answer,
    CommandConflict,
    CommandContext,
    CommandExecutor,
    IdempotencyMismatch,
    Outcome,
    StreamChange,
)
from contexts.catalogue import REGISTRY
from contexts.ledger.events import AccountOpened
from shared.eventsourcing.memory import InMemoryEventStore
from shared.eventsourcing.store import (
    ConcurrencyConflict,
    IdempotencyRecord,
    NewEvent,
    SideWrite,
    StreamState,
    StreamWrite,
)


class _State(msgspec.Struct):
    opened: bool


def _context(key: str | None = "key-1", fingerprint: bytes = b"fp-1") -> CommandContext:
    return CommandContext(
        principal="user:1", fingerprint=fingerprint, idempotency_key=key, correlation_id="c", causation_id="r"
    )


def _open(stream: UUID, calls: list[int]) -> object:
    def decide(states: Mapping[UUID, StreamState]) -> Outcome:
        calls.append(1)
        event = AccountOpened(account_id=stream, owner_id=uuid.uuid4(), currency="EUR", name="n")
        change = StreamChange(stream, "account", [event], _State(opened=True))
        return Outcome([change], lambda versions, token: Answer(201, b'{"v":%d}' % versions[stream]))

    return decide


def _refuse(states: Mapping[UUID, StreamState]) -> Outcome:
    return Outcome([], lambda versions, token: Answer(409, b'{"refused":true}'))


async def test_the_first_request_executes_and_a_retry_replays() -> None:
    """A retry with the same key and fingerprint gets the stored answer, marked replayed, without deciding."""
    store, stream, calls = InMemoryEventStore(), uuid.uuid4(), []
    executor = CommandExecutor(store, REGISTRY)
    first = await executor.execute(_context(), [stream], _open(stream, calls))  # type: ignore[arg-type]
    second = await executor.execute(_context(), [stream], _open(stream, calls))  # type: ignore[arg-type]
    assert (first.status, first.replayed) == (201, False)
    assert (second.status, second.body, second.replayed) == (201, first.body, True)
    assert second.headers["Consistency-Token"] == first.headers["Consistency-Token"]
    assert len(calls) == 1
    assert len(store.events) == 1


async def test_the_same_key_with_another_request_is_refused() -> None:
    """A key reused with a different fingerprint raises IdempotencyMismatch."""
    executor, stream = CommandExecutor(InMemoryEventStore(), REGISTRY), uuid.uuid4()
    await executor.execute(_context(), [stream], _open(stream, []))  # type: ignore[arg-type]
    with pytest.raises(IdempotencyMismatch):
        await executor.execute(_context(fingerprint=b"other"), [stream], _open(stream, []))  # type: ignore[arg-type]


async def test_a_refusal_with_a_key_is_stored_and_replayed() -> None:
    """A refused command's answer is kept, so its retry gets the same refusal."""
    store = InMemoryEventStore()
    executor = CommandExecutor(store, REGISTRY)
    first = await executor.execute(_context(), [uuid.uuid4()], _refuse)
    again = await executor.execute(_context(), [uuid.uuid4()], _refuse)
    assert (first.status, again.status, again.replayed) == (409, 409, True)
    assert store.events == []


async def test_a_refusal_without_a_key_writes_nothing() -> None:
    """With no key and no change there is nothing to append."""
    store = _CountingStore()
    await CommandExecutor(store, REGISTRY).execute(_context(key=None), [uuid.uuid4()], _refuse)
    assert store.appends == 0


async def test_version_conflicts_are_retried_then_given_up() -> None:
    """A conflict is decided again on fresh state, at most max_attempts times, then CommandConflict."""
    store, stream, calls = _AlwaysConflicting(), uuid.uuid4(), []
    executor = CommandExecutor(store, REGISTRY, max_attempts=4)
    with pytest.raises(CommandConflict):
        await executor.execute(_context(), [stream], _open(stream, calls))  # type: ignore[arg-type]
    assert len(calls) == 4


@dataclass
class _CountingStore(InMemoryEventStore):
    appends: int = 0

    async def append(
        self,
        writes: Sequence[StreamWrite],
        events: Sequence[NewEvent],
        idempotency: IdempotencyRecord | None = None,
    ) -> list[int]:
        self.appends += 1
        return await super().append(writes, events, idempotency)


class _AlwaysConflicting(InMemoryEventStore):
    async def append(
        self,
        writes: Sequence[StreamWrite],
        events: Sequence[NewEvent],
        idempotency: IdempotencyRecord | None = None,
        side_writes: Sequence[SideWrite] = (),
    ) -> list[int]:
        raise ConcurrencyConflict("someone else wrote")


async def test_a_command_queued_too_long_behind_its_stream_times_out() -> None:
    """Waiting for a busy stream's in-process lock is bounded (the API answers 503 then)."""
    store, stream = InMemoryEventStore(), uuid.uuid4()
    executor = CommandExecutor(store, REGISTRY, lock_timeout_seconds=0.05)
    async with executor.locks.hold([stream]):
        with pytest.raises(TimeoutError):
            await executor.execute(_context(), [stream], _open(stream, []))  # type: ignore[arg-type]
    assert len(executor.locks) == 0
