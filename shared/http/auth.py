"""Litestar glue for authentication: the `principal` dependency of protected routes."""

from __future__ import annotations

from typing import Any, Final

from litestar import Request
from litestar.exceptions import NotAuthorizedException

from shared.auth.principal import Principal
from shared.auth.tokens import AccessTokenVerifier, InvalidToken

REALM: Final = 'Bearer realm="cqrs"'


def _unauthorized(detail: str, error: str | None = None) -> NotAuthorizedException:
    challenge = REALM if error is None else f'{REALM}, error="{error}"'
    return NotAuthorizedException(detail=detail, headers={"WWW-Authenticate": challenge})


def authenticate(request: Request[Any, Any, Any], verifier: AccessTokenVerifier) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("Authentication is required.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Use 'Authorization: Bearer <access token>'.", "invalid_request")
    try:
        return verifier.verify(token.strip())
    except InvalidToken as exc:
        raise _unauthorized(str(exc).capitalize() + ".", "invalid_token") from exc
