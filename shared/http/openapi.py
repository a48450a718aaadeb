"""What the OpenAPI documents say of every `/v1` route beyond its own decorator.

- Every problem answer a route can give, as `application/problem+json` with
  an example: the ones any route may answer (bad input, authentication, rate
  limits, a dependency down) and the ones its API adds (a command's refusals).
- Its security: the bearer token or an API key, unless the route declares
  `security=[]` (register, login, refresh, logout are public). litestar adds a
  router's security to a route's, so a public route under a secured router
  would be documented as secured; set per route instead, it is exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Final

import msgspec
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from shared.http.problems import PROBLEM_MEDIA_TYPE

SECURED: Final[list[dict[str, list[str]]]] = [{"BearerToken": []}, {"ApiKey": []}]


class Problem(msgspec.Struct, kw_only=True):
    """An RFC 9457 problem: every error either API answers."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None


# Answers any /v1 route may give, whatever it does.
COMMON_PROBLEMS: Final = {
    400: "The body is not JSON, or a header (Idempotency-Key, Consistency-Token) is unusable.",
    422: "A field or parameter is invalid (named in `errors`).",
    429: "Past the rate limit (`Retry-After`, `RateLimit` and `RateLimit-Policy` say more).",
    503: "A dependency is unavailable, or rate limits cannot be checked; retry after `Retry-After`.",
}
PUBLIC_PROBLEMS: Final = {401: "The email, password or refresh token is wrong, spent or revoked."}
SECURED_PROBLEMS: Final = {
    401: "Missing or invalid credentials (`WWW-Authenticate` says which).",
    403: "The credentials may not do this (an API key's scope, a role), or the client address is refused.",
    404: "No such resource, or not yours.",
}


def problem_response(status: int, description: str) -> ResponseSpec:
    title = HTTPStatus(status).phrase
    example = {"type": "about:blank", "title": title, "status": status, "detail": description}
    return ResponseSpec(
        data_container=Problem,
        description=description,
        media_type=PROBLEM_MEDIA_TYPE,
        generate_examples=False,
        examples=[Example(summary=title, value=example)],
    )


def document_routes(
    handlers: Sequence[HTTPRouteHandler], extra_problems: Mapping[int, str] | None = None
) -> None:
    """Give each route handler its problem answers and its security, in place, before any router
    takes it (litestar copies a handler when a router registers it). Safe to repeat."""
    for handler in handlers:
        public = handler.security == []
        problems = {
            **COMMON_PROBLEMS,
            **(PUBLIC_PROBLEMS if public else SECURED_PROBLEMS),
            **(extra_problems or {}),
        }
        declared = dict(handler.responses or {})
        handler.responses = {
            **{status: problem_response(status, text) for status, text in problems.items()},
            **declared,
        }
        if not public:
            handler.security = SECURED
