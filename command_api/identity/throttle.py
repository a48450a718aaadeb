"""Login throttling: after repeated failures for one account or from one IP, 429 until the window ends.

Counters live in Redis (shared by every API replica), one per account (a
hash of the normalised email, so no address sits in a key) and one per client
IP, each expiring a window after its first failure. This is separate from the
general rate limits: it counts failures, not requests. Redis errors propagate,
so login fails closed (503 with Retry-After) rather than unthrottled.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    window_seconds: int
    max_failures_per_account: int
    max_failures_per_ip: int


class LoginThrottle:
    def __init__(self, redis: Redis, policy: ThrottlePolicy, *, key_prefix: str) -> None:
        self._redis = redis
        self._policy = policy
        self._prefix = key_prefix + "login-failures:"

    def _account_key(self, email_key: str) -> str:
        return self._prefix + "account:" + hashlib.sha256(email_key.encode()).hexdigest()[:32]

    def _ip_key(self, ip: str) -> str:
        return self._prefix + "ip:" + ip

    async def retry_after(self, email_key: str, ip: str) -> int | None:
        """Seconds until a login may be tried again, or None when it may be tried now."""
        account, client = self._account_key(email_key), self._ip_key(ip)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in (account, client):
                pipe.get(key)
                pipe.pttl(key)
            account_count, account_ttl, ip_count, ip_ttl = await pipe.execute()
        waits = []
        if account_count is not None and int(account_count) >= self._policy.max_failures_per_account:
            waits.append(account_ttl)
        if ip_count is not None and int(ip_count) >= self._policy.max_failures_per_ip:
            waits.append(ip_ttl)
        if not waits:
            return None
        return max(1, math.ceil(int(max(waits)) / 1000))

    async def record_failure(self, email_key: str, ip: str) -> None:
        window = self._policy.window_seconds
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in (self._account_key(email_key), self._ip_key(ip)):
                pipe.incr(key)
                pipe.expire(key, window, nx=True)
            await pipe.execute()

    async def record_success(self, email_key: str) -> None:
        """A successful login clears the account's count (the IP's stays: one success proves little)."""
        await self._redis.delete(self._account_key(email_key))
