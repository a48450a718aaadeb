"""How every GET of the query API answers: wait for a consistency token, then the cache, then ETag.

A route validates its input, decides who may see what (the `compute`
function filters by owner) and names the cache tags its answer depends on;
this module does the rest the same way for all of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from litestar import Request, Response

from query_api.runtime import QueryRuntime
from shared.auth.principal import Principal
from shared.cache.tags import reset_tag

CONSISTENCY_HEADER: Final = "consistency-token"
# Authenticated answers may be kept by the client, never by a shared cache;
# the ETag makes revalidation cheap.
_CACHE_CONTROL: Final = "private, no-cache"


async def cached_answer(
    request: Request[Any, Any, Any],
    runtime: QueryRuntime,
    principal: Principal,
    *,
    projection: str,
    query: Mapping[str, str],
    tags: Sequence[str],
    compute: Callable[[], Awaitable[bytes]],
) -> Response[bytes]:
    """The JSON answer to this GET, from the cache when its tags are unchanged.

    `query` is the request's validated, normalised parameters (part of the
    cache key with the path and the principal's scope); `compute` reads the
    read database and returns the encoded body, or raises a problem (never cached).
    """
    token = request.headers.get(CONSISTENCY_HEADER)
    if token:
        await runtime.waiter.wait(token, projection)
    answer = await runtime.cache.answer(
        route=request.url.path,
        query=query,
        scope=principal.scope_key,
        # The reset tag too: a rebuild's swap, or a projector that lost count, changes every answer.
        tags=[*tags, reset_tag(projection)],
        compute=compute,
        # A token's answer must come from the database once its wait is over.
        fresh=bool(token),
    )
    headers = {"ETag": answer.etag, "Cache-Control": _CACHE_CONTROL}
    if _matches(request.headers.get("if-none-match"), answer.etag):
        return Response(b"", status_code=304, headers=headers)
    return Response(answer.body, media_type="application/json", headers=headers)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {c.strip().removeprefix("W/") for c in if_none_match.split(",")}
    return "*" in candidates or etag in candidates
