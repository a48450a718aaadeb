"""Rate-limit policies as settings give them, and the headers that announce them.

A policy is a quota `q` per window `w` seconds, with an algorithm:

- `token_bucket`: a bucket of `q` tokens refilled at `q / w` per second; a
  burst may spend the whole bucket at once.
- `gcra` (a leaky bucket as the generic cell rate algorithm): requests are let
  through at `q / w` per second, at most `burst` of them at once.

Each route class (queries, commands, auth) has a policy per tier, and the auth
class one for anonymous clients, who are limited per IP address. The headers
follow draft-ietf-httpapi-ratelimit-headers-11: `RateLimit-Policy:
"free";q=600;w=60` and `RateLimit: "free";r=42;t=17`, where `r` is what is
left and `t` the seconds until the whole quota is back.
"""

from __future__ import annotations

import math
from typing import Annotated, Final, Literal

import msgspec

RouteClass = Literal["queries", "commands", "auth"]
Algorithm = Literal["token_bucket", "gcra"]
FailMode = Literal["local", "closed", "open"]

ANONYMOUS: Final = "anonymous"
DEFAULT_TIER: Final = "free"
TIERS: Final = ("free", "pro", "enterprise")

Quota = Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
WindowSeconds = Annotated[float, msgspec.Meta(gt=0, le=86_400)]
TierName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{1,32}$")]


class Policy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    algorithm: Algorithm = "token_bucket"
    quota: Quota
    window_seconds: WindowSeconds = 60.0
    # gcra only: how many requests may pass at once (1: strictly spaced). Unset: a tenth of the quota.
    burst: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] | None = None

    @property
    def rate_per_second(self) -> float:
        return self.quota / self.window_seconds

    @property
    def effective_burst(self) -> int:
        """The most requests let through at once: the bucket for token_bucket, `burst` for gcra."""
        if self.algorithm == "token_bucket":
            return self.quota
        return self.burst if self.burst is not None else max(1, self.quota // 10)


class RouteClassLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The policies of one route class: per tier for principals, and per IP for anonymous clients."""

    tiers: dict[TierName, Policy] = {}
    anonymous: Policy | None = None
    # What happens while Redis cannot answer: `local` limits with a bucket in each process
    # (so N processes let through up to N times the quota), `closed` answers 503, `open` no limit.
    on_redis_failure: FailMode = "local"

    def __post_init__(self) -> None:
        if self.tiers and DEFAULT_TIER not in self.tiers:
            raise ValueError(f"the tiers need a '{DEFAULT_TIER}' policy, used for any tier not listed")

    def for_tier(self, tier: str) -> tuple[str, Policy] | None:
        """The tier's policy and its name; an unknown tier gets the default tier's."""
        policy = self.tiers.get(tier)
        if policy is not None:
            return tier, policy
        default = self.tiers.get(DEFAULT_TIER)
        return (DEFAULT_TIER, default) if default is not None else None


def _tiers(free: int, pro: int, enterprise: int, algorithm: Algorithm = "token_bucket") -> dict[str, Policy]:
    return {
        name: Policy(algorithm=algorithm, quota=quota, window_seconds=60.0)
        for name, quota in zip(TIERS, (free, pro, enterprise), strict=True)
    }


# Per minute. Reads are cheap and bursty (a page loads several at once): token buckets.
DEFAULT_QUERY_LIMITS: Final = RouteClassLimits(tiers=_tiers(600, 3_000, 12_000), on_redis_failure="local")
# Writes cost a transaction each: let through at a steady rate, a tenth of the minute at once.
DEFAULT_COMMAND_LIMITS: Final = RouteClassLimits(
    tiers=_tiers(120, 600, 3_000, algorithm="gcra"), on_redis_failure="local"
)
# Login, registration and refresh, per client IP. Without Redis they are refused rather than
# unlimited: these are the routes a password-guessing flood aims at.
DEFAULT_AUTH_LIMITS: Final = RouteClassLimits(
    anonymous=Policy(algorithm="token_bucket", quota=30, window_seconds=60.0), on_redis_failure="closed"
)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def policy_header(name: str, policy: Policy) -> bytes:
    """The `RateLimit-Policy` value of one policy."""
    return f'"{name}";q={policy.quota};w={_number(policy.window_seconds)}'.encode()


def _whole_seconds(seconds: float) -> int:
    # Rounded up, but not past float noise: a 120 s wait computed as 120.0000000000009 is 120.
    return math.ceil(seconds - 1e-6)


def limit_header(name: str, remaining: int, reset_seconds: float) -> bytes:
    """The `RateLimit` value: what is left and the whole seconds until all of it is back."""
    return f'"{name}";r={max(0, remaining)};t={max(0, _whole_seconds(reset_seconds))}'.encode()


def retry_after(wait_seconds: float) -> str:
    """`Retry-After` in whole seconds, never 0: a client told 0 would retry at once and be refused."""
    return str(max(1, _whole_seconds(wait_seconds)))
