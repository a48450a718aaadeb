"""What the OpenAPI documents say of every `/v1` route beyond its own decorator.

- Its request body and its success answer: the routes read their bodies and
  encode their answers themselves (msgspec, with problems naming the field),
  so litestar cannot see them; a route names the types in
  `opt={REQUEST_BODY: T, ANSWER: U}`, and the documents get their schemas,
  with the example each type carries as `example` (a ClassVar; a unit test
  proves every example decodes into its type). A 204 documents no body.

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
from litestar.enums import ParamType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)

from shared.http.problems import PROBLEM_MEDIA_TYPE

SECURED: Final[list[dict[str, list[str]]]] = [{"BearerToken": []}, {"ApiKey": []}]
REQUEST_BODY: Final = "request_body"  # the opt key naming a route's body type
ANSWER: Final = "answer"  # the opt key naming a route's success answer type
PARAMETERS: Final = "parameters"  # the opt key listing a route's query parameters


@dataclass(frozen=True, slots=True)
class QueryParameter:
    """A query parameter a route reads itself, as the documents show it (never required)."""

    name: str
    description: str
    schema: Mapping[str, Any]  # JSON Schema


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
        describe_from_opt(handler)
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


def describe_from_opt(handler: HTTPRouteHandler) -> None:
    """Document the body, answer and query parameters a route names in its opt."""
    # Empty until a router resolves it, when the route leaves it to the default; MediaType is a str enum.
    media_type = str(getattr(handler.media_type, "value", handler.media_type)) or "application/json"
    handler.operation_class = _documented_operation(
        handler.opt.get(REQUEST_BODY),
        handler.opt.get(ANSWER),
        handler.status_code,
        handler.opt.get(PARAMETERS, ()),
        media_type,
    )


def body_schema(body: type[msgspec.Struct]) -> Schema | Reference:
    """The JSON schema msgspec makes of a body or answer type, inline, as litestar's objects.

    Inline because litestar rebuilds the components from what it generated itself; a nested type
    is inlined where it is used (tests/unit/test_openapi.py resolves every $ref).
    """
    schema = msgspec.json.schema(body)
    return _schema(_inlined(schema, schema.get("$defs", {})))


def example_of(documented: type[msgspec.Struct]) -> dict[str, Example | Reference] | None:
    example: Any = getattr(documented, "example", None)
    if example is None:
        return None
    return {"example": Example(value=example)}


def _inlined(schema: Any, definitions: Mapping[str, Any]) -> Any:
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inlined(definitions[schema["$ref"].rpartition("/")[2]], definitions)
        return {key: _inlined(value, definitions) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [_inlined(item, definitions) for item in schema]
    return schema


def _documented_operation(
    body: type[msgspec.Struct] | None,
    answer: type[msgspec.Struct] | None,
    status: int,
    query: Sequence[QueryParameter],
    media_type: str = "application/json",
) -> type[Operation]:
    body_content = (
        {"application/json": OpenAPIMediaType(schema=body_schema(body), examples=example_of(body))}
        if body is not None
        else None
    )
    answer_content = (
        {media_type: OpenAPIMediaType(schema=body_schema(answer), examples=example_of(answer))}
        if answer is not None
        else None
    )

    query_parameters: list[Parameter | Reference] = [
        Parameter(
            name=parameter.name,
            param_in=ParamType.QUERY,
            required=False,
            description=parameter.description,
            schema=_schema(parameter.schema),
        )
        for parameter in query
    ]

    @dataclass
    class Documented(Operation):
        def __post_init__(self) -> None:
            if query_parameters:
                self.parameters = [*(self.parameters or []), *query_parameters]
            if body_content is not None:
                self.request_body = RequestBody(content=body_content, required=True)
            success = (self.responses or {}).get(str(status))
            if isinstance(success, OpenAPIResponse):
                if status == HTTPStatus.NO_CONTENT:
                    success.content = None
                elif answer_content is not None:
                    success.content = answer_content

    return Documented


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
