"""What a projector process tells operators: per projection, how far behind it is and what it parked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import asyncpg
from prometheus_client import Counter, Gauge

from shared.projections.status import read_statuses

LAG_EVENTS: Final = Gauge(
    "cqrs_projection_lag_events", "Events in the store beyond the projection's checkpoint.", ["projection"]
)
LAG_SECONDS: Final = Gauge(
    "cqrs_projection_lag_seconds", "Age of the oldest event the projection has not applied.", ["projection"]
)
DEAD_LETTERS: Final = Gauge(
    "cqrs_projection_dead_letters", "Events parked by the projection and not dropped.", ["projection"]
)
HALTED: Final = Gauge(
    "cqrs_projection_halted", "1 while the projection is halted on a poison event.", ["projection"]
)
APPLIED: Final = Counter("cqrs_projection_events_applied", "Events the projection applied.", ["projection"])


async def projections_lag(
    pool: asyncpg.Pool, names: Sequence[str], acquire_timeout_seconds: float
) -> dict[str, Any]:
    """Each named projection's lag and dead letters (from the checkpoint rows), also set on the gauges."""
    async with pool.acquire(timeout=acquire_timeout_seconds) as connection:
        statuses = {status.name: status for status in await read_statuses(connection)}
    report: dict[str, Any] = {}
    for name in names:
        status = statuses.get(name)
        if status is None:  # not started yet: no checkpoint row
            report[name] = {"state": "starting"}
            continue
        LAG_EVENTS.labels(name).set(status.lag_events)
        LAG_SECONDS.labels(name).set(status.lag_seconds)
        DEAD_LETTERS.labels(name).set(status.dead_letters)
        HALTED.labels(name).set(1 if status.state == "halted" else 0)
        report[name] = {
            "state": status.state,
            "checkpoint": status.checkpoint,
            "lag_events": status.lag_events,
            "lag_seconds": round(status.lag_seconds, 3),
            "dead_letters": status.dead_letters,
        }
    return {"projections": report}
