"""The answer cache against real Redis and PostgreSQL: the stale-set race, and Redis going away."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from circuitbreaker import CircuitBreaker
from redis.exceptions import RedisError

from devstack.ports import free_port
from devstack.servers import EmbeddedRedis
from shared.cache.answers import AnswerCache
from shared.cache.local import LocalAnswers
from shared.cache.tags import TagAnnouncer
from shared.cache.tracking import TagTracking
from shared.infrastructure.redis import create_redis

TAG = "thing:1"


@dataclass
class Thing:
    """One row in PostgreSQL, its cached answer in Redis, and the writer's announcement of it."""

    connection: asyncpg.Pool
    table: str
    cache: AnswerCache
    announcer: TagAnnouncer

    async def read(self) -> bytes:
        value = await self.connection.fetchval(f"SELECT value FROM {self.table}")  # noqa: S608 - test's own table
        return str(value).encode()

    async def write(self, value: int) -> None:
        """What a projector does: commit, then announce the tag."""
        await self.connection.execute(f"UPDATE {self.table} SET value = $1", value)  # noqa: S608
        await self.announcer.announce([TAG])

    async def query(self, compute: object = None) -> bytes:
        answer = await self.cache.answer(
            route="/things/1", query={}, scope="user:a", tags=[TAG], compute=compute or self.read
        )
        return answer.body


def breaker(failures: int = 3, reset_seconds: int = 1) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=failures,
        recovery_timeout=reset_seconds,
        expected_exception=(RedisError, OSError, TimeoutError),
        name=f"test-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture
async def table(database_url: str) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    connection = await asyncpg.create_pool(database_url, min_size=1, max_size=6, timeout=10)
    name = f"cache_test_{uuid.uuid4().hex[:10]}"
    await connection.execute(f"CREATE TABLE {name} (value int NOT NULL); INSERT INTO {name} VALUES (0)")  # noqa: S608
    try:
        yield connection, name
    finally:
        await connection.execute(f"DROP TABLE {name}")
        await connection.close()


@contextlib.asynccontextmanager
async def local_tier(redis_url: str, key_prefix: str) -> AsyncIterator[LocalAnswers]:
    """The in-process tier with Redis tracking on, once tracking is verified."""
    local = LocalAnswers(max_entries=1_000, ttl_seconds=60)
    tracking = TagTracking(
        redis_url, key_prefix=key_prefix, on_invalidate=local.invalidate, check_seconds=0.1, timeout_seconds=1
    )
    local.trust(tracking)
    tracking.start()
    try:
        deadline = time.monotonic() + 10
        while not tracking.usable:
            assert time.monotonic() < deadline, "Redis tracking never came up"
            await asyncio.sleep(0.01)
        yield local
    finally:
        await tracking.close()


@pytest.fixture(params=["redis", "redis+local"])
async def thing(
    request: pytest.FixtureRequest, table: tuple[asyncpg.Pool, str], redis_url: str, redis_key_prefix: str
) -> AsyncIterator[Thing]:
    """The cache alone, and with its in-process tier in front: every test holds for both."""
    redis = create_redis(redis_url, timeout_seconds=2, retries=0)
    async with contextlib.AsyncExitStack() as stack:
        local = None
        if request.param == "redis+local":
            local = await stack.enter_async_context(local_tier(redis_url, redis_key_prefix))
        cache = AnswerCache(
            redis, key_prefix=redis_key_prefix, ttl_seconds=60, breaker=breaker(), local=local
        )
        try:
            yield Thing(table[0], table[1], cache, TagAnnouncer(redis, key_prefix=redis_key_prefix))
        finally:
            await redis.aclose()


async def test_old_rows_read_before_an_announcement_are_never_served_after_it(thing: Thing) -> None:
    """The stale-set race, forced: the old rows are stored after the writer committed and announced."""
    assert await thing.query() == b"0"  # cached

    await thing.write(1)
    stale_read = asyncio.Event()

    async def slow_old_read() -> bytes:
        # Read before the next write, store after it: the race's worst interleaving.
        old = await thing.read()
        stale_read.set()
        await thing.write(2)
        return old

    assert await thing.query(slow_old_read) == b"1"
    assert stale_read.is_set()
    assert await thing.query() == b"2"


