"""GET /v1/users/me: the caller's own user, from the `read.users` projection."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Final
from uuid import UUID

import msgspec
from litestar import Request, get

from query_api.answers import JsonAnswer, cached_answer
from query_api.pagination import query_values
from query_api.runtime import runtime_of
from shared.http.openapi import ANSWER
from shared.http.problems import problem

_ME: Final = "SELECT user_id, email, display_name, roles, created_at FROM read.users WHERE user_id = $1"
_json = msgspec.json.Encoder()


class UserAnswer(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {
        "user_id": "0192f5e1-2b3c-7d4e-8f5a-6b7c8d9e0f1a",
        "email": "ada@example.com",
        "display_name": "Ada",
        "roles": ["user"],
        "created_at": "2026-11-02T09:14:31Z",
    }

    user_id: UUID
    email: str
    display_name: str
    roles: tuple[str, ...]
    created_at: datetime


@get(
    "/users/me",
    summary="The caller's user",
    operation_id="getMe",
    tags=["identity"],
    opt={ANSWER: UserAnswer},
)
async def me(request: Request[Any, Any, Any]) -> JsonAnswer:
    runtime = runtime_of(request)
    principal = await runtime.authenticator.authenticate(request)
    query_values(request.query_params.multi_items(), ())

    async def compute() -> bytes:
        async with runtime.pool.acquire(timeout=runtime.acquire_timeout_seconds) as connection:
            row = await connection.fetchrow(_ME, principal.user_id)
        if row is None:
            # Also right after registration, until the projection has applied it:
            # a client that must see its write sends the Consistency-Token.
            raise problem(404, "No such user.")
        return _json.encode(
            UserAnswer(
                user_id=row["user_id"],
                email=row["email"],
                display_name=row["display_name"],
                roles=tuple(row["roles"]),
                created_at=row["created_at"],
            )
        )

    return await cached_answer(
        request,
        runtime,
        principal,
        projection="users",
        query={},
        tags=[f"user:{principal.user_id}"],
        compute=compute,
    )
