"""One contract, two event stores: the in-memory fake must behave as PostgreSQL does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from shared.eventsourcing.memory import InMemoryEventStore
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
    StreamWrite,
)
from tests.support.isolation import event_store_for


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[EventStore]:
    if request.param == "memory":
        yield InMemoryEventStore()
        return
    database_url = request.getfixturevalue("database_url")
    async with event_store_for(database_url) as event_store:
        yield event_store


def _event(stream_id: uuid.UUID, version: int, kind: str = "Happened") -> NewEvent:
    return NewEvent(
        event_id=uuid.uuid4(),
        stream_id=stream_id,
        stream_type="thing",
        version=version,
        event_type=kind,
        schema_version=1,
        data=b'{"n":%d}' % version,
    )


def _write(stream_id: uuid.UUID, expected: int, new: int) -> StreamWrite:
    return StreamWrite(stream_id, "thing", expected, new, b'{"v":%d}' % new)


def _record(
    key: str, principal: str = "user-1", expires_in: timedelta = timedelta(hours=24)
) -> IdempotencyRecord:
    response = StoredResponse(
        fingerprint=b"fp", status=201, headers={"Content-Type": "application/json"}, body=b"{}"
    )
    return IdempotencyRecord(principal, key, response, datetime.now(UTC) + expires_in)


async def test_appended_events_load_in_version_order(store: EventStore) -> None:
    """A stream's events come back in version order, with their data."""
    stream = uuid.uuid4()
    await store.append([_write(stream, 0, 2)], [_event(stream, 1), _event(stream, 2)])
    loaded = await store.load_stream(stream)
    assert [e.version for e in loaded] == [1, 2]
    assert [msgspec.json.decode(e.data) for e in loaded] == [{"n": 1}, {"n": 2}]


async def test_the_state_row_follows_the_appends(store: EventStore) -> None:
    """load() returns the version and state written with the last append."""
    stream = uuid.uuid4()
    await store.append([_write(stream, 0, 1)], [_event(stream, 1)])
    await store.append([_write(stream, 1, 3)], [_event(stream, 2), _event(stream, 3)])
    snapshot = await store.load([stream])
    assert snapshot.states[stream].version == 3
    # JSONB normalises the text; the value is what counts.
    assert msgspec.json.decode(snapshot.states[stream].state) == {"v": 3}


async def test_a_stale_expected_version_is_a_conflict(store: EventStore) -> None:
    """Appending from an old version raises ConcurrencyConflict and writes nothing."""
    stream = uuid.uuid4()
    await store.append([_write(stream, 0, 1)], [_event(stream, 1)])
    with pytest.raises(ConcurrencyConflict):
        await store.append([_write(stream, 0, 1)], [_event(stream, 1)])
    with pytest.raises(ConcurrencyConflict):
        await store.append([_write(stream, 5, 6)], [_event(stream, 6)])
    assert [e.version for e in await store.load_stream(stream)] == [1]


async def test_several_streams_append_atomically(store: EventStore) -> None:
    """When one stream of a multi-stream append conflicts, no stream changes."""
    first, second = uuid.uuid4(), uuid.uuid4()
    await store.append([_write(second, 0, 1)], [_event(second, 1)])
    with pytest.raises(ConcurrencyConflict):
        await store.append([_write(first, 0, 1), _write(second, 0, 1)], [_event(first, 1), _event(second, 1)])
    assert await store.load_stream(first) == []
    assert first not in (await store.load([first])).states
    positions = await store.append(
        [_write(first, 0, 1), _write(second, 1, 2)], [_event(first, 1), _event(second, 2)]
    )
    assert len(positions) == 2
    assert positions[0] < positions[1]


async def test_racing_appends_let_exactly_one_win(store: EventStore) -> None:
    """Of ten concurrent appends from the same version, exactly one succeeds."""
    stream = uuid.uuid4()
    await store.append([_write(stream, 0, 1)], [_event(stream, 1)])
    results = await asyncio.gather(
        *(store.append([_write(stream, 1, 2)], [_event(stream, 2)]) for _ in range(10)),
        return_exceptions=True,
    )
    assert sum(1 for r in results if isinstance(r, list)) == 1
    assert all(isinstance(r, ConcurrencyConflict) for r in results if not isinstance(r, list))


