"""RFC 9457 problem details for every error either API answers.

Litestar's ProblemDetailsPlugin renders `ProblemDetailsException`; this module
turns every other HTTP error (routing 404/405, validation, size limits) and any
unhandled exception into one, so a client only ever parses one error shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

import asyncpg
import redis.exceptions
import sqlalchemy.exc
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
# "about:blank" says: no meaning beyond the HTTP status (RFC 9457 §4.2.1).
BLANK_TYPE: Final = "about:blank"
VALIDATION_TYPE: Final = "/problems/validation-error"

_log = structlog.get_logger("http.errors")


def problem(
    status: int,
    detail: str,
    *,
    type_: str = BLANK_TYPE,
    title: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ProblemDetailsException:
    """Build the exception that litestar renders as `application/problem+json`."""
    members: dict[str, Any] = dict(extra or {})
    if errors is not None:
        members["errors"] = [dict(error) for error in errors]
    return ProblemDetailsException(
        status_code=status,
        detail=detail,
        type_=type_,
        title=title or HTTPStatus(status).phrase,
        headers=headers,
        extra=members or None,
    )


def _field_errors(extra: Any) -> list[dict[str, str]]:
    if not isinstance(extra, list):
        return []
    errors = []
    for item in extra:
        if isinstance(item, Mapping):
            errors.append(
                {
                    "field": str(item.get("key") or ""),
                    "message": str(item.get("message", "")),
                }
            )
    return errors


def http_exception_to_problem(exc: HTTPException) -> ProblemDetailsException:
    if isinstance(exc, ValidationException):
        return problem(
            exc.status_code,
            exc.detail,
            type_=VALIDATION_TYPE,
            title="Invalid request",
            errors=_field_errors(exc.extra),
            headers=exc.headers,
        )
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else ""
    return problem(exc.status_code, detail, headers=exc.headers)


def unhandled_exception_to_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # The traceback goes to the log, never to the client.
    _log.exception("unhandled error", exc_type=type(exc).__name__)
    return problem(500, "The server failed to handle the request.").to_response(request)


# A server we depend on is away or overloaded: the request may succeed later.
# (For a command whose outcome is unknown, a retry with the same
# Idempotency-Key is safe: it either replays or executes once.)
DEPENDENCY_ERRORS: Final[tuple[type[Exception], ...]] = (
    OSError,  # includes ConnectionError and refused connections
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.InterfaceError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
RETRY_AFTER_SECONDS: Final = 2


def dependency_unavailable_to_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    _log.warning("dependency unavailable", exc_type=type(exc).__name__)
    return problem(
        503,
        "A service this API depends on is unavailable; retry later (with the same Idempotency-Key).",
        type_="/problems/service-unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    ).to_response(request)


def problem_details_plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(exception_to_problem_detail_map={HTTPException: http_exception_to_problem})
    )
