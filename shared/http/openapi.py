"""What the OpenAPI documents say of every `/v1` route beyond its own decorator.

- Its request body: the routes read their bodies themselves (msgspec, with
  problems naming the field), so litestar cannot see them; a route names its
  body type in `opt={REQUEST_BODY: T}`, and the documents get T's schema.

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
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import msgspec
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)

from shared.http.problems import PROBLEM_MEDIA_TYPE

SECURED: Final[list[dict[str, list[str]]]] = [{"BearerToken": []}, {"ApiKey": []}]
REQUEST_BODY: Final = "request_body"  # the opt key naming a route's body type
SCHEMA_REF: Final = "#/components/schemas/{name}"


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
    """Give each route handler its body, problem answers and security, in place, before any router
    takes it (litestar copies a handler when a router registers it). Safe to repeat."""
    for handler in handlers:
        if REQUEST_BODY in handler.opt:
            handler.operation_class = _operation_with_body(handler.opt[REQUEST_BODY])
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


def body_schema(body: type[msgspec.Struct]) -> Schema | Reference:
    """The JSON schema msgspec makes of a body type, inline, as litestar's objects.

    Inline because litestar rebuilds the components from what it generated itself; the bodies are
    flat Structs, so nothing in them refers elsewhere (tests/unit/test_openapi.py resolves every $ref).
    """
    _, components = msgspec.json.schema_components([body], ref_template=SCHEMA_REF)
    return _schema(components[body.__name__])


def _operation_with_body(body: type[msgspec.Struct]) -> type[Operation]:
    schema = body_schema(body)

    @dataclass
    class WithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=schema)}, required=True
            )

    return WithBody


_KEYWORDS: Final = {
    "anyOf": "any_of",
    "oneOf": "one_of",
    "allOf": "all_of",
    "minLength": "min_length",
    "maxLength": "max_length",
    "minItems": "min_items",
    "maxItems": "max_items",
    "uniqueItems": "unique_items",
    "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum",
    "multipleOf": "multiple_of",
    "additionalProperties": "additional_properties",
}


def _schema(schema: Mapping[str, Any]) -> Schema | Reference:
    """msgspec's JSON schema as litestar's objects (a keyword litestar lacks fails loudly)."""
    if "$ref" in schema:
        return Reference(ref=schema["$ref"])
    fields: dict[str, Any] = {}
    for key, value in schema.items():
        fields[_KEYWORDS.get(key, key)] = _converted(key, value)
    return Schema(**fields)


def _converted(key: str, value: Any) -> Any:
    if key == "properties":
        return {name: _schema(item) for name, item in value.items()}
    if key in ("anyOf", "oneOf", "allOf"):
        return [_schema(item) for item in value]
    if key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
        return _schema(value)
    if key == "type":
        return [OpenAPIType(item) for item in value] if isinstance(value, list) else OpenAPIType(value)
    return value
