"""What the relay tells operators: the outbox's backlog and age, what it published, whether it leads."""

from __future__ import annotations

from typing import Any, Final

import asyncpg
from prometheus_client import Counter, Gauge

# Counting a backlog larger than this is pointless work: the gauge then says "at least".
BACKLOG_COUNT_LIMIT: Final = 1_000_000

BACKLOG: Final = Gauge("cqrs_outbox_backlog", "Outbox rows not yet published (counted up to 1,000,000).")
OLDEST_AGE: Final = Gauge(
    "cqrs_outbox_oldest_age_seconds", "Age of the oldest event not yet published; 0 when the outbox is empty."
)
PUBLISHED: Final = Counter("cqrs_relay_published", "Events JetStream acknowledged.")
PUBLISH_ERRORS: Final = Counter(
    "cqrs_relay_publish_errors", "Events a round could not publish (kept in the outbox and retried)."
)
ACTIVE: Final = Gauge("cqrs_relay_active", "1 while this relay holds the lock and publishes; 0 standing by.")

_BACKLOG: Final = """
SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox LIMIT $1) o) AS backlog,
       (SELECT extract(epoch FROM now() - e.recorded_at) FROM events e
         WHERE e.global_position = (SELECT min(global_position) FROM outbox)) AS oldest_age
"""


async def outbox_lag(pool: asyncpg.Pool, acquire_timeout_seconds: float) -> dict[str, Any]:
    """The outbox's backlog and the age of its oldest event, also set on the gauges."""
    async with pool.acquire(timeout=acquire_timeout_seconds) as connection:
        row = await connection.fetchrow(_BACKLOG, BACKLOG_COUNT_LIMIT)
    backlog = int(row["backlog"]) if row is not None else 0
    oldest = max(0.0, float(row["oldest_age"] or 0.0)) if row is not None else 0.0
    BACKLOG.set(backlog)
    OLDEST_AGE.set(oldest)
    return {"outbox_backlog": backlog, "outbox_oldest_age_seconds": round(oldest, 3)}
