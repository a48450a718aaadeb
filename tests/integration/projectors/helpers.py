"""Helpers for the projector tests: run relay and projectors in-process, compare with a rebuild."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence

import asyncpg

from contexts.catalogue import REGISTRY
from projectors.catalogue import PROJECTIONS, projection_class
from projectors.rebuild import Rebuild, RebuildReport
from projectors.runner import ProjectionRunner
from projectors.service import run_projectors
from projectors.settings import ProjectorSettings
from relay.service import Relay
from relay.settings import RelaySettings
from shared.observability.tracing import Tracing
from shared.settings import load_settings
from tests.integration.relay.helpers import wait_until

__all__ = ["dry_run", "projected_versions", "running_projectors", "running_relay", "wait_until"]


@contextlib.asynccontextmanager
async def running_relay(
    environment: Mapping[str, str], tracing: Tracing | None = None
) -> AsyncIterator[Relay]:
    relay = Relay(load_settings(RelaySettings, environment), tracing)
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        relay.stop.set()
        await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def running_projectors(
    environment: Mapping[str, str], names: Sequence[str] = tuple(PROJECTIONS), tracing: Tracing | None = None
) -> AsyncIterator[list[ProjectionRunner]]:
    """The projections in this process; yields their runners once started."""
    settings = load_settings(ProjectorSettings, environment)
    stop = asyncio.Event()
    runners: list[ProjectionRunner] = []
    task = asyncio.create_task(run_projectors(settings, names, stop, started=runners.extend, tracing=tracing))
    try:
        await wait_until(_started(runners, task, len(names)), 20, "the projectors start")
        yield runners
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _started(runners: list[ProjectionRunner], task: asyncio.Task[object], count: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        if task.done():
            task.result()  # raises what stopped it
        return len(runners) == count

    return check


async def projected_versions(database_url: str, projection: str) -> dict[object, int]:
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        table = projection_class(projection).streams.name  # a known name, never input
        rows = await connection.fetch(f"SELECT stream_id, version FROM read.{table}")  # noqa: S608
        return {row["stream_id"]: row["version"] for row in rows}
    finally:
        await connection.close()


async def dry_run(database_url: str, name: str) -> RebuildReport:
    """Rebuild `name` from the store and compare it with the live tables, changing nothing."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2, timeout=10)
    try:
        return await Rebuild(projection_class(name), pool=pool, registry=REGISTRY, chunk_size=500).run(
            dry_run=True
        )
    finally:
        await pool.close()
