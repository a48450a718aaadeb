"""Who sent a request: a bearer access token or an `X-API-Key`, turned into a Principal.

A session (bearer token) may do everything its user may; an API key only
what its scopes allow, never with the admin role, and never identity work
such as creating more keys (`sessions_only`).
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from litestar import Request
from litestar.exceptions import NotAuthorizedException

from shared.auth.api_keys import MalformedApiKey, key_matches, lookup_prefix
from shared.auth.principal import Principal
from shared.auth.tokens import AccessTokenVerifier, InvalidToken
from shared.http.problems import problem
from shared.infrastructure.api_key_store import StoredApiKey

REALM: Final = 'Bearer realm="cqrs"'
API_KEY_HEADER: Final = "x-api-key"
# An API key acts as a plain user: admin power needs a login session.
API_KEY_ROLES: Final = frozenset({"user"})


class ApiKeyFinder(Protocol):
    async def find(self, lookup_prefix: str) -> StoredApiKey | None: ...


class PrincipalLimits(Protocol):
    async def admit_principal(self, request: Request[Any, Any, Any], principal: Principal) -> None: ...

    async def admit_anonymous(self, request: Request[Any, Any, Any]) -> None: ...


def _unauthorized(detail: str, error: str | None = None) -> NotAuthorizedException:
    challenge = REALM if error is None else f'{REALM}, error="{error}"'
    return NotAuthorizedException(detail=detail, headers={"WWW-Authenticate": challenge})


class Authenticator:
    """Finds the principal, then counts the request against its rate limit (when `limits` is set)."""

    def __init__(
        self,
        verifier: AccessTokenVerifier,
        api_keys: ApiKeyFinder | None = None,
        limits: PrincipalLimits | None = None,
    ) -> None:
        self._verifier = verifier
        self._api_keys = api_keys
        self._limits = limits

    async def authenticate(
        self, request: Request[Any, Any, Any], *, scope: str | None = None, sessions_only: bool = False
    ) -> Principal:
        """The request's principal; 401 without valid credentials, 403 when they may not do this,
        429 past its rate limit."""
        try:
            principal = await self._principal(request, scope=scope, sessions_only=sessions_only)
        except NotAuthorizedException:
            # Requests without valid credentials count against their address, where the route
            # class has a policy for anonymous clients: past it, 429 instead of another 401.
            if self._limits is not None:
                await self._limits.admit_anonymous(request)
            raise
        if self._limits is not None:
            await self._limits.admit_principal(request, principal)
        return principal

    async def _principal(
        self, request: Request[Any, Any, Any], *, scope: str | None, sessions_only: bool
    ) -> Principal:
        header = request.headers.get("authorization")
        if header:
            return self.bearer(header)
        key = request.headers.get(API_KEY_HEADER)
        if key is None or self._api_keys is None:
            raise _unauthorized("Authentication is required.")
        if sessions_only:
            raise problem(403, "This route needs a login session; an API key may not use it.")
        principal = await self._api_key(self._api_keys, key.strip())
        if scope is not None and not principal.allows(scope):
            raise problem(
                403, f"The API key lacks the scope '{scope}'.", type_="/problems/insufficient-scope"
            )
        return principal

    def bearer(self, header: str) -> Principal:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("Use 'Authorization: Bearer <access token>'.", "invalid_request")
        try:
            return self._verifier.verify(token.strip())
        except InvalidToken as exc:
            raise _unauthorized(str(exc).capitalize() + ".", "invalid_token") from exc

    async def _api_key(self, api_keys: ApiKeyFinder, key: str) -> Principal:
        try:
            prefix = lookup_prefix(key)
        except MalformedApiKey as exc:
            raise _unauthorized("The API key is invalid.", "invalid_token") from exc
        stored = await api_keys.find(prefix)
        if stored is None or stored.revoked or not key_matches(key, stored.key_hash):
            raise _unauthorized("The API key is invalid or revoked.", "invalid_token")
        return Principal(
            user_id=stored.user_id,
            roles=API_KEY_ROLES,
            tier=stored.tier,
            scopes=stored.scopes,
            api_key_id=stored.api_key_id,
        )
