"""A route class's limits applied to a request: the subject, its policy, the headers or the refusal.

A principal is limited by its scope key (`user:<id>` or `key:<id>`) and the
policy of its tier; an anonymous client by its IP address. The headers go
into the request's state, and the request-context layer adds them to whatever
answer the request gets, refusals included.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request

from shared.auth.principal import Principal
from shared.http.client_address import ClientAddresses
from shared.http.problems import problem
from shared.http.request_context import RESPONSE_HEADERS
from shared.ratelimit.limiter import Decision, RateLimiter
from shared.ratelimit.policies import (
    ANONYMOUS,
    RouteClass,
    RouteClassLimits,
    limit_header,
    policy_header,
    retry_after,
)

POLICY_HEADER: Final = b"ratelimit-policy"
LIMIT_HEADER: Final = b"ratelimit"


class RouteLimits:
    def __init__(
        self,
        limiter: RateLimiter,
        route_class: RouteClass,
        limits: RouteClassLimits,
        addresses: ClientAddresses,
    ) -> None:
        self._limiter = limiter
        self._class: RouteClass = route_class
        self._limits = limits
        self._addresses = addresses
        # Header values of every policy, encoded once.
        self._policy_headers = {name: policy_header(name, policy) for name, policy in limits.tiers.items()}
        if limits.anonymous is not None:
            self._policy_headers[ANONYMOUS] = policy_header(ANONYMOUS, limits.anonymous)

    async def admit_principal(self, request: Request[Any, Any, Any], principal: Principal) -> None:
        """Count the request against the principal's tier; 429 (or 503) when it may not go on."""
        chosen = self._limits.for_tier(principal.tier)
        if chosen is None:
            return
        subject = principal.scope_key
        # Most requests are decided here without an await (a leased token): the hot path of a cached GET.
        decision = self._limiter.check_now(subject, self._class) or await self._limiter.check(
            subject, self._class, chosen[1], self._limits.on_redis_failure
        )
        self._answer(request, chosen[0], decision)

    async def admit_anonymous(self, request: Request[Any, Any, Any]) -> None:
        """Count the request against its client address."""
        policy = self._limits.anonymous
        if policy is None:
            return
        subject = "ip:" + self._addresses.text_of(request.scope)
        decision = await self._limiter.check(subject, self._class, policy, self._limits.on_redis_failure)
        self._answer(request, ANONYMOUS, decision)

    def _answer(self, request: Request[Any, Any, Any], name: str, decision: Decision) -> None:
        """The headers for the answer, or the refusal."""
        if decision.outcome == "unavailable":
            raise problem(
                503,
                "Rate limits cannot be checked right now; retry shortly.",
                type_="/problems/rate-limits-unavailable",
                headers={"Retry-After": retry_after(decision.retry_after_seconds)},
            )
        request.scope["state"].setdefault(RESPONSE_HEADERS, []).extend(
            (
                (POLICY_HEADER, self._policy_headers[name]),
                (LIMIT_HEADER, limit_header(name, decision.remaining, decision.reset_seconds)),
            )
        )
        if decision.outcome != "allowed":
            raise _refusal(decision)


def _refusal(decision: Decision) -> Exception:
    wait = retry_after(decision.retry_after_seconds)
    if decision.outcome == "blocked":
        detail = f"Too many requests refused; this client is blocked for {wait} s."
    else:
        detail = f"Rate limit reached; retry in {wait} s."
    return problem(429, detail, type_="/problems/rate-limited", headers={"Retry-After": wait})
