"""API keys as the write side stores them: found by lookup prefix, checked by hash."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID

import asyncpg

_FIND: Final = """
SELECT api_key_id, user_id, key_hash, scopes, tier, revoked_at IS NOT NULL AS revoked
  FROM api_keys WHERE lookup_prefix = $1
"""


@dataclass(frozen=True, slots=True)
class StoredApiKey:
    api_key_id: UUID
    user_id: UUID
    key_hash: bytes
    scopes: frozenset[str]
    revoked: bool
    tier: str = "free"


class ApiKeyStore:
    """Reads one indexed row per request that carries a key: a revoked key is refused at once."""

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout_seconds: float = 5.0) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout_seconds

    async def find(self, lookup_prefix: str) -> StoredApiKey | None:
        async with self._pool.acquire(timeout=self._acquire_timeout) as connection:
            row = await connection.fetchrow(_FIND, lookup_prefix)
        if row is None:
            return None
        return StoredApiKey(
            api_key_id=row["api_key_id"],
            user_id=row["user_id"],
            key_hash=bytes(row["key_hash"]),
            scopes=frozenset(row["scopes"]),
            revoked=row["revoked"],
            tier=row["tier"],
        )
