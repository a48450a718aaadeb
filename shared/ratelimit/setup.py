"""Builds an API's rate limiter from its settings, with a Redis client of its own."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from circuitbreaker import CircuitBreaker
from redis.exceptions import RedisError

from shared.http.client_address import ClientAddresses
from shared.infrastructure.redis import create_redis
from shared.ratelimit.admission import RouteLimits
from shared.ratelimit.buckets import Abuse, RedisBuckets
from shared.ratelimit.limiter import RateLimiter
from shared.ratelimit.policies import RouteClass, RouteClassLimits
from shared.settings import HttpApiSettings


def limits_of(settings: HttpApiSettings, route_class: RouteClass) -> RouteClassLimits:
    return {
        "queries": settings.rate_limit_queries,
        "commands": settings.rate_limit_commands,
        "auth": settings.rate_limit_auth,
    }[route_class]


def abuse_of(settings: HttpApiSettings) -> Abuse:
    return Abuse(
        factor=settings.rate_limit_abuse_factor, block_seconds=settings.rate_limit_abuse_block_seconds
    )


@contextlib.asynccontextmanager
async def open_rate_limiter(settings: HttpApiSettings, *, name: str) -> AsyncIterator[RateLimiter | None]:
    """The process's limiter, or None when rate limits are off."""
    if not settings.rate_limits_enabled:
        yield None
        return
    # Short timeouts and no retries: a slow Redis must cost a request almost nothing,
    # and the breaker then stops asking it (the fail modes take over).
    redis = create_redis(settings.redis_url, timeout_seconds=settings.rate_limit_timeout_seconds, retries=0)
    breaker = CircuitBreaker(
        failure_threshold=settings.rate_limit_breaker_failures,
        recovery_timeout=settings.rate_limit_breaker_reset_seconds,
        expected_exception=(RedisError, OSError, TimeoutError),
        name=f"{name}-rate-limits-{id(redis)}",
    )
    try:
        yield RateLimiter(
            RedisBuckets(redis, key_prefix=settings.redis_key_prefix, abuse=abuse_of(settings)),
            breaker,
            lease_max=settings.rate_limit_lease_max,
            lease_seconds=settings.rate_limit_lease_seconds,
        )
    finally:
        await redis.aclose()


def route_limits(
    settings: HttpApiSettings,
    limiter: RateLimiter | None,
    route_class: RouteClass,
    addresses: ClientAddresses,
) -> RouteLimits | None:
    if limiter is None:
        return None
    return RouteLimits(limiter, route_class, limits_of(settings, route_class), addresses)
