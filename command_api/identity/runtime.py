"""The one dependency of the identity routes: everything login, refresh and registration use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from litestar import Request

from command_api.identity.credentials import Credentials
from command_api.identity.sessions import RefreshSessions
from command_api.identity.throttle import LoginThrottle
from command_api.runtime import CommandRuntime
from shared.auth.passwords import PasswordCheckBusy, PasswordService, Verification
from shared.auth.tokens import AccessTokenIssuer
from shared.http.client_address import ClientAddresses
from shared.http.problems import problem
from shared.ratelimit.admission import RouteLimits

BUSY_RETRY_AFTER_SECONDS: Final = 1


@dataclass(frozen=True, slots=True)
class IdentityRuntime:
    commands: CommandRuntime
    passwords: PasswordService
    credentials: Credentials
    sessions: RefreshSessions
    throttle: LoginThrottle
    issuer: AccessTokenIssuer
    addresses: ClientAddresses
    # Login, registration and refresh are anonymous: limited per client IP (None: no limits).
    anonymous_limits: RouteLimits | None = None

    async def admit_anonymous(self, request: Request[Any, Any, Any]) -> None:
        """Count the request against its client address's rate limit: 429 past it."""
        if self.anonymous_limits is not None:
            await self.anonymous_limits.admit_anonymous(request)

    def client_ip(self, request: Request[Any, Any, Any]) -> str:
        """The client's address, through trusted proxies."""
        return self.addresses.text_of(request.scope)

    async def hash_password(self, password: str) -> str:
        try:
            return await self.passwords.hash(password)
        except PasswordCheckBusy as busy:
            raise _busy() from busy

    async def verify_password(self, stored_hash: str | None, password: str) -> Verification:
        try:
            return await self.passwords.verify(stored_hash, password)
        except PasswordCheckBusy as busy:
            raise _busy() from busy

    async def throttled_verify(
        self, throttle_key: str, ip: str, stored_hash: str | None, password: str
    ) -> Verification:
        """Verify a password under the login throttle: 429 past the limits.

        The attempt counts as a failure before the check runs, so concurrent
        guesses cannot all slip under the limit; a success clears the count,
        and an error before a verdict gives the attempt back.
        """
        wait = await self.throttle.reserve(throttle_key, ip)
        if wait is not None:
            raise problem(
                429,
                "Too many failed attempts; try again later.",
                type_="/problems/login-throttled",
                headers={"Retry-After": str(wait)},
            )
        try:
            checked = await self.verify_password(stored_hash, password)
        except Exception:
            await self.throttle.cancel(throttle_key, ip)
            raise
        if checked.ok:
            await self.throttle.record_success(throttle_key, ip)
        return checked


def _busy() -> Exception:
    return problem(
        503,
        "Too many password checks are running; retry shortly.",
        type_="/problems/busy",
        headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
    )
