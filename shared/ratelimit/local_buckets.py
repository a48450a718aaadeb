"""The same two algorithms in process memory: the fallback while Redis cannot answer.

Each process limits on its own then, so N processes let a subject through up
to N times its quota; that is the documented price of staying up (fail mode
`local`). State starts full, and is forgotten oldest first past `max_subjects`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from shared.ratelimit.buckets import BucketAnswer
from shared.ratelimit.policies import Policy, RouteClass


def token_bucket_take(tokens: float, elapsed_seconds: float, policy: Policy) -> tuple[float, BucketAnswer]:
    """One request against a bucket that held `tokens` `elapsed_seconds` ago: its new level and the answer."""
    rate = policy.rate_per_second
    tokens = min(float(policy.quota), tokens + max(0.0, elapsed_seconds) * rate)
    granted = 1 if tokens >= 1 - 1e-9 else 0
    tokens -= granted
    wait = 0.0 if tokens >= 1 - 1e-9 else (1 - tokens) / rate
    answer = BucketAnswer(granted, math.floor(tokens + 1e-9), wait, (policy.quota - tokens) / rate, 0.0)
    return tokens, answer


def gcra_take(tat: float, now: float, policy: Policy) -> tuple[float, BucketAnswer]:
    """One request at `now` against the theoretical arrival time `tat` (seconds): new tat, answer."""
    interval = policy.window_seconds / policy.quota
    tolerance = (policy.effective_burst - 1) * interval
    tat = max(tat, now)

    def room() -> int:
        return math.floor((tolerance - (tat - now)) / interval + 1e-9) + 1

    granted = 1 if room() >= 1 else 0
    tat += granted * interval
    left = max(0, room())
    wait = 0.0 if left >= 1 else tat - tolerance - now
    return tat, BucketAnswer(granted, left, wait, tat - now, 0.0)


class LocalBuckets:
    def __init__(self, *, max_subjects: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        # Per key: the token count or tat, and the time it was computed at.
        self._state: OrderedDict[tuple[str, RouteClass], tuple[float, float]] = OrderedDict()
        self._max = max_subjects
        self._clock = clock

    def take(self, subject: str, route_class: RouteClass, policy: Policy) -> BucketAnswer:
        now = self._clock()
        key = (subject, route_class)
        held = self._state.pop(key, None)
        if policy.algorithm == "token_bucket":
            level, at = held if held is not None else (float(policy.quota), now)
            value, answer = token_bucket_take(level, now - at, policy)
        else:
            value, answer = gcra_take(held[0] if held is not None else now, now, policy)
        self._state[key] = (value, now)
        if len(self._state) > self._max:
            self._state.popitem(last=False)
        return answer
