"""The in-process tier of the answer cache: answers kept by key, dropped when a tag of theirs changes.

It sits in front of Redis and saves the round trip for hot answers. Entries
are dropped by the invalidations Redis sends (shared/cache/tracking.py) and
served only while tracking says they can be trusted. An answer is kept only
if none of its tags changed since its Redis lookup began: the same
stale-set rule as in Redis, counted here by invalidation sequence numbers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

# Tags whose last invalidation is remembered; beyond it, the memory is reset
# and lookups that began before the reset keep nothing.
_REMEMBERED_TAGS: Final = 100_000


class Trust(Protocol):
    @property
    def usable(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class _Kept:
    body: bytes
    etag: str
    tag_keys: tuple[bytes, ...]
    expires_at: float


class LocalAnswers:
    def __init__(self, *, max_entries: int, ttl_seconds: float) -> None:
        self._max = max_entries
        self._ttl = ttl_seconds
        self._trust: Trust | None = None
        self._kept: dict[str, _Kept] = {}
        self._keys_by_tag: dict[bytes, set[str]] = {}
        self._sequence = 0
        self._changed_at: dict[bytes, int] = {}
        self._floor = 0

    def trust(self, trust: Trust) -> None:
        self._trust = trust

    def get(self, key: str) -> tuple[bytes, str] | None:
        kept = self._kept.get(key)
        if kept is None or self._trust is None or not self._trust.usable:
            return None
        if kept.expires_at < time.monotonic():
            self._drop(key)
            return None
        return kept.body, kept.etag

    def mark(self) -> int:
        """Taken before a Redis lookup: what `keep` compares against."""
        return self._sequence

    def keep(self, key: str, body: bytes, etag: str, tag_keys: Sequence[str], since: int) -> None:
        """Keep an answer looked up since `since`, unless one of its tags changed meanwhile."""
        if self._trust is None or not self._trust.usable or since < self._floor:
            return
        encoded = tuple(tag.encode() for tag in tag_keys)
        if any(self._changed_at.get(tag, 0) > since for tag in encoded):
            return
        if key not in self._kept and len(self._kept) >= self._max:
            self._drop(next(iter(self._kept)))  # the oldest kept
        self._kept[key] = _Kept(body, etag, encoded, time.monotonic() + self._ttl)
        for tag in encoded:
            self._keys_by_tag.setdefault(tag, set()).add(key)

    def invalidate(self, tag_keys: list[bytes] | None) -> None:
        """Redis says these tag keys changed; None: anything may have (flush, lost tracking)."""
        self._sequence += 1
        if tag_keys is None:
            self._kept.clear()
            self._keys_by_tag.clear()
            self._changed_at.clear()
            self._floor = self._sequence
            return
        if len(self._changed_at) + len(tag_keys) > _REMEMBERED_TAGS:
            self._changed_at.clear()
            self._floor = self._sequence
        for tag in tag_keys:
            self._changed_at[tag] = self._sequence
            for key in self._keys_by_tag.pop(tag, ()):
                self._drop(key)

    def __len__(self) -> int:
        return len(self._kept)

    def _drop(self, key: str) -> None:
        kept = self._kept.pop(key, None)
        if kept is None:
            return
        for tag in kept.tag_keys:
            keys = self._keys_by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys_by_tag[tag]
