"""`cqrs relay`: run the relay until SIGTERM or SIGINT, finishing the batch in flight.

Its health (PostgreSQL, NATS, the outbox's backlog and age, whether it leads)
and metrics are served on `CQRS_RELAY_OPS_PORT`.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from relay.ops import outbox_lag
from relay.service import Relay
from relay.settings import RelaySettings
from shared.http.health import DependencyCheck
from shared.infrastructure import postgres
from shared.observability.ops_server import OpsServer
from shared.observability.tracing import start_tracing

PROCESS_NAME = "relay"


async def run_relay(settings: RelaySettings) -> None:
    tracing = start_tracing(PROCESS_NAME, endpoint=settings.otlp_endpoint)
    relay = Relay(settings, tracing)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, relay.stop.set)
    timeout = settings.database_connect_timeout_seconds
    # A pool of its own for the probes: the relay's connection is its lock, and a standby has none.
    pool = await postgres.create_pool(
        postgres.PoolSettings(
            url=settings.database_url,
            application_name=f"{PROCESS_NAME}-ops",
            size=2,
            connect_timeout_seconds=timeout,
            command_timeout_seconds=settings.database_command_timeout_seconds,
        )
    )

    def checks() -> list[DependencyCheck]:
        return [
            DependencyCheck("postgres", lambda: postgres.ping(pool, timeout_seconds=timeout)),
            DependencyCheck("nats", relay.nats_ping),
        ]

    async def lag() -> dict[str, Any]:
        return {**await outbox_lag(pool, timeout), "active": relay.active}

    try:
        async with OpsServer(
            name=PROCESS_NAME,
            host=settings.ops_host,
            port=settings.relay_ops_port,
            checks=checks,
            lag=lag,
            timeout_seconds=settings.health_check_timeout_seconds,
        ).serving():
            await relay.run()
    finally:
        await postgres.close_pool(pool, timeout)
        if tracing is not None:
            tracing.provider.shutdown()  # exports the spans still buffered
