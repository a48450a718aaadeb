"""POST /v1/auth/password: change one's password; every refresh-token family of the user ends."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException

from command_api.http_commands import read_command
from command_api.identity.bodies import ChangePasswordBody
from command_api.identity.password_rule import refuse_weak_password
from command_api.identity.runtime import IdentityRuntime
from shared.http.auth import REALM
from shared.http.openapi import REQUEST_BODY

_decoder = msgspec.json.Decoder(ChangePasswordBody)


@post(
    "/auth/password",
    opt={REQUEST_BODY: ChangePasswordBody},
    status_code=204,
    summary="Change the password",
    operation_id="changePassword",
)
async def change_password(
    request: Request[Any, Any, Any], identity: NamedDependency[IdentityRuntime]
) -> Response[None]:
    principal = await identity.commands.authenticator.authenticate(request, sessions_only=True)
    body, _ = await read_command(request, _decoder)
    # Guesses of the current password (with a stolen access token, say) are
    # throttled like logins, on a count of the user's own.
    stored = await identity.credentials.password_hash_of(principal.user_id)
    throttle_key = f"password-change:{principal.user_id}"
    checked = await identity.throttled_verify(
        throttle_key, identity.client_ip(request), stored, body.current_password
    )
    if not checked.ok:
        raise NotAuthorizedException(
            detail="The current password is wrong.", headers={"WWW-Authenticate": REALM}
        )
    refuse_weak_password(body.new_password, field="new_password")
    await identity.credentials.change_password(
        principal.user_id, await identity.hash_password(body.new_password)
    )
    return Response(None, status_code=204)
