"""PostgreSQL clients: a SQLAlchemy async engine and a plain asyncpg pool, each with timeouts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# What statements run on: a plain connection or one lent by a pool.
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


def asyncpg_url(url: str) -> str:
    """SQLAlchemy needs the driver in the URL; operators write plain `postgresql://`."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("not a PostgreSQL URL")


def plain_dsn(url: str) -> str:
    """asyncpg used directly wants `postgresql://`, without a driver name."""
    return "postgresql://" + asyncpg_url(url).removeprefix("postgresql+asyncpg://")


def create_engine(
    url: str,
    *,
    application_name: str,
    pool_size: int,
    connect_timeout_seconds: float,
    command_timeout_seconds: float,
) -> AsyncEngine:
    return create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        # No overflow: overflow connections are closed on return, and under a
        # steady load that meant a new PostgreSQL session (a fork) every few
        # requests (benchmarked: 1,388 sessions for 16k requests, half the
        # throughput). Requests wait up to pool_timeout for a pooled one.
        max_overflow=0,
        pool_timeout=connect_timeout_seconds,
        # No pre-ping: it costs a round trip per checkout. A connection that a
        # PostgreSQL restart broke fails once, and SQLAlchemy's disconnect
        # detection then invalidates the whole pool.
        pool_pre_ping=False,
        connect_args={
            "timeout": connect_timeout_seconds,
            "command_timeout": command_timeout_seconds,
            "server_settings": {"application_name": application_name},
        },
    )


@dataclass(frozen=True, slots=True)
class PoolSettings:
    url: str
    application_name: str
    size: int
    connect_timeout_seconds: float
    command_timeout_seconds: float


def create_pool(settings: PoolSettings) -> asyncpg.Pool:
    """A plain asyncpg pool for the hot paths (each command's two statements).

    SQLAlchemy's pooled connection costs ~75 µs of CPU per checkout (greenlet
    switch, pool events, isolation reset); asyncpg's acquire a fraction of
    that. min_size=0: nothing connects until used, so a process starts
    while PostgreSQL is down. Await the pool before use.
    """
    return asyncpg.create_pool(
        plain_dsn(settings.url),
        min_size=0,
        max_size=settings.size,
        timeout=settings.connect_timeout_seconds,
        command_timeout=settings.command_timeout_seconds,
        server_settings={"application_name": settings.application_name},
        reset=_keep_session,
    )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query (RESET ALL, UNLISTEN *, ...): a round trip per release.

    Nothing on this pool changes session state: its users run single
    statements, never SET, LISTEN or advisory locks (the relay takes its lock
    on a connection of its own). asyncpg still rolls back a transaction left
    open before calling this.
    """


async def ping(pool: asyncpg.Pool, timeout_seconds: float) -> None:
    async with pool.acquire(timeout=timeout_seconds) as connection:
        await connection.fetchval("SELECT 1")


async def close_pool(pool: asyncpg.Pool, timeout_seconds: float) -> None:
    """Close gracefully (waiting for connections in use), then by force past the timeout."""
    try:
        await asyncio.wait_for(pool.close(), timeout_seconds)
    except TimeoutError:
        pool.terminate()


@contextlib.asynccontextmanager
async def open_pool(settings: PoolSettings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings)
    try:
        yield pool
    finally:
        await close_pool(pool, settings.connect_timeout_seconds)
