"""GET /v1/users/me: the caller's own user.

Served for now from the user's write-side state row (which a read replica
holds too); the `read.users` projection of the projections issue replaces
this source without changing the answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

import msgspec
from litestar import Request, Response, get
from litestar.di import NamedDependency

from contexts.identity.decider import User
from query_api.runtime import QueryRuntime
from shared.http.problems import problem

_ME: Final = """
SELECT s.state::text AS state, e.recorded_at AS created_at
  FROM aggregate_states s
  JOIN events e ON e.stream_id = s.stream_id AND e.version = 1
 WHERE s.stream_id = $1 AND s.stream_type = 'user'
"""
_user_decoder = msgspec.json.Decoder(User)
_json = msgspec.json.Encoder()


class UserAnswer(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    email: str
    display_name: str
    roles: tuple[str, ...]
    created_at: datetime


@get("/users/me", summary="The caller's user", operation_id="getMe", tags=["identity"])
async def me(request: Request[Any, Any, Any], runtime: NamedDependency[QueryRuntime]) -> Response[bytes]:
    principal = await runtime.authenticator.authenticate(request)
    async with runtime.pool.acquire(timeout=runtime.acquire_timeout_seconds) as connection:
        row = await connection.fetchrow(_ME, principal.user_id)
    if row is None:
        raise problem(404, "No such user.")
    user = _user_decoder.decode(row["state"].encode())
    answer = UserAnswer(
        user_id=user.user_id,
        email=user.email,
        display_name=user.display_name,
        roles=user.roles,
        created_at=row["created_at"],
    )
    return Response(
        _json.encode(answer), media_type="application/json", headers={"Cache-Control": "no-store"}
    )
