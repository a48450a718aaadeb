"""The long-lived clients of a process, opened in its lifespan and closed after."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.http.health import DependencyCheck
from shared.infrastructure import postgres
from shared.infrastructure.nats import NatsConnection
from shared.infrastructure.redis import create_redis
from shared.settings import CommonSettings


@dataclass(frozen=True, slots=True)
class Resources:
    engine: AsyncEngine
    pool: asyncpg.Pool
    redis: Redis
    nats: NatsConnection

    def dependency_checks(self) -> list[DependencyCheck]:
        async def redis_ping() -> None:
            await self.redis.ping()

        return [
            DependencyCheck("postgres", lambda: postgres.ping(self.pool, timeout_seconds=5)),
            DependencyCheck("nats", self.nats.ping),
            DependencyCheck("redis", redis_ping),
        ]


@contextlib.asynccontextmanager
async def open_resources(
    settings: CommonSettings, *, process_name: str, database_url: str | None = None
) -> AsyncIterator[Resources]:
    """Open the PostgreSQL, Redis and NATS clients; none of them needs its server up yet."""
    pool_settings = postgres.PoolSettings(
        url=database_url or settings.database_url,
        application_name=process_name,
        size=settings.database_pool_size,
        connect_timeout_seconds=settings.database_connect_timeout_seconds,
        command_timeout_seconds=settings.database_command_timeout_seconds,
    )
    pool = await postgres.create_pool(pool_settings)
    # The engine serves SQLAlchemy Core queries (few); it connects only when used.
    engine = postgres.create_engine(
        pool_settings.url,
        application_name=process_name,
        pool_size=2,
        connect_timeout_seconds=settings.database_connect_timeout_seconds,
        command_timeout_seconds=settings.database_command_timeout_seconds,
    )
    redis = create_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
    nats = NatsConnection(
        settings.nats_urls,
        name=process_name,
        connect_timeout_seconds=settings.nats_connect_timeout_seconds,
    )
    await nats.start()
    try:
        yield Resources(engine=engine, pool=pool, redis=redis, nats=nats)
    finally:
        await nats.close()
        await redis.aclose()
        await engine.dispose()
        await postgres.close_pool(pool, settings.database_connect_timeout_seconds)
