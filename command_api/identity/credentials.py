"""Passwords as the write side keeps them: argon2id hashes by user, found through the email reservation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID

import asyncpg

from command_api.identity.users import decode_user
from contexts.identity.decider import User

_FIND_LOGIN: Final = """
SELECT c.user_id, c.password_hash, s.state::text AS state
  FROM email_reservations r
  JOIN user_credentials c ON c.user_id = r.user_id
  JOIN aggregate_states s ON s.stream_id = r.user_id
 WHERE r.email_key = $1
"""
_FIND_HASH: Final = "SELECT password_hash FROM user_credentials WHERE user_id = $1"
_REPLACE_HASH: Final = """
UPDATE user_credentials SET password_hash = $2, updated_at = now()
 WHERE user_id = $1 AND password_hash = $3
"""
_SET_HASH: Final = "UPDATE user_credentials SET password_hash = $2, updated_at = now() WHERE user_id = $1"
_REVOKE_ALL_FAMILIES: Final = """
UPDATE refresh_families SET revoked_at = now(), revoked_reason = $2
 WHERE user_id = $1 AND revoked_at IS NULL
"""


@dataclass(frozen=True, slots=True)
class LoginRecord:
    user_id: UUID
    password_hash: str
    user: User


class Credentials:
    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout_seconds: float = 5.0) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout_seconds

    async def find_login(self, email_key: str) -> LoginRecord | None:
        async with self._pool.acquire(timeout=self._acquire_timeout) as connection:
            row = await connection.fetchrow(_FIND_LOGIN, email_key)
        if row is None:
            return None
        return LoginRecord(row["user_id"], row["password_hash"], decode_user(row["state"].encode()))

    async def password_hash_of(self, user_id: UUID) -> str | None:
        async with self._pool.acquire(timeout=self._acquire_timeout) as connection:
            value: str | None = await connection.fetchval(_FIND_HASH, user_id)
        return value

    async def rehash(self, user_id: UUID, old_hash: str, new_hash: str) -> None:
        """Upgrade a hash made with older parameters, unless the password changed meanwhile."""
        async with self._pool.acquire(timeout=self._acquire_timeout) as connection:
            await connection.execute(_REPLACE_HASH, user_id, new_hash, old_hash)

    async def change_password(self, user_id: UUID, new_hash: str) -> None:
        """The new hash, and every refresh-token family of the user revoked, in one transaction."""
        async with self._pool.acquire(timeout=self._acquire_timeout) as connection, connection.transaction():
            await connection.execute(_SET_HASH, user_id, new_hash)
            await connection.execute(_REVOKE_ALL_FAMILIES, user_id, "password-change")
