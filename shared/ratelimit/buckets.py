"""The two limiting algorithms as atomic Redis Lua scripts, timed by Redis's own clock.

Every API process shares one bucket per (subject, route class) in Redis. A
script reads the time with `TIME`, so the processes' clocks never matter, and
runs atomically, so concurrent requests from many processes cannot both take
the last token.

A call may take more than one token (`want`): the limiter leases a few to its
process so that most requests are decided without a round trip. The script
grants fewer as the bucket runs low (never more than a `share`-th of what is
left, at least one), so near the limit each token is asked for on its own and
the count stays exact. Unspent tokens come back with the next call (`giveback`).

Abuse blocking: the refusals a process answered on its own since its last
call (`refused`) are added to a strike counter; once the strikes within one
window reach the limit, the subject is blocked for a while, and every call
answers "blocked" until that ends.

All keys of one subject share a hash tag (`{user:…}`), so a Redis Cluster keeps
them in one slot and one script may touch them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from shared.ratelimit.policies import Policy, RouteClass

# The leases a script grants are at most this share of what is left in the bucket.
LEASE_SHARE: Final = 4

# Shared head of both scripts. KEYS: bucket, strikes, block. ARGV[3..8]: want, giveback,
# refused, strike limit (0: no blocking), strike window ms, block ms. Sets `now` (ms, from
# Redis), `want`, `giveback` and `blocked` (ms left of a block, or -1).
_HEAD: Final = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local want = tonumber(ARGV[3])
local giveback = tonumber(ARGV[4])
local refused = tonumber(ARGV[5])
local strike_limit = tonumber(ARGV[6])
local blocked = redis.call('PTTL', KEYS[3])
if blocked <= 0 then blocked = -1 end
if blocked < 0 and refused > 0 and strike_limit > 0 then
  local strikes = redis.call('INCRBY', KEYS[2], refused)
  if strikes == refused then redis.call('PEXPIRE', KEYS[2], ARGV[7]) end
  if strikes >= strike_limit then
    redis.call('SET', KEYS[3], '1', 'PX', ARGV[8])
    redis.call('DEL', KEYS[2])
    blocked = tonumber(ARGV[8])
  end
end
local function lease(room)
  if blocked >= 0 or want < 1 or room < 1 then return 0 end
  return math.min(want, math.max(1, math.floor(room / tonumber(ARGV[9]))))
end
"""

# ARGV[1] capacity, ARGV[2] refill per ms. State: a hash of tokens (fractional) and the time of
# the last update. Returns {granted, remaining, wait ms until one token, ms until full, blocked ms}.
TOKEN_BUCKET: Final = (
    _HEAD
    + """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then tokens = capacity; at = now end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate + giveback)
local granted = lease(math.floor(tokens + 1e-9))
tokens = tokens - granted
if want > 0 or giveback > 0 then
  redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
  redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate) + 1000)
end
local wait = 0
if tokens < 1 - 1e-9 then wait = math.ceil((1 - tokens) / rate) end
return {granted, math.floor(tokens + 1e-9), wait, math.ceil((capacity - tokens) / rate), blocked}
"""
)

# ARGV[1] emission interval ms (window / quota), ARGV[2] tolerance ms ((burst - 1) * interval).
# State: the theoretical arrival time of the next request (ms). Same answer as above.
GCRA: Final = (
    _HEAD
    + """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
tat = math.max(tat - giveback * interval, now)
local function room() return math.floor((tolerance - (tat - now)) / interval + 1e-9) + 1 end
local granted = lease(math.max(0, room()))
tat = tat + granted * interval
if want > 0 or giveback > 0 then
  redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
end
local left = math.max(0, room())
local wait = 0
if left < 1 then wait = math.ceil(tat - tolerance - now) end
return {granted, left, wait, math.ceil(tat - now), blocked}
"""
)


@dataclass(frozen=True, slots=True)
class Abuse:
    """Block for `block_seconds` a subject refused `factor` times its quota within one window
    of its policy: a client that ignores `Retry-After` that much is flooding. 0: never block."""

    factor: float
    block_seconds: float

    def strike_limit(self, policy: Policy) -> int:
        return 0 if self.factor <= 0 else max(1, round(self.factor * policy.quota))


@dataclass(frozen=True, slots=True)
class BucketAnswer:
    granted: int
    remaining: int
    wait_seconds: float  # until one more request would be let through
    reset_seconds: float  # until the whole quota is back
    blocked_seconds: float  # what is left of an abuse block; 0 when not blocked


def bucket_keys(prefix: str, subject: str, route_class: RouteClass, policy: Policy) -> list[str]:
    """Bucket, strike counter and block flag of a subject, in one hash slot.

    The algorithm is part of the bucket's key: the two keep different state,
    and a policy that changes algorithm must not read the other's.
    """
    tag = f"{prefix}rl:{{{subject}}}:{route_class}"
    return [f"{tag}:{policy.algorithm}", f"{tag}:strikes", f"{tag}:block"]


def script_arguments(policy: Policy) -> tuple[float, float]:
    """The first two arguments of the policy's script."""
    if policy.algorithm == "token_bucket":
        return float(policy.quota), policy.quota / (policy.window_seconds * 1000)
    interval = policy.window_seconds * 1000 / policy.quota
    return interval, (policy.effective_burst - 1) * interval


class RedisBuckets:
    """Runs the scripts: one round trip per call, by SHA once Redis has the script."""

    def __init__(self, redis: Redis, *, key_prefix: str, abuse: Abuse) -> None:
        self._prefix = key_prefix
        self._abuse = abuse
        self._scripts = {
            "token_bucket": redis.register_script(TOKEN_BUCKET),
            "gcra": redis.register_script(GCRA),
        }

    async def take(
        self,
        subject: str,
        route_class: RouteClass,
        policy: Policy,
        *,
        want: int,
        giveback: int = 0,
        refused: int = 0,
    ) -> BucketAnswer:
        """Take up to `want` requests' worth (0: only look), returning `giveback` unspent ones first."""
        first, second = script_arguments(policy)
        abuse = self._abuse
        granted, remaining, wait_ms, reset_ms, blocked_ms = await self._scripts[policy.algorithm](
            keys=bucket_keys(self._prefix, subject, route_class, policy),
            args=[
                repr(first),
                repr(second),
                want,
                giveback,
                refused,
                abuse.strike_limit(policy),
                max(1, round(policy.window_seconds * 1000)),
                max(1, round(abuse.block_seconds * 1000)),
                LEASE_SHARE,
            ],
        )
        return BucketAnswer(
            granted=int(granted),
            remaining=int(remaining),
            wait_seconds=max(0, int(wait_ms)) / 1000,
            reset_seconds=max(0, int(reset_ms)) / 1000,
            blocked_seconds=max(0, int(blocked_ms)) / 1000,
        )
