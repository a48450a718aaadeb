"""Decides whether a subject may make one more request, with few round trips to Redis.

Three things keep Redis off the hot path:

- Leases. A call takes a few tokens at once (as many as the subject used of
  its last lease, doubling while it uses them up, at most `lease_max`, and
  fewer as the bucket runs low; see buckets.py) and the process spends the
  spare ones on the subject's next requests. A lease lapses after `lease_seconds`; what is
  left of it goes back to Redis with the next call. Bound: every token is
  taken from the bucket in Redis before it is spent, and spent at most
  `lease_seconds` later, so within any interval a subject gets at most
  `rate * lease_seconds` more than its policy allows (the refill of the
  time a token may be held), however many processes there are. And while
  Redis still has tokens, one process may refuse a subject while another
  holds spare tokens of it. Near the limit leases shrink to one token, so the
  count at the limit is exact.
- One call at a time per subject and process: requests that arrive while
  one is on its way wait for its lease instead of each leasing tokens.
- Remembered refusals. A refused subject is refused locally until Redis said
  a token would be back, counting the refusals, which go to Redis with the
  next call (they feed the abuse block). A flood costs one round trip per
  process per token.

When Redis fails or is slow, a circuit breaker stops asking it, and the route
class's fail mode decides: `local` buckets in this process, `closed` (503) or
`open` (no limit).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

import structlog
from circuitbreaker import CircuitBreaker, CircuitBreakerError
from redis.exceptions import RedisError

from shared.ratelimit.buckets import BucketAnswer, RedisBuckets
from shared.ratelimit.decisions import DECIDED
from shared.ratelimit.local_buckets import LocalBuckets
from shared.ratelimit.policies import FailMode, Policy, RouteClass

Outcome = Literal["allowed", "refused", "blocked", "unavailable"]

_REDIS_TROUBLE: Final = (RedisError, OSError, TimeoutError, CircuitBreakerError)
_log = structlog.get_logger("ratelimit")


class Decision(NamedTuple):
    # A tuple, not a dataclass: one is built per request, and a tuple is built in C.
    outcome: Outcome
    remaining: int
    reset_seconds: float
    retry_after_seconds: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.outcome == "allowed"


@dataclass(slots=True)
class _Subject:
    """What this process knows of one subject's bucket between calls."""

    spare: int = 0
    lease_until: float = 0.0
    leased: int = 0  # the size of the last lease
    remaining: int = 0  # in Redis, at the last answer
    reset_at: float = 0.0
    refused_until: float = 0.0
    blocked: bool = False
    refused: int = 0  # refusals not yet reported to Redis
    asking: asyncio.Future[None] | None = None  # the call to Redis on its way, if one is


