"""Refresh tokens: opaque, stored as SHA-256 hashes, one family per login, rotated on every use.

- A refresh spends its token and issues the next one of the same family.
- Presenting a spent token again is taken as theft (RFC 9700 §4.14.2): the
  whole family is revoked, so neither the thief nor the victim can go on.
  Of two concurrent refreshes with one token exactly one succeeds (the row
  lock of the spending UPDATE orders them) and the other counts as reuse.
- A family dies when unused for the idle time, at its lifetime in any case,
  on logout, and when its user's password changes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Final
from uuid import UUID

import asyncpg
from uuid_utils.compat import uuid7

from command_api.identity.users import decode_user
from contexts.identity.decider import User

TOKEN_PREFIX: Final = "rt_"  # noqa: S105 - marks a refresh token, is none

_NEW_FAMILY: Final = "INSERT INTO refresh_families (family_id, user_id) VALUES ($1, $2)"
_INSERT_REFRESH: Final = "INSERT INTO refresh_tokens (token_hash, family_id) VALUES ($1, $2)"
_SPEND: Final = """
UPDATE refresh_tokens t SET spent_at = now()
  FROM refresh_families f
 WHERE t.token_hash = $1 AND t.spent_at IS NULL
   AND f.family_id = t.family_id AND f.revoked_at IS NULL
   AND f.last_used_at > now() - $2::interval
   AND f.created_at > now() - $3::interval
RETURNING f.family_id, f.user_id
"""
_TOUCH: Final = "UPDATE refresh_families SET last_used_at = now() WHERE family_id = $1"
_USER_STATE: Final = "SELECT state::text FROM aggregate_states WHERE stream_id = $1"
_SPENT_FAMILY: Final = """
SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND spent_at IS NOT NULL
"""
_REVOKE_FAMILY: Final = """
UPDATE refresh_families SET revoked_at = now(), revoked_reason = $2
 WHERE family_id = $1 AND revoked_at IS NULL
"""
_LOGOUT: Final = """
UPDATE refresh_families f SET revoked_at = now(), revoked_reason = 'logout'
  FROM refresh_tokens t
 WHERE t.token_hash = $1 AND f.family_id = t.family_id AND f.revoked_at IS NULL
"""


class RefreshRefused(Exception):
    """The refresh token is unknown, spent, revoked or expired. The message is safe to show."""


@dataclass(frozen=True, slots=True)
class Renewal:
    user: User
    refresh_token: str


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_refresh_token() -> tuple[str, bytes]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


class RefreshSessions:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        idle: timedelta,
        lifetime: timedelta,
        acquire_timeout_seconds: float = 5.0,
    ) -> None:
        self._pool = pool
        self._idle = idle
        self._lifetime = lifetime
        self._acquire_timeout = acquire_timeout_seconds

    async def start(self, user_id: UUID) -> str:
        """A new family (one login) and its first refresh token."""
        token, token_hash = new_refresh_token()
        family_id = UUID(bytes=uuid7().bytes)
        async with self._pool.acquire(timeout=self._acquire_timeout) as connection, connection.transaction():
            await connection.execute(_NEW_FAMILY, family_id, user_id)
            await connection.execute(_INSERT_REFRESH, token_hash, family_id)
        return token

    async def rotate(self, token: str) -> Renewal:
        """Spend the token and issue the next of its family; a spent token revokes the family."""
        token_hash = hash_refresh_token(token)
        next_token, next_hash = new_refresh_token()
        async with self._pool.acquire(timeout=self._acquire_timeout) as connection:
            async with connection.transaction():
                spent = await connection.fetchrow(_SPEND, token_hash, self._idle, self._lifetime)
                if spent is not None:
                    await connection.execute(_INSERT_REFRESH, next_hash, spent["family_id"])
                    await connection.execute(_TOUCH, spent["family_id"])
                    state = await connection.fetchval(_USER_STATE, spent["user_id"])
            if spent is None:
                reused_family = await connection.fetchval(_SPENT_FAMILY, token_hash)
                if reused_family is not None:
                    await connection.execute(_REVOKE_FAMILY, reused_family, "reuse")
                    raise RefreshRefused("the refresh token was already used; the session is revoked")
                raise RefreshRefused("the refresh token is invalid or expired")
        return Renewal(user=decode_user(state.encode()), refresh_token=next_token)

    async def end(self, token: str) -> None:
        """Logout: revoke the token's family. Unknown tokens are ignored (nothing to reveal)."""
        async with self._pool.acquire(timeout=self._acquire_timeout) as connection:
            await connection.execute(_LOGOUT, hash_refresh_token(token))
