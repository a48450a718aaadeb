"""Cache tags: how a projector tells the query cache which answers its commit made stale.

Each tag (`account:<id>`, `owner:<id>`, `user:<id>`, `projection:<name>`) has
a version key in Redis. A cached answer records the versions of its tags when
it was computed, and is served only while they are unchanged. Announcing a
tag sets its version to a fresh random token: never a counter, so a version
key that expired and was set again cannot match an old answer by chance.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from typing import Final

from redis.asyncio import Redis

# Longer than any cached answer lives: a missing version key also means "changed".
TAG_VERSION_TTL_SECONDS: Final = 7 * 24 * 3600


def tag_version_key(prefix: str, tag: str) -> str:
    return f"{prefix}tag:{tag}"


class TagAnnouncer:
    """Sets new versions for tags in one round trip (a pipeline without a transaction)."""

    def __init__(self, redis: Redis, *, key_prefix: str) -> None:
        self._redis = redis
        self._prefix = key_prefix

    async def announce(self, tags: Collection[str]) -> None:
        if not tags:
            return
        version = secrets.token_hex(8)
        async with self._redis.pipeline(transaction=False) as pipe:
            for tag in tags:
                pipe.set(tag_version_key(self._prefix, tag), version, ex=TAG_VERSION_TTL_SECONDS)
            await pipe.execute()
