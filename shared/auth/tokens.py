"""Access tokens (RFC 9068 style JWTs): issued by the command API, verified by both APIs.

Verification pins the algorithm of the settings, requires every claim, picks
the key by the header's `kid` among configured keys only, and refuses
headers that point elsewhere for keys (`jku`, `x5u`, `jwk`, `x5c`): pyjwt
would not fetch them, but a token carrying them is an attack, not a client.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import jwt

from shared.auth.keys import KeySet
from shared.auth.principal import Principal

ACCESS_TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 - a JWT "typ" value (RFC 9068), not a secret
REQUIRED_CLAIMS: Final = ["exp", "iat", "sub", "iss", "aud", "jti"]
FOREIGN_KEY_HEADERS: Final = frozenset({"jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit"})
MAX_KID_LENGTH: Final = 128


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not for us. The message is safe to show."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int


class AccessTokenIssuer:
    """Signs access tokens with the key set's signing key (command API only)."""

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if keys.signing is None:
            raise ValueError("issuing tokens needs a signing key")
        self._signing = keys.signing
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds
        self._clock = clock

    def issue(self, user_id: UUID, roles: Iterable[str], tier: str = "free") -> IssuedToken:
        now = int(self._clock())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "iat": now,
            "exp": now + self._ttl,
            "jti": uuid.uuid4().hex,
            "roles": sorted(roles),
            "tier": tier,
        }
        token = jwt.encode(
            claims,
            self._signing.key,
            algorithm=self._signing.algorithm,
            headers={"typ": ACCESS_TOKEN_TYPE, "kid": self._signing.kid},
        )
        return IssuedToken(token=token, expires_in=self._ttl)


class AccessTokenVerifier:
    """Verifies access tokens, remembering the ones it verified until they expire.

    Verifying an Ed25519 signature costs about 0.1 ms of CPU, paid again by
    every request of a client. The cache is keyed by the whole token (its
    signature included), so only a byte-identical token hits, and expiry is
    checked again on every use.
    """

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds

    def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            principal, expires_at = cached
            if self._clock() <= expires_at + self._leeway:
                self._cache.move_to_end(token)
                return principal
            del self._cache[token]
            raise InvalidToken("the token has expired")
        principal, expires_at = self._verify_signature(token)
        self._cache[token] = (principal, expires_at)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    def _verify_signature(self, token: str) -> tuple[Principal, float]:
        try:
            key = self._key_for(jwt.get_unverified_header(token))
            claims = jwt.decode(
                token,
                key,
                algorithms=[self._keys.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS},
            )
            # pyjwt checks with its own clock; the cache above uses ours, so agree on it.
            if self._clock() > float(claims["exp"]) + self._leeway:
                raise InvalidToken("the token has expired")
            return _principal(claims), float(claims["exp"])
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            raise InvalidToken("the token is invalid") from exc

    def _key_for(self, header: dict[str, Any]) -> Any:
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidToken("not an access token")
        if FOREIGN_KEY_HEADERS & header.keys():
            raise InvalidToken("the token is invalid")
        kid = header.get("kid")
        if not isinstance(kid, str) or len(kid) > MAX_KID_LENGTH:
            raise InvalidToken("the token is invalid")
        key = self._keys.verification_key(kid)
        if key is None:
            raise InvalidToken("the token was signed with an unknown key")
        return key


def _principal(claims: dict[str, Any]) -> Principal:
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise InvalidToken("malformed roles claim")
    tier = claims.get("tier", "free")
    if not isinstance(tier, str):
        raise InvalidToken("malformed tier claim")
    return Principal(user_id=UUID(str(claims["sub"])), roles=frozenset(roles), tier=tier)
