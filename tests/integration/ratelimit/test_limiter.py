"""The limiter against a real Redis: exact counts across processes, leases, smoothing, blocks, fail modes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from circuitbreaker import CircuitBreaker
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.infrastructure.redis import create_redis
from shared.ratelimit.buckets import Abuse, RedisBuckets
from shared.ratelimit.decisions import DECIDED
from shared.ratelimit.limiter import RateLimiter
from shared.ratelimit.policies import FailMode, Policy, retry_after

NO_BLOCKS = Abuse(factor=0, block_seconds=1)


class Clock:
    """The limiter's local clock (leases and remembered refusals); Redis keeps its own time."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


def breaker() -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=2, recovery_timeout=30, expected_exception=(RedisError, OSError, TimeoutError)
    )


@contextlib.asynccontextmanager
async def limiter_on(
    redis_url: str,
    prefix: str,
    *,
    lease_max: int = 16,
    abuse: Abuse = NO_BLOCKS,
    clock: Clock | None = None,
) -> AsyncIterator[RateLimiter]:
    """A limiter with a Redis client of its own, as each API process has."""
    redis = create_redis(redis_url, timeout_seconds=1.0, retries=0)
    try:
        yield RateLimiter(
            RedisBuckets(redis, key_prefix=prefix, abuse=abuse),
            breaker(),
            lease_max=lease_max,
            clock=clock or time.monotonic,
        )
    finally:
        await redis.aclose()


def decided(source: str, outcome: str = "allowed") -> float:
    return float(DECIDED["queries", outcome, source])


async def test_two_processes_under_twice_the_capacity_let_exactly_the_capacity_through(
    redis_url: str, redis_key_prefix: str
) -> None:
    policy = Policy(quota=40, window_seconds=3600)  # refills one token in 90 s: none during the test
    async with (
        limiter_on(redis_url, redis_key_prefix) as first,
        limiter_on(redis_url, redis_key_prefix) as second,
    ):
        decisions = await asyncio.gather(
            *(
                (first if n % 2 else second).check("user:a", "queries", policy, "closed")
                for n in range(2 * policy.quota)
            )
        )
    allowed = [decision for decision in decisions if decision.allowed]
    refused = [decision for decision in decisions if not decision.allowed]
    assert len(allowed) == policy.quota
    assert {decision.outcome for decision in refused} == {"refused"}
    # The next token is 90 s away, and the refusals say so.
    assert all(89 <= decision.retry_after_seconds <= 91 for decision in refused)


async def test_leases_answer_most_requests_without_redis_and_stay_exact_at_the_limit(
    redis_url: str, redis_key_prefix: str
) -> None:
    policy = Policy(quota=100, window_seconds=3600)
    from_redis, from_lease = decided("redis"), decided("lease")
    async with limiter_on(redis_url, redis_key_prefix, lease_max=16) as limiter:
        outcomes = [(await limiter.check("user:a", "queries", policy, "closed")).allowed for _ in range(150)]
    assert outcomes == [True] * 100 + [False] * 50
    redis_calls = decided("redis") - from_redis
    assert decided("lease") - from_lease == 100 - redis_calls
    # Leases shrink as the bucket runs low (a quarter of what is left), so the last
    # tokens are asked for one by one; still far fewer calls than requests.
    assert redis_calls <= 30


async def test_remaining_counts_this_process_s_spare_tokens(redis_url: str, redis_key_prefix: str) -> None:
    policy = Policy(quota=100, window_seconds=3600)
    async with limiter_on(redis_url, redis_key_prefix) as limiter:
        remaining = [(await limiter.check("user:a", "queries", policy, "closed")).remaining for _ in range(5)]
    assert remaining == [99, 98, 97, 96, 95]


async def test_a_lapsed_lease_gives_its_spare_tokens_back(redis_url: str, redis_key_prefix: str) -> None:
    policy = Policy(quota=100, window_seconds=3600)
    clock = Clock()
    async with limiter_on(redis_url, redis_key_prefix, lease_max=16, clock=clock) as limiter:
        for _ in range(4):
            await limiter.check("user:a", "queries", policy, "closed")
        leased = await limiter.peek("user:a", "queries", policy)
        clock.now += 5  # past the lease
        await limiter.check("user:a", "queries", policy, "closed")
        again = await limiter.peek("user:a", "queries", policy)
    # Leases of 1, 2 and 4 (each used up before it lapsed, so the next one doubled): 4 tokens
    # spent, 3 spare. After the lapse the 3 came back, and the next lease was the 1 used.
    assert leased.remaining == 100 - 1 - 2 - 4
    assert again.remaining == 100 - 5


