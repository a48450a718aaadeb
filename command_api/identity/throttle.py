"""Login throttling: after repeated failures for one account or from one IP, 429 until the window ends.

Counters live in Redis (shared by every API replica), one per account (a
hash of the normalised email, so no address sits in a key) and one per client
IP, each expiring a window after its first failure. This is separate from the
general rate limits: it counts failures, not requests. Redis errors propagate,
so login fails closed (503 with Retry-After) rather than unthrottled.

An attempt reserves its failure before the password is checked, in one
atomic step with the limit check (a Lua script): counting only after the
check would let a burst of concurrent guesses all pass the limit check at a
count of zero, so an attacker sending guesses at once got as many as he sent.
A success gives the reservation back (and clears the account's count); an
attempt that ends in an error before a verdict gives it back too.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

# KEYS: account counter, IP counter. ARGV: account limit, IP limit, window in seconds.
# Returns -1 when the attempt may go on (both counters incremented), else the
# milliseconds until the counter that is at its limit expires.
_RESERVE: Final = """
local wait = -1
for i = 1, 2 do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count >= tonumber(ARGV[i]) then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then ttl = tonumber(ARGV[3]) * 1000 end
    if ttl > wait then wait = ttl end
  end
end
if wait >= 0 then return wait end
for i = 1, 2 do
  redis.call('INCR', KEYS[i])
  if redis.call('PTTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[3]) end
end
return -1
"""
# KEYS: the counters whose reservation is given back. ARGV[1] = '1' clears the
# first of them instead (a success clears the account's count).
_RELEASE: Final = """
for i = 1, #KEYS do
  if i == 1 and ARGV[1] == '1' then
    redis.call('DEL', KEYS[i])
  elseif redis.call('EXISTS', KEYS[i]) == 1 and redis.call('DECR', KEYS[i]) <= 0 then
    redis.call('DEL', KEYS[i])
  end
end
return 0
"""


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    window_seconds: int
    max_failures_per_account: int
    max_failures_per_ip: int


class LoginThrottle:
    def __init__(self, redis: Redis, policy: ThrottlePolicy, *, key_prefix: str) -> None:
        self._policy = policy
        self._prefix = key_prefix + "login-failures:"
        self._reserve = redis.register_script(_RESERVE)
        self._release = redis.register_script(_RELEASE)

    def _account_key(self, email_key: str) -> str:
        return self._prefix + "account:" + hashlib.sha256(email_key.encode()).hexdigest()[:32]

    def _ip_key(self, ip: str) -> str:
        return self._prefix + "ip:" + ip

    async def reserve(self, email_key: str, ip: str) -> int | None:
        """Count this attempt as a failure until it is settled; None when it may go on, else the
        seconds until a login may be tried again (nothing is counted then)."""
        policy = self._policy
        wait = int(
            await self._reserve(
                keys=[self._account_key(email_key), self._ip_key(ip)],
                args=[policy.max_failures_per_account, policy.max_failures_per_ip, policy.window_seconds],
            )
        )
        if wait < 0:
            return None
        return max(1, math.ceil(wait / 1000))

    async def record_success(self, email_key: str, ip: str) -> None:
        """The password was right: the account's count is cleared, the IP's reservation given back
        (the IP's earlier failures stay: one success proves little)."""
        await self._release(keys=[self._account_key(email_key), self._ip_key(ip)], args=["1"])

    async def cancel(self, email_key: str, ip: str) -> None:
        """The attempt ended without a verdict (an error): give both reservations back."""
        await self._release(keys=[self._account_key(email_key), self._ip_key(ip)], args=["0"])
