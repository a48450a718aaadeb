"""The long-lived clients of a process, opened in its lifespan and closed after."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from shared.http.health import DependencyCheck
from shared.infrastructure import postgres
from shared.infrastructure.nats import NatsConnection
from shared.infrastructure.redis import create_redis
from shared.settings import CommonSettings


@dataclass(frozen=True, slots=True)
class Resources:
    pool: asyncpg.Pool
    redis: Redis
    nats: NatsConnection

    def dependency_checks(self, names: Sequence[str]) -> list[DependencyCheck]:
        """Checks of the named dependencies: each process is ready when what IT uses answers."""

        async def redis_ping() -> None:
            await self.redis.ping()

        checks = {
            "postgres": DependencyCheck("postgres", lambda: postgres.ping(self.pool, timeout_seconds=5)),
            "nats": DependencyCheck("nats", self.nats.ping),
            "redis": DependencyCheck("redis", redis_ping),
        }
        return [checks[name] for name in names]


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
    redis = create_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
    nats = NatsConnection(
        settings.nats_urls,
        name=process_name,
        connect_timeout_seconds=settings.nats_connect_timeout_seconds,
    )
    await nats.start()
    try:
        yield Resources(pool=pool, redis=redis, nats=nats)
    finally:
        await nats.close()
        await redis.aclose()
        await postgres.close_pool(pool, settings.database_connect_timeout_seconds)
