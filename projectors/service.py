"""`cqrs projector run [NAME ...]`: run projections until SIGTERM, each finishing its batch in flight."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Any

from contexts.catalogue import REGISTRY
from projectors.catalogue import projection_class
from projectors.ops import projections_lag
from projectors.runner import ProjectionRunner
from projectors.settings import ProjectorSettings
from shared.cache.tags import TagAnnouncer
from shared.infrastructure.resources import open_resources
from shared.observability.ops_server import OpsServer
from shared.observability.tracing import Tracing

PROCESS_NAME = "projector"


async def run_projectors(
    settings: ProjectorSettings,
    names: Sequence[str],
    stop: asyncio.Event | None = None,
    started: Callable[[list[ProjectionRunner]], object] | None = None,
    tracing: Tracing | None = None,
) -> list[ProjectionRunner]:
    """Run the named projections in this process until `stop` (or a signal) is set.

    `started` receives the runners once they exist (tests and benchmarks watch them).
    """
    classes = [projection_class(name) for name in names]
    if stop is None:
        # Run as the process: SIGTERM and SIGINT stop it. An embedding caller brings its own event.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    async with open_resources(settings, process_name=PROCESS_NAME) as resources:
        announcer = TagAnnouncer(resources.redis, key_prefix=settings.redis_key_prefix)
        runners = [
            ProjectionRunner(
                cls(),
                settings=settings,
                pool=resources.pool,
                nats=resources.nats,
                announcer=announcer,
                registry=REGISTRY,
                stop=stop,
                tracing=tracing,
            )
            for cls in classes
        ]
        if started is not None:
            started(runners)
        timeout = settings.database_connect_timeout_seconds

        async def lag() -> dict[str, Any]:
            return await projections_lag(resources.pool, [cls.name for cls in classes], timeout)

        async with OpsServer(
            name=PROCESS_NAME,
            host=settings.ops_host,
            port=settings.projector_ops_port,
            checks=lambda: resources.dependency_checks(("postgres", "nats", "redis")),
            lag=lag,
            timeout_seconds=settings.health_check_timeout_seconds,
        ).serving():
            await asyncio.gather(*(_run_or_stop_all(runner, stop) for runner in runners))
    return runners


async def _run_or_stop_all(runner: ProjectionRunner, stop: asyncio.Event) -> None:
    """A runner that fails for good stops the others too: the process exits, its supervisor restarts it."""
    try:
        await runner.run()
    except BaseException:
        stop.set()
        raise