class RateLimiter:
    def __init__(
        self,
        buckets: RedisBuckets,
        breaker: CircuitBreaker,
        *,
        lease_max: int = 256,
        lease_seconds: float = 1.0,
        max_subjects: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._buckets = buckets
        self._take = breaker.decorate(buckets.take)
        self._breaker = breaker
        self._local = LocalBuckets(max_subjects=max_subjects, clock=clock)
        self._lease_max = max(1, lease_max)
        self._lease_seconds = lease_seconds
        self._subjects: OrderedDict[tuple[str, RouteClass], _Subject] = OrderedDict()
        self._max_subjects = max_subjects
        self._clock = clock

    def check_now(self, subject: str, route_class: RouteClass) -> Decision | None:
        """The decision this process makes alone, with no await: a leased token spent or a
        refusal still running; None when Redis must be asked (`check`)."""
        known = self._subjects.get((subject, route_class))
        return None if known is None else self._local_decision(route_class, known, self._clock())

    async def check(
        self, subject: str, route_class: RouteClass, policy: Policy, fail_mode: FailMode
    ) -> Decision:
        """Count one request of `subject` against `policy`."""
        known = self._known((subject, route_class))
        while (decision := self._local_decision(route_class, known, self._clock())) is None:
            if known.asking is None:
                break
            # A call for this subject is on its way: share its lease (or its refusal) rather than
            # ask too; concurrent calls would each lease tokens that the others' requests never use.
            await asyncio.shield(known.asking)
        if decision is not None:
            return decision
        asking = known.asking = asyncio.get_running_loop().create_future()
        want = self._next_lease(known, self._clock())
        giveback, known.spare = known.spare, 0
        refused, known.refused = known.refused, 0
        try:
            answer = await self._take(
                subject, route_class, policy, want=want, giveback=giveback, refused=refused
            )
        except _REDIS_TROUBLE as error:
            if not isinstance(error, CircuitBreakerError):
                _log.warning("rate limits unavailable", fail_mode=fail_mode, error=repr(error))
            return self._degraded(subject, route_class, policy, fail_mode)
        finally:
            known.asking = None
            asking.set_result(None)
        return self._settle(route_class, known, answer, self._clock())

    def _known(self, key: tuple[str, RouteClass]) -> _Subject:
        known = self._subjects.get(key)
        if known is None:
            known = self._subjects[key] = _Subject()
            if len(self._subjects) > self._max_subjects:
                self._subjects.popitem(last=False)
        return known

    def _next_lease(self, known: _Subject, now: float) -> int:
        """As many tokens as the subject used of its last lease while it lasted: twice the last
        lease when it ran out early, what was spent when it lapsed. A busy subject soon leases
        `lease_max` at a time; a quiet one leases what it uses, and strands no tokens."""
        if now < known.lease_until:  # spent before it lapsed
            return min(self._lease_max, 2 * known.leased)
        return max(1, known.leased - known.spare)

    def _local_decision(self, route_class: RouteClass, known: _Subject, now: float) -> Decision | None:
        if now < known.refused_until:
            known.refused += 1
            return self._refusal(route_class, known, now, "remembered")
        if known.spare > 0 and now < known.lease_until:
            known.spare -= 1
            self._count(route_class, "allowed", "lease")
            return Decision("allowed", known.remaining + known.spare, known.reset_at - now)
        return None

    @staticmethod
    def _count(route_class: RouteClass, outcome: Outcome, source: str) -> None:
        DECIDED[route_class, outcome, source] += 1

    def _settle(self, route_class: RouteClass, known: _Subject, answer: BucketAnswer, now: float) -> Decision:
        known.remaining = answer.remaining
        known.reset_at = now + answer.reset_seconds
        if answer.granted > 0:
            known.leased = answer.granted
            known.spare += answer.granted - 1
            known.lease_until = now + self._lease_seconds
            known.refused_until = 0.0
            self._count(route_class, "allowed", "redis")
            return Decision("allowed", answer.remaining + known.spare, answer.reset_seconds)
        known.blocked = answer.blocked_seconds > 0
        known.refused_until = now + max(answer.wait_seconds, answer.blocked_seconds)
        known.refused += 1
        return self._refusal(route_class, known, now, "redis")

    def _refusal(self, route_class: RouteClass, known: _Subject, now: float, source: str) -> Decision:
        outcome: Outcome = "blocked" if known.blocked else "refused"
        self._count(route_class, outcome, source)
        return Decision(outcome, 0, known.reset_at - now, known.refused_until - now)

    def _degraded(
        self, subject: str, route_class: RouteClass, policy: Policy, fail_mode: FailMode
    ) -> Decision:
        if fail_mode == "open":
            self._count(route_class, "allowed", "open")
            return Decision("allowed", policy.quota, 0.0)
        if fail_mode == "closed":
            self._count(route_class, "unavailable", "closed")
            return Decision("unavailable", 0, 0.0, max(1.0, self._breaker_seconds_left()))
        answer = self._local.take(subject, route_class, policy)
        outcome: Outcome = "allowed" if answer.granted else "refused"
        self._count(route_class, outcome, "local")
        return Decision(outcome, answer.remaining, answer.reset_seconds, answer.wait_seconds)

    def _breaker_seconds_left(self) -> float:
        return float(self._breaker.open_remaining) if self._breaker.opened else 0.0

    async def peek(self, subject: str, route_class: RouteClass, policy: Policy) -> BucketAnswer:
        """The subject's bucket in Redis, unchanged (for operators)."""
        return await self._buckets.take(subject, route_class, policy, want=0)