async def test_leases_grow_while_used_up_and_shrink_to_what_was_used(
    redis_url: str, redis_key_prefix: str
) -> None:
    policy = Policy(quota=1_000, window_seconds=86_400)  # refills a token in 86 s: none meanwhile
    clock = Clock()
    async with limiter_on(redis_url, redis_key_prefix, lease_max=16, clock=clock) as limiter:
        levels = []
        for _ in range(1 + 2 + 4 + 8 + 16 + 16):
            await limiter.check("user:a", "queries", policy, "closed")
            levels.append(1_000 - (await limiter.peek("user:a", "queries", policy)).remaining)
        # Tokens taken from Redis: leases of 1, 2, 4, 8, 16, then the cap of 16.
        assert sorted(set(levels)) == [1, 3, 7, 15, 31, 47]
        for _ in range(3):  # a quiet spell: 3 requests, then the lease lapses
            await limiter.check("user:a", "queries", policy, "closed")
        clock.now += 5
        taken = 1_000 - (await limiter.peek("user:a", "queries", policy)).remaining
        await limiter.check("user:a", "queries", policy, "closed")
        after = 1_000 - (await limiter.peek("user:a", "queries", policy)).remaining
    # The 13 spare came back, and the new lease was the 3 used of the last one.
    assert after == taken - 13 + 3


async def test_gcra_smooths_a_burst_to_the_configured_rate(redis_url: str, redis_key_prefix: str) -> None:
    policy = Policy(algorithm="gcra", quota=20, window_seconds=1, burst=2)  # one every 50 ms
    async with limiter_on(redis_url, redis_key_prefix) as limiter:
        burst = await asyncio.gather(
            *(limiter.check("user:a", "queries", policy, "closed") for _ in range(30))
        )
        assert sum(decision.allowed for decision in burst) == 2
        # Keep asking far faster than the rate for a second: the passes come at the rate.
        started = time.monotonic()
        passed: list[float] = []
        while (elapsed := time.monotonic() - started) < 1.0:
            if (await limiter.check("user:a", "queries", policy, "closed")).allowed:
                passed.append(elapsed)
            await asyncio.sleep(0.005)  # pacing the load generator, not waiting for a condition
    assert 19 - 1 <= len(passed) <= 20 + 1
    gaps = [later - earlier for earlier, later in itertools.pairwise(passed)]
    # Spaced by the interval (a refused request is remembered until the next slot, so
    # the gaps cannot be shorter), allowing for this loop's own scheduling.
    assert min(gaps) >= 0.04


async def test_a_flood_far_past_the_quota_gets_the_subject_blocked_others_unaffected(
    redis_url: str, redis_key_prefix: str
) -> None:
    policy = Policy(quota=5, window_seconds=60)  # a token every 12 s
    abuse = Abuse(factor=2, block_seconds=120)  # 10 refusals within a minute: blocked
    clock = Clock()
    async with limiter_on(redis_url, redis_key_prefix, abuse=abuse, clock=clock) as limiter:
        flood = [await limiter.check("user:flood", "queries", policy, "closed") for _ in range(40)]
        assert [decision.outcome for decision in flood] == ["allowed"] * 5 + ["refused"] * 35
        # Refusals answered locally reach Redis with the next call, once the wait is over.
        assert (await limiter.peek("user:flood", "queries", policy)).blocked_seconds == 0
        clock.now += 13
        blocked = await limiter.check("user:flood", "queries", policy, "closed")
        assert blocked.outcome == "blocked"
        # Times on the monotonic clock carry float noise: 120 s may come out as 120.0000000000009.
        assert 119 <= blocked.retry_after_seconds <= 120 + 1e-6
        assert retry_after(blocked.retry_after_seconds) == "120"
        assert (await limiter.check("user:flood", "queries", policy, "closed")).outcome == "blocked"
        assert (await limiter.peek("user:flood", "queries", policy)).blocked_seconds > 100
        assert (await limiter.check("user:calm", "queries", policy, "closed")).allowed


@pytest.mark.parametrize(
    ("fail_mode", "expected"),
    [
        ("open", ["allowed"] * 4),
        ("closed", ["unavailable"] * 4),
        ("local", ["allowed"] * 2 + ["refused"] * 2),
    ],
)
async def test_without_redis_the_fail_mode_decides(fail_mode: FailMode, expected: list[str]) -> None:
    policy = Policy(quota=2, window_seconds=60)
    dead = create_redis("redis://127.0.0.1:9", timeout_seconds=0.2, retries=0)  # port 9: nothing listens
    limiter = RateLimiter(RedisBuckets(dead, key_prefix="x:", abuse=NO_BLOCKS), breaker())
    try:
        outcomes = [(await limiter.check("user:a", "queries", policy, fail_mode)).outcome for _ in range(4)]
    finally:
        await dead.aclose()
    assert outcomes == expected


async def test_keys_of_one_subject_share_a_hash_slot(redis_url: str, redis_key_prefix: str) -> None:
    policy = Policy(quota=1, window_seconds=60)
    abuse = Abuse(factor=1, block_seconds=60)
    clock = Clock()
    async with limiter_on(redis_url, redis_key_prefix, abuse=abuse, clock=clock) as limiter:
        for _ in range(3):
            await limiter.check("user:a", "queries", policy, "closed")
        clock.now += 120
        await limiter.check("user:a", "queries", policy, "closed")
    client = Redis.from_url(redis_url)
    try:
        keys = [key.decode() async for key in client.scan_iter(match=f"{redis_key_prefix}rl:*")]
    finally:
        await client.aclose()
    assert len(keys) >= 2
    assert {key[key.index("{") : key.index("}") + 1] for key in keys} == {"{user:a}"}
