"""GET /v1/admin/projections: each projection's progress, for operators (admin only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import msgspec
from litestar import Request, Response, get

from query_api.runtime import runtime_of
from shared.http.openapi import ANSWER
from shared.http.problems import problem
from shared.projections.status import read_statuses

_json = msgspec.json.Encoder()


class ProjectionAnswer(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {
        "name": "accounts",
        "checkpoint": 48211,
        "pending": 3,
        "lag_seconds": 0.042,
        "status": "running",
        "halted_reason": None,
        "dead_letters": 0,
        "last_event_at": "2026-11-24T17:42:10Z",
    }

    name: str
    # The highest global position applied.
    checkpoint: int
    # Events in the store the projection has not applied yet, and the age of the oldest.
    pending: int
    lag_seconds: float
    status: str
    halted_reason: str | None
    dead_letters: int
    last_event_at: datetime | None


class ProjectionsAnswer(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {"items": [ProjectionAnswer.example]}

    items: list[ProjectionAnswer]


@get(
    "/admin/projections",
    summary="Projection status (admin)",
    operation_id="getProjections",
    tags=["operations"],
    opt={ANSWER: ProjectionsAnswer},
)
async def projections(request: Request[Any, Any, Any]) -> Response[bytes]:
    runtime = runtime_of(request)
    principal = await runtime.authenticator.authenticate(request)
    if not principal.is_admin:
        raise problem(403, "Only an admin may see projection status.", type_="/problems/forbidden")
    async with runtime.pool.acquire(timeout=runtime.acquire_timeout_seconds) as connection:
        statuses = await read_statuses(connection)
    answer = ProjectionsAnswer(
        items=[
            ProjectionAnswer(
                name=s.name,
                checkpoint=s.checkpoint,
                pending=s.lag_events,
                lag_seconds=round(s.lag_seconds, 3),
                status=s.state,
                halted_reason=s.halted_reason,
                dead_letters=s.dead_letters,
                last_event_at=s.last_event_at,
            )
            for s in statuses
        ]
    )
    return Response(
        _json.encode(answer), media_type="application/json", headers={"Cache-Control": "no-store"}
    )
