"""Consistency-token waits on real PostgreSQL: woken by a projector commit, bounded, never a tight loop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from litestar.plugins.problem_details import ProblemDetailsException

from projectors import checkpoints
from shared.consistency import encode_token
from shared.projections.consistency_wait import ConsistencyWaiter
from shared.projections.progress import ProgressListener
from tests.integration.relay.helpers import wait_until

ACCOUNT = uuid.UUID("01930000-0000-7000-8000-000000000001")
USER = uuid.UUID("01930000-0000-7000-8000-000000000002")


@dataclass
class Setup:
    pool: asyncpg.Pool
    waiter: ConsistencyWaiter
    checks: list[float]  # when each check of the read model began
    answered: list[float]  # when each check that has returned began

    async def project(self, version: int) -> None:
        """What a projector batch does: its versions and its checkpoint in one transaction."""
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "INSERT INTO read.accounts_streams (stream_id, version) VALUES ($1, $2) "
                "ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version",
                ACCOUNT,
                version,
            )
            await checkpoints.advance(
                connection,
                "accounts",
                stream_sequence=version,
                position=version,
                last_event_at=None,
                pending_tags=(),
            )


@pytest.fixture
async def setup(database_url: str) -> AsyncIterator[Setup]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4, timeout=10)
    await pool.execute(
        "INSERT INTO aggregate_states (stream_id, stream_type, version, state) VALUES "
        "($1, 'account', 3, '{}'), ($2, 'user', 1, '{}')",
        ACCOUNT,
        USER,
    )
    await pool.execute(
        "INSERT INTO projection_checkpoints (projection, stream_types) VALUES ('accounts', '{account}')"
    )
    listener = ProgressListener(database_url, connect_timeout_seconds=5)
    listener.start()
    waiter = ConsistencyWaiter(pool, listener, timeout_seconds=1.0, acquire_timeout_seconds=5)
    checks: list[float] = []
    answered: list[float] = []
    original = waiter._behind

    async def counted(projection: str, streams: dict[uuid.UUID, int]) -> bool:
        began = time.monotonic()
        checks.append(began)
        behind = await original(projection, streams)
        answered.append(began)
        return behind

    waiter._behind = counted  # type: ignore[method-assign]
    try:
        yield Setup(pool, waiter, checks, answered)
    finally:
        await listener.close()
        await pool.close()


async def test_a_wait_ends_at_the_commit_that_reflects_the_write(setup: Setup) -> None:
    await setup.project(1)
    waiting = asyncio.create_task(setup.waiter.wait(encode_token({ACCOUNT: 3}), "accounts"))
    await setup.project(2)
    committed = time.monotonic()

    async def checked_since() -> bool:
        return any(began > committed for began in setup.answered)

    await wait_until(checked_since, 2.0, "the waiter looks again after the commit of version 2")
    assert not waiting.done()  # version 2 does not reflect a write that reached 3
    await setup.project(3)
    await asyncio.wait_for(waiting, 1.0)
    # Woken by notifications and a 100 ms re-check at most: a handful of checks, not a loop.
    assert len(setup.checks) <= 12


async def test_a_token_of_another_projections_streams_does_not_wait_here(setup: Setup) -> None:
    """A registration's token names a user stream: the accounts read model has nothing to wait for."""
    await setup.waiter.wait(encode_token({USER: 1}), "accounts")
    assert len(setup.checks) == 1


async def test_past_the_bound_503_with_retry_after_and_few_checks(setup: Setup) -> None:
    began = time.monotonic()
    with pytest.raises(ProblemDetailsException) as raised:
        await setup.waiter.wait(encode_token({ACCOUNT: 3}), "accounts")
    assert raised.value.status_code == 503
    assert raised.value.headers is not None
    assert raised.value.headers["Retry-After"] == "1"
    assert time.monotonic() - began >= 1.0
    assert len(setup.checks) <= 12  # one per 100 ms re-check, plus the first


async def test_an_unknown_stream_waits_as_if_the_replica_were_behind(setup: Setup) -> None:
    with pytest.raises(ProblemDetailsException) as raised:
        await setup.waiter.wait(encode_token({uuid.uuid4(): 1}), "accounts")
    assert raised.value.status_code == 503


async def test_a_forged_token_is_a_400(setup: Setup) -> None:
    with pytest.raises(ProblemDetailsException) as raised:
        await setup.waiter.wait("not-a-token", "accounts")
    assert raised.value.status_code == 400
