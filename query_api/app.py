"""Composition root of the query API: settings in, ASGI app out."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from circuitbreaker import CircuitBreaker
from litestar import Router
from litestar.config.compression import CompressionConfig
from redis.exceptions import RedisError

from query_api import ledger
from query_api.admin.projections import projections
from query_api.answers import SMALL_ANSWER_MAX_BYTES, SMALL_ANSWER_OPT
from query_api.identity.me import me
from query_api.pagination import CursorSigner
from query_api.runtime import QueryRuntime
from query_api.settings import QueryApiSettings
from shared.cache.answers import AnswerCache
from shared.cache.local import LocalAnswers
from shared.cache.tracking import TagTracking
from shared.http.app_factory import create_http_app, token_verifier
from shared.http.auth import Authenticator
from shared.http.client_address import ClientAddresses
from shared.http.openapi import document_routes
from shared.http.request_context import RequestContextMiddleware
from shared.infrastructure.api_key_store import ApiKeyStore
from shared.infrastructure.redis import create_redis
from shared.infrastructure.resources import Resources
from shared.observability.logging import configure_logging
from shared.observability.tracing import Tracing, start_tracing
from shared.projections.consistency_wait import ConsistencyWaiter
from shared.projections.progress import ProgressListener
from shared.ratelimit.limiter import RateLimiter
from shared.ratelimit.setup import open_rate_limiter, route_limits
from shared.settings import load_settings

PROCESS_NAME = "query-api"


def create_app(settings: QueryApiSettings, tracing: Tracing | None = None) -> RequestContextMiddleware:
    """The query API; `tracing` defaults to what the settings ask for (CQRS_OTLP_ENDPOINT)."""
    tracing = tracing or start_tracing(PROCESS_NAME, endpoint=settings.otlp_endpoint)
    keys = settings.key_set
    verifier = token_verifier(settings, keys)
    timeout = settings.database_connect_timeout_seconds

    @contextlib.asynccontextmanager
    async def runtime_of(resources: Resources) -> AsyncIterator[Mapping[str, Any]]:
        async with (
            open_rate_limiter(settings, name=PROCESS_NAME) as limiter,
            _runtime(resources, limiter) as state,
        ):
            yield state

    @contextlib.asynccontextmanager
    async def _runtime(resources: Resources, limiter: RateLimiter | None) -> AsyncIterator[Mapping[str, Any]]:
        # API keys are read where the query API reads: on a replica, a revocation
        # takes effect after the replication lag (milliseconds, usually).
        api_keys = ApiKeyStore(resources.pool, acquire_timeout_seconds=timeout)
        # The cache has a Redis client of its own: short timeouts and no retries,
        # because a slow cache must cost an answer almost nothing.
        cache_redis = create_redis(
            settings.redis_url, timeout_seconds=settings.query_cache_timeout_seconds, retries=0
        )
        breaker = CircuitBreaker(
            failure_threshold=settings.query_cache_breaker_failures,
            recovery_timeout=settings.query_cache_breaker_reset_seconds,
            expected_exception=(RedisError, OSError, TimeoutError),
            name=f"{PROCESS_NAME}-cache-{id(cache_redis)}",
        )
        local, tracking = _local_tier(settings)
        # Progress notifications come from the primary, where the projectors commit.
        listener = ProgressListener(settings.database_url, connect_timeout_seconds=timeout)
        listener.start()
        limits = route_limits(settings, limiter, "queries", ClientAddresses(settings.trusted_proxies))
        runtime = QueryRuntime(
            authenticator=Authenticator(verifier, api_keys, limits),
            pool=resources.pool,
            cache=AnswerCache(
                cache_redis,
                key_prefix=settings.redis_key_prefix,
                ttl_seconds=settings.query_cache_ttl_seconds,
                breaker=breaker,
                local=local,
            ),
            waiter=ConsistencyWaiter(
                resources.pool,
                listener,
                timeout_seconds=settings.consistency_wait_seconds,
                acquire_timeout_seconds=timeout,
            ),
            cursors=CursorSigner(settings.effective_cursor_secret),
            acquire_timeout_seconds=timeout,
        )
        try:
            yield {"query_runtime": runtime}
        finally:
            await listener.close()
            if tracking is not None:
                await tracking.close()
            await cache_redis.aclose()

    document_routes([me, projections, *ledger.ROUTES])
    v1 = Router(path="/v1", route_handlers=[me, projections, *ledger.ROUTES])
    return create_http_app(
        title="CQRS platform: query API",
        description="Reads: read models served through a tag-invalidated cache, with consistency tokens.",
        process_name=PROCESS_NAME,
        settings=settings,
        route_handlers=[v1],
        database_url=settings.effective_read_database_url,
        readiness_checks=("postgres", "nats", "redis"),
        keys=keys,
        state_lifespan=runtime_of,
        compression=CompressionConfig(
            backend="brotli",
            brotli_gzip_fallback=True,
            minimum_size=settings.compression_minimum_bytes,
            exclude_opt_key=(
                SMALL_ANSWER_OPT if settings.compression_minimum_bytes >= SMALL_ANSWER_MAX_BYTES else None
            ),
        ),
        tracing=tracing,
    )


def _local_tier(settings: QueryApiSettings) -> tuple[LocalAnswers | None, TagTracking | None]:
    """The in-process cache tier and the Redis tracking that keeps it correct, if configured."""
    if settings.query_cache_local_entries == 0 or not TagTracking.supports(settings.redis_url):
        return None, None
    local = LocalAnswers(
        max_entries=settings.query_cache_local_entries, ttl_seconds=settings.query_cache_ttl_seconds
    )
    tracking = TagTracking(
        settings.redis_url,
        key_prefix=settings.redis_key_prefix,
        on_invalidate=local.invalidate,
        check_seconds=settings.query_cache_tracking_check_seconds,
        timeout_seconds=settings.redis_timeout_seconds,
    )
    local.trust(tracking)
    tracking.start()
    return local, tracking


def create_app_from_environment() -> RequestContextMiddleware:
    """Entry point for the ASGI server: each worker process builds its app once."""
    settings = load_settings(QueryApiSettings, os.environ)
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
