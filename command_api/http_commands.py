"""The HTTP side of every command: body decoding, the command context, the answer.

Bodies are decoded here from the raw bytes (not by litestar) so that bad JSON
is a 400, a body that is JSON but not a valid command is a 422 naming the
field, and the exact bytes feed the idempotency fingerprint.
"""

from __future__ import annotations

import re
from typing import Any, Final, TypeVar

import msgspec
from litestar import Request, Response

from command_api.execution.executor import Answer, CommandContext
from command_api.execution.idempotency import (
    IDEMPOTENCY_HEADER,
    REPLAYED_HEADER,
    InvalidIdempotencyKey,
    fingerprint,
    parse_key,
)
from shared.http.problems import VALIDATION_TYPE, problem

CommandT = TypeVar("CommandT")

JSON_MEDIA_TYPE: Final = "application/json"
_FIELD_AT = re.compile(r"- at `\$\.?([^`]*)`")
_NAMED_FIELD = re.compile(r"field `([^`]+)`")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class EmptyBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of a command that takes no fields (none, or `{}`): it still refuses unknown ones."""


def _field_of(error: msgspec.ValidationError) -> str:
    message = str(error)
    at = _FIELD_AT.search(message)
    named = _NAMED_FIELD.search(message)
    if at and named:
        return f"{at.group(1)}.{named.group(1)}" if at.group(1) else named.group(1)
    if at:
        return at.group(1)
    return named.group(1) if named else ""


def _message_of(error: msgspec.ValidationError) -> str:
    return _FIELD_AT.sub("", str(error)).strip()


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == JSON_MEDIA_TYPE or media_type.endswith("+json")


def decode_body(body: bytes, content_type: str | None, decoder: msgspec.json.Decoder[CommandT]) -> CommandT:
    """The command in the body, or a problem: 415 not JSON, 400 malformed, 422 invalid."""
    if body and not _is_json(content_type or ""):
        raise problem(415, "Send the command as application/json.")
    try:
        return decoder.decode(body or b"{}")
    except msgspec.ValidationError as error:
        field = _field_of(error)
        raise problem(
            422,
            f"The command is invalid: {field or 'body'}: {_message_of(error)}.",
            type_=VALIDATION_TYPE,
            title="Invalid command",
            errors=[{"field": field, "message": _message_of(error)}],
        ) from error
    except msgspec.DecodeError as error:
        raise problem(400, f"The body is not valid JSON: {error}.") from error


async def read_command(
    request: Request[Any, Any, Any], decoder: msgspec.json.Decoder[CommandT]
) -> tuple[CommandT, bytes]:
    """The decoded command and the raw body it came from (for the fingerprint)."""
    body = await request.body()
    return decode_body(body, request.headers.get("content-type"), decoder), body


def command_context(
    request: Request[Any, Any, Any],
    scope_key: str,
    body: bytes,
    *,
    key_required: bool,
    traceparent: str | None = None,
) -> CommandContext:
    """Who asks (`scope_key`: a principal's, or anonymous), with which key and body."""
    try:
        key = parse_key(request.headers.get(IDEMPOTENCY_HEADER))
    except InvalidIdempotencyKey as error:
        raise problem(400, str(error)) from error
    if key is None and key_required:
        raise problem(400, "This route needs an Idempotency-Key header.")
    state = request.scope.get("state", {})
    return CommandContext(
        principal=scope_key,
        fingerprint=fingerprint(request.method, request.url.path, body),
        idempotency_key=key,
        correlation_id=str(state.get("correlation_id", "")),
        causation_id=str(state.get("request_id", "")),
        # The command's own span when tracing is on; else the client's, passed on.
        traceparent=traceparent or _valid_traceparent(request.headers.get("traceparent")),
    )


def _valid_traceparent(value: str | None) -> str | None:
    """A W3C traceparent, or nothing: a client's header goes into events and NATS headers."""
    return value if value is not None and _TRACEPARENT.match(value) else None


def to_response(answer: Answer) -> Response[bytes]:
    headers = dict(answer.headers)
    if answer.replayed:
        headers[REPLAYED_HEADER] = "true"
    media_type = headers.pop("Content-Type", JSON_MEDIA_TYPE)
    return Response(content=answer.body, status_code=answer.status, headers=headers, media_type=media_type)