async def test_read_all_from_a_position(store: EventStore) -> None:
    """read_all returns events from a global position on, in order, bounded by limit and to_position."""
    streams = [uuid.uuid4() for _ in range(5)]
    positions = [(await store.append([_write(s, 0, 1)], [_event(s, 1)]))[0] for s in streams]
    tail = await store.read_all(from_position=positions[2])
    assert [e.global_position for e in tail][:3] == positions[2:]
    window = await store.read_all(from_position=positions[1], to_position=positions[3])
    assert [e.stream_id for e in window] == streams[1:4]
    assert len(await store.read_all(from_position=positions[0], limit=2)) == 2


async def test_an_idempotency_record_is_stored_with_the_events(store: EventStore) -> None:
    """The record written with an append is what load() finds for that principal and key."""
    stream = uuid.uuid4()
    await store.append([_write(stream, 0, 1)], [_event(stream, 1)], _record("key-1"))
    snapshot = await store.load([stream], IdempotencyLookup("user-1", "key-1"))
    assert snapshot.stored_response is not None
    assert snapshot.stored_response.status == 201
    assert snapshot.stored_response.headers == {"Content-Type": "application/json"}
    assert (await store.load([], IdempotencyLookup("user-2", "key-1"))).stored_response is None


async def test_a_taken_idempotency_key_writes_nothing(store: EventStore) -> None:
    """A second append with the same principal and key raises and leaves the stream untouched."""
    stream, other = uuid.uuid4(), uuid.uuid4()
    await store.append([_write(stream, 0, 1)], [_event(stream, 1)], _record("key-2"))
    with pytest.raises(IdempotencyKeyTaken):
        await store.append([_write(other, 0, 1)], [_event(other, 1)], _record("key-2"))
    assert await store.load_stream(other) == []
    assert other not in (await store.load([other])).states


async def test_another_principal_may_use_the_same_key(store: EventStore) -> None:
    """Keys are scoped per principal."""
    first, second = uuid.uuid4(), uuid.uuid4()
    await store.append([_write(first, 0, 1)], [_event(first, 1)], _record("shared-key", "user-1"))
    await store.append([_write(second, 0, 1)], [_event(second, 1)], _record("shared-key", "user-2"))
    assert [e.version for e in await store.load_stream(second)] == [1]


async def test_an_expired_idempotency_key_can_be_used_again(store: EventStore) -> None:
    """Past its expiry a record is ignored by load() and replaced by the next append."""
    stream = uuid.uuid4()
    await store.append([], [], _record("old-key", expires_in=timedelta(seconds=-1)))
    assert (await store.load([], IdempotencyLookup("user-1", "old-key"))).stored_response is None
    await store.append([_write(stream, 0, 1)], [_event(stream, 1)], _record("old-key"))
    assert (await store.load([], IdempotencyLookup("user-1", "old-key"))).stored_response is not None


async def test_a_record_can_be_stored_without_events(store: EventStore) -> None:
    """A refused command's answer is kept for replay with no event and no stream change."""
    assert await store.append([], [], _record("refused")) == []
    assert (await store.load([], IdempotencyLookup("user-1", "refused"))).stored_response is not None


def _reservation(email_key: str, user_id: uuid.UUID) -> SideWrite:
    # A real side write of the identity context: its table has the unique key.
    return SideWrite(
        "INSERT INTO email_reservations (email_key, user_id) VALUES ($1, $2)",
        (email_key, user_id),
        unique="email:" + email_key,
    )


async def test_a_side_write_commits_with_the_events_and_a_unique_clash_writes_nothing(
    store: EventStore,
) -> None:
    """Side writes commit with the append; when one breaks its uniqueness rule the store raises
    SideWriteRejected and neither the events, the state row nor the idempotency record remain."""
    first, second = uuid.uuid4(), uuid.uuid4()
    await store.append([_write(first, 0, 1)], [_event(first, 1)], None, [_reservation("a@x.org", first)])

    with pytest.raises(SideWriteRejected) as rejected:
        await store.append(
            [_write(second, 0, 1)], [_event(second, 1)], _record("k-side"), [_reservation("a@x.org", second)]
        )

    assert rejected.value.side_write.unique == "email:a@x.org"
    assert await store.load_stream(second) == []
    snapshot = await store.load([second], IdempotencyLookup("user-1", "k-side"))
    assert snapshot.states == {}
    assert snapshot.stored_response is None
    assert [e.version for e in await store.load_stream(first)] == [1]
