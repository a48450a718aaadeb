"""How every GET of the query API answers: wait for a consistency token, then the cache, then ETag.

A route validates its input, decides who may see what (the `compute`
function filters by owner) and names the cache tags its answer depends on;
this module does the rest the same way for all of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from litestar import Request
from litestar.types import Receive, Scope, Send

from query_api.runtime import QueryRuntime
from shared.auth.principal import Principal
from shared.cache.tags import reset_tag

CONSISTENCY_HEADER: Final = "consistency-token"
# Routes whose answers are always smaller than this carry this opt and skip the
# compression middleware while its minimum size is at least as large: it would
# compress nothing, and deciding that costs ~15 µs of a cached GET's ~100.
SMALL_ANSWER_OPT: Final = "small_answer"
SMALL_ANSWER_MAX_BYTES: Final = 1024
# Authenticated answers may be kept by the client, never by a shared cache;
# the ETag makes revalidation cheap.
_CACHE_CONTROL: Final = b"private, no-cache"


async def cached_answer(
    request: Request[Any, Any, Any],
    runtime: QueryRuntime,
    principal: Principal,
    *,
    projection: str,
    query: Mapping[str, str],
    tags: Sequence[str],
    compute: Callable[[], Awaitable[bytes]],
) -> JsonAnswer:
    """The JSON answer to this GET, from the cache when its tags are unchanged.

    `query` is the request's validated, normalised parameters (part of the
    cache key with the path and the principal's scope); `compute` reads the
    read database and returns the encoded body, or raises a problem (never cached).
    """
    token = request.headers.get(CONSISTENCY_HEADER)
    if token:
        await runtime.waiter.wait(token, projection)
    answer = await runtime.cache.answer(
        # The scope's path, not request.url: building a URL object costs a cached GET 2% of its CPU.
        route=request.scope["path"],
        query=query,
        scope=principal.scope_key,
        # The reset tag too: a rebuild's swap, or a projector that lost count, changes every answer.
        tags=[*tags, reset_tag(projection)],
        compute=compute,
        # A token's answer must come from the database once its wait is over.
        fresh=bool(token),
    )
    etag = answer.etag.encode("ascii")
    if _matches(request.headers.get("if-none-match"), answer.etag):
        return JsonAnswer(304, b"", [(b"etag", etag), (b"cache-control", _CACHE_CONTROL)])
    return JsonAnswer(
        200,
        answer.body,
        [
            (b"etag", etag),
            (b"cache-control", _CACHE_CONTROL),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(answer.body)).encode("ascii")),
        ],
    )


class JsonAnswer:
    """An answer sent as its two ASGI messages, the headers already encoded.

    A handler may return any ASGI app; litestar's Response would build and
    merge the same four headers through its header classes, which costs a cached
    GET about a sixth of its CPU. The header list is the answer's own, since
    middleware downstream may append to it.
    """

    __slots__ = ("_body", "_headers", "_status")

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self._status = status
        self._body = body
        self._headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self._status, "headers": self._headers})
        await send({"type": "http.response.body", "body": self._body, "more_body": False})


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {c.strip().removeprefix("W/") for c in if_none_match.split(",")}
    return "*" in candidates or etag in candidates
