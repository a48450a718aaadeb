"""The in-process buckets (the `local` fail mode), on a clock the test moves."""

from __future__ import annotations

import pytest

from shared.ratelimit.local_buckets import LocalBuckets
from shared.ratelimit.policies import Policy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_spends_its_capacity_then_refills_at_the_rate() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock=clock)
    policy = Policy(quota=3, window_seconds=3)  # 1 token a second
    answers = [buckets.take("user:a", "queries", policy) for _ in range(4)]
    assert [answer.granted for answer in answers] == [1, 1, 1, 0]
    assert [answer.remaining for answer in answers] == [2, 1, 0, 0]
    assert answers[-1].wait_seconds == pytest.approx(1.0)
    assert answers[-1].reset_seconds == pytest.approx(3.0)
    clock.now += 1.0
    assert buckets.take("user:a", "queries", policy).granted == 1
    assert buckets.take("user:a", "queries", policy).granted == 0
    # Another subject, and another route class, have buckets of their own.
    assert buckets.take("user:b", "queries", policy).granted == 1
    assert buckets.take("user:a", "commands", policy).granted == 1


def test_gcra_lets_a_burst_through_then_spaces_requests_at_the_rate() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock=clock)
    policy = Policy(algorithm="gcra", quota=10, window_seconds=1, burst=3)  # one per 0.1 s
    granted = [buckets.take("user:a", "commands", policy).granted for _ in range(5)]
    assert granted == [1, 1, 1, 0, 0]
    refused = buckets.take("user:a", "commands", policy)
    assert refused.wait_seconds == pytest.approx(0.1)
    clock.now += 0.1
    assert [buckets.take("user:a", "commands", policy).granted for _ in range(2)] == [1, 0]
    clock.now += 1.0  # idle long enough: the whole burst is back, no more
    assert [buckets.take("user:a", "commands", policy).granted for _ in range(4)] == [1, 1, 1, 0]


def test_subjects_beyond_the_bound_are_forgotten_oldest_first() -> None:
    clock = Clock()
    buckets = LocalBuckets(max_subjects=2, clock=clock)
    policy = Policy(quota=1, window_seconds=60)
    for subject in ("a", "b", "c"):
        assert buckets.take(subject, "queries", policy).granted == 1
    assert buckets.take("a", "queries", policy).granted == 1  # forgotten: full again
    assert buckets.take("c", "queries", policy).granted == 0
