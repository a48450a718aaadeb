"""POST /v1/auth/refresh and /v1/auth/logout: rotate a refresh token, or end its family."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException

from command_api.http_commands import read_command
from command_api.identity.answers import TokenPair
from command_api.identity.bodies import RefreshBody
from command_api.identity.routes.login import token_response
from command_api.identity.runtime import IdentityRuntime
from command_api.identity.sessions import RefreshRefused
from shared.http.auth import REALM
from shared.http.openapi import ANSWER, REQUEST_BODY

_decoder = msgspec.json.Decoder(RefreshBody)


@post(
    "/auth/refresh",
    opt={REQUEST_BODY: RefreshBody, ANSWER: TokenPair},
    status_code=200,
    summary="Renew tokens",
    operation_id="refresh",
    security=[],
)
async def refresh(
    request: Request[Any, Any, Any], identity: NamedDependency[IdentityRuntime]
) -> Response[bytes]:
    await identity.admit_anonymous(request)
    body, _ = await read_command(request, _decoder)
    try:
        renewal = await identity.sessions.rotate(body.refresh_token)
    except RefreshRefused as refused:
        raise NotAuthorizedException(
            detail=str(refused).capitalize() + ".",
            headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        ) from refused
    return token_response(identity, renewal.user, renewal.refresh_token)


@post(
    "/auth/logout",
    opt={REQUEST_BODY: RefreshBody},
    status_code=204,
    summary="Log out",
    operation_id="logout",
    security=[],
)
async def logout(
    request: Request[Any, Any, Any], identity: NamedDependency[IdentityRuntime]
) -> Response[None]:
    await identity.admit_anonymous(request)
    body, _ = await read_command(request, _decoder)
    await identity.sessions.end(body.refresh_token)
    return Response(None, status_code=204)
