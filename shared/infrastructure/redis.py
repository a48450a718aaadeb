"""The redis-py asyncio client with short timeouts and bounded retries."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry


def create_redis(url: str, *, timeout_seconds: float, max_connections: int = 64, retries: int = 2) -> Redis:
    # A blocking pool waits for a free connection instead of failing a request
    # when the pool is exhausted (measured by the team: a plain pool gave 500s).
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.01), retries=retries),
    )
    return Redis(connection_pool=pool)
