"""Cache-aside for query answers in Redis, invalidated by versioned tags, free of the stale-set race.

An answer is stored with the versions its tags had BEFORE its rows were
read; it is served only while every tag still has that version. A projector
announces a new version only after its commit (shared/cache/tags.py), so:

- a reader that read old rows and stores them after the announcement stores
  them under the old versions, and nobody is ever served them (the race);
- a reader that begins after an announcement completed reads the new
  version, which no answer computed before the commit carries.

One lookup is one round trip: MGET of the answer and its tags' versions,
or none when the in-process tier (shared/cache/local.py) holds the answer.
Redis failing or slow (short timeouts, a circuit breaker) only bypasses the
cache: answers come from the database, correct and without a 5xx.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

import msgspec
import structlog
from circuitbreaker import CircuitBreaker, CircuitBreakerError
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.cache.local import LocalAnswers
from shared.cache.tags import tag_version_key

_log = structlog.get_logger("cache.answers")

LOOKUPS: Final = Counter(
    "cqrs_query_cache_lookups",
    "Query answers by how the cache took part: local_hit (in-process tier), hit (Redis), "
    "miss (computed and stored), bypass (Redis unavailable) or fresh (a consistency token "
    "asked for the database).",
    ["result"],
)
Lookup = Literal["local_hit", "hit", "miss", "bypass", "fresh"]
# Bound once: `labels()` on every answer showed in the hot path's profile.
_COUNTED: Final = {result: LOOKUPS.labels(result) for result in get_args(Lookup)}


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    body: bytes
    etag: str


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


class _Entry(msgspec.Struct, array_like=True, frozen=True):
    body: bytes
    etag: str
    # Each tag's version key as read before the rows were (None: never announced).
    versions: list[bytes | None]


_encode_entry = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(_Entry).decode
_REDIS_TROUBLE: Final = (RedisError, OSError, TimeoutError, CircuitBreakerError)


def answer_key(prefix: str, *, route: str, query: Mapping[str, str], scope: str) -> str:
    """The principal's scope is part of the key: one user's body is never another's."""
    normalised = urllib.parse.urlencode(sorted(query.items()))
    digest = hashlib.blake2b(f"{scope}\n{route}\n{normalised}".encode(), digest_size=20).hexdigest()
    return f"{prefix}answer:{digest}"


class AnswerCache:
    def __init__(
        self,
        redis: Redis,
        *,
        key_prefix: str,
        ttl_seconds: int,
        breaker: CircuitBreaker,
        local: LocalAnswers | None = None,
    ) -> None:
        self._redis = redis
        self._local = local
        self._prefix = key_prefix
        self._ttl = ttl_seconds
        # The breaker needs coroutine functions: redis-py's methods only return awaitables.
        self._mget = breaker.decorate(self._mget_now)
        self._set = breaker.decorate(self._set_now)

    async def answer(
        self,
        *,
        route: str,
        query: Mapping[str, str],
        scope: str,
        tags: Sequence[str],
        compute: Callable[[], Awaitable[bytes]],
        fresh: bool = False,
    ) -> CachedAnswer:
        if fresh:
            return await self._computed(compute, "fresh")
        key = answer_key(self._prefix, route=route, query=query, scope=scope)
        local = self._local
        since = 0
        if local is not None:
            kept = local.get(key)
            if kept is not None:
                _COUNTED["local_hit"].inc()
                return CachedAnswer(*kept)
            since = local.mark()
        tag_keys = [tag_version_key(self._prefix, tag) for tag in tags]
        try:
            stored, *versions = await self._mget([key, *tag_keys])
        except _REDIS_TROUBLE as error:
            self._trouble("lookup", error)
            return await self._computed(compute, "bypass")
        if stored is not None:
            entry = self._decoded(stored)
            if entry is not None and entry.versions == versions:
                _COUNTED["hit"].inc()
                if local is not None:
                    local.keep(key, entry.body, entry.etag, tag_keys, since)
                return CachedAnswer(entry.body, entry.etag)
        answer = await self._computed(compute, "miss")
        if local is not None:
            local.keep(key, answer.body, answer.etag, tag_keys, since)
        try:
            await self._set(key, _encode_entry(_Entry(answer.body, answer.etag, versions)), ex=self._ttl)
        except _REDIS_TROUBLE as error:
            self._trouble("store", error)
        return answer

    async def _mget_now(self, keys: list[str]) -> list[Any]:
        values: list[Any] = await self._redis.mget(keys)
        return values

    async def _set_now(self, key: str, value: bytes, ex: int) -> None:
        await self._redis.set(key, value, ex=ex)

    @staticmethod
    async def _computed(compute: Callable[[], Awaitable[bytes]], result: Lookup) -> CachedAnswer:
        body = await compute()
        _COUNTED[result].inc()
        return CachedAnswer(body, etag_of(body))

    @staticmethod
    def _decoded(stored: Any) -> _Entry | None:
        try:
            return _decode_entry(stored)
        except msgspec.DecodeError:
            return None  # written by another release: recomputed and overwritten

    def _trouble(self, step: str, error: BaseException) -> None:
        if not isinstance(error, CircuitBreakerError):
            _log.warning("query cache unavailable; answering from the database", step=step, error=repr(error))