async def test_looped_against_concurrent_writes_no_query_returns_data_older_than_a_completed_announcement(
    thing: Thing,
) -> None:
    stop = asyncio.Event()
    completed = 0  # the highest value whose announcement completed

    async def writer() -> None:
        nonlocal completed
        for value in range(1, 301):
            await thing.write(value)
            completed = value
        stop.set()

    async def reader() -> None:
        while not stop.is_set():
            floor = completed  # announced before this query began
            assert int(await thing.query()) >= floor
            await asyncio.sleep(0)  # a local hit never suspends: let the writer run

    await asyncio.gather(writer(), *(reader() for _ in range(4)))
    assert int(await thing.query()) == 300


async def test_answers_bypass_an_unreachable_redis_and_the_breaker_stops_asking(
    table: tuple[asyncpg.Pool, str],
) -> None:
    redis = create_redis(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.2, retries=0)
    circuit = breaker(failures=2, reset_seconds=30)
    cache = AnswerCache(redis, key_prefix="t:", ttl_seconds=60, breaker=circuit)
    thing = Thing(table[0], table[1], cache, TagAnnouncer(redis, key_prefix="t:"))
    try:
        for _ in range(4):
            assert await thing.query() == b"0"
        assert circuit.opened
    finally:
        await redis.aclose()


@pytest.mark.parametrize("with_local", [False, True], ids=["redis", "redis+local"])
async def test_redis_stopped_then_back_the_cache_is_used_again(
    table: tuple[asyncpg.Pool, str], own_redis: EmbeddedRedis, with_local: bool
) -> None:
    redis = create_redis(own_redis.url, timeout_seconds=0.2, retries=0)
    circuit = breaker(failures=2, reset_seconds=1)
    stack = contextlib.AsyncExitStack()
    local = await stack.enter_async_context(local_tier(own_redis.url, "t:")) if with_local else None
    cache = AnswerCache(redis, key_prefix="t:", ttl_seconds=60, breaker=circuit, local=local)
    computed = 0

    async def counted_read() -> bytes:
        nonlocal computed
        computed += 1
        return await thing.read()

    thing = Thing(table[0], table[1], cache, TagAnnouncer(redis, key_prefix="t:"))
    try:
        assert await thing.query(counted_read) == b"0"
        assert await thing.query(counted_read) == b"0"
        assert computed == 1  # the second came from Redis

        own_redis.stop()
        await thing.connection.execute(f"UPDATE {thing.table} SET value = 5")  # noqa: S608
        for _ in range(5):
            assert await thing.query(counted_read) == b"5"  # the database's answer, not the stale entry
        assert computed == 6

        own_redis.start()
        own_redis.wait_ready(30)
        deadline = time.monotonic() + 10
        while True:  # the breaker half-opens after its reset time; then the cache fills and serves again
            before = computed
            await thing.query(counted_read)
            await thing.query(counted_read)
            if computed - before <= 1:
                break
            assert time.monotonic() < deadline, "the cache was not used again after Redis came back"
            await asyncio.sleep(0.1)  # the breaker's reset time passing: a clock, not a condition
    finally:
        await stack.aclose()
        await redis.aclose()


def test_tracking_works_under_uvloop_as_the_servers_run_it(redis_url: str, redis_key_prefix: str) -> None:
    """granian runs the app on uvloop, whose transports differ from asyncio's."""
    import uvloop  # noqa: PLC0415 - only this test needs it

    async def scenario() -> None:
        async with local_tier(redis_url, redis_key_prefix) as local:
            redis = create_redis(redis_url, timeout_seconds=2, retries=0)
            try:
                local.keep("k", b"old", '"e"', [f"{redis_key_prefix}tag:{TAG}"], local.mark())
                assert local.get("k") == (b"old", '"e"')
                await TagAnnouncer(redis, key_prefix=redis_key_prefix).announce([TAG])
                assert local.get("k") is None
            finally:
                await redis.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
