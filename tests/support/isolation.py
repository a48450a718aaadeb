"""Per-test isolation: a database, a stream and a Redis key prefix of its own.

Nothing is shared between tests but the servers, so the suite can run in
parallel (pytest-xdist) and a test never sees another's leftovers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import nats
import pytest
import redis.asyncio as redis_asyncio
from nats.js.errors import NotFoundError

from shared.db import migrate
from shared.infrastructure.event_store import PostgresEventStore
from shared.infrastructure.postgres import PoolSettings, open_pool

T = TypeVar("T")


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when a loop already runs here.

    Sync fixtures are sometimes requested from async ones (getfixturevalue), where
    asyncio.run() is not allowed; a short-lived thread with its own loop is.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def database_url_for(admin_url: str, database: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{database}"


async def _execute(admin_url: str, *statements: str) -> None:
    connection = await asyncpg.connect(admin_url, timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_database(admin_url: str, *, template: str | None = None) -> str:
    """Create a fresh database (optionally copied from a template); return its URL."""
    name = _unique("test")
    clause = f' TEMPLATE "{template}"' if template else ""
    run_blocking(_execute(admin_url, f'CREATE DATABASE "{name}"{clause}'))
    return database_url_for(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    name = url.rpartition("/")[2]
    run_blocking(_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def migrated_template(postgres_admin_url: str) -> Iterator[str]:
    """A database migrated to head once per session; each test copies it (fast)."""
    url = create_database(postgres_admin_url)
    # Alembic's env runs its own event loop, so it gets a thread of its own.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(migrate.upgrade, url).result()
    yield url.rpartition("/")[2]
    drop_database(postgres_admin_url, url)


@contextlib.contextmanager
def own_database(admin_url: str, template: str) -> Iterator[str]:
    """A migrated database copied from `template`, dropped afterwards."""
    url = create_database(admin_url, template=template)
    try:
        yield url
    finally:
        drop_database(admin_url, url)


@pytest.fixture
def database_url(postgres_admin_url: str, migrated_template: str) -> Iterator[str]:
    """A migrated database of this test's own."""
    with own_database(postgres_admin_url, migrated_template) as url:
        yield url


@pytest.fixture
def empty_database_url(postgres_admin_url: str) -> Iterator[str]:
    """An empty database of this test's own, for migration tests."""
    url = create_database(postgres_admin_url)
    yield url
    drop_database(postgres_admin_url, url)


@dataclass(frozen=True, slots=True)
class StreamNames:
    stream: str
    subject_prefix: str


async def _delete_stream(url: str, stream: str) -> None:
    client = await nats.connect(servers=[url], connect_timeout=5, max_reconnect_attempts=1)
    try:
        with contextlib.suppress(NotFoundError):
            await client.jetstream().delete_stream(stream)
    finally:
        await client.close()


@contextlib.contextmanager
def own_stream(nats_url: str) -> Iterator[StreamNames]:
    """A stream name and subject prefix of one's own; the stream is deleted afterwards."""
    token = uuid.uuid4().hex[:12]
    names = StreamNames(stream=f"TEST_{token}", subject_prefix=f"test_{token}.events")
    try:
        yield names
    finally:
        run_blocking(_delete_stream(nats_url, names.stream))


@pytest.fixture
def stream_names(nats_url: str) -> Iterator[StreamNames]:
    """A stream name and subject prefix of this test's own."""
    with own_stream(nats_url) as names:
        yield names


async def _delete_keys(url: str, prefix: str) -> None:
    client = redis_asyncio.Redis.from_url(url, socket_timeout=5)
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=500):
            await client.delete(key)
    finally:
        await client.aclose()


@contextlib.contextmanager
def own_key_prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of one's own; its keys are deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        run_blocking(_delete_keys(redis_url, prefix))


@pytest.fixture
def redis_key_prefix(redis_url: str) -> Iterator[str]:
    with own_key_prefix(redis_url) as prefix:
        yield prefix


@contextlib.asynccontextmanager
async def event_store_for(database_url: str, size: int = 5) -> AsyncIterator[PostgresEventStore]:
    """A PostgresEventStore on its own pool, for tests that write events directly."""
    settings = PoolSettings(
        url=database_url,
        application_name="test",
        size=size,
        connect_timeout_seconds=5,
        command_timeout_seconds=30,
    )
    async with open_pool(settings) as pool:
        yield PostgresEventStore(pool)
