"""POST /v1/auth/password: change one's password; every refresh-token family of the user ends."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException

from command_api.http_commands import read_command
from command_api.identity.bodies import ChangePasswordBody
from command_api.identity.runtime import IdentityRuntime
from shared.auth.passwords import password_problems
from shared.http.auth import REALM
from shared.http.problems import problem

_decoder = msgspec.json.Decoder(ChangePasswordBody)


@post("/auth/password", status_code=204, summary="Change the password", operation_id="changePassword")
async def change_password(
    request: Request[Any, Any, Any], identity: NamedDependency[IdentityRuntime]
) -> Response[None]:
    principal = await identity.commands.authenticator.authenticate(request, sessions_only=True)
    body, _ = await read_command(request, _decoder)
    stored = await identity.credentials.password_hash_of(principal.user_id)
    checked = await identity.verify_password(stored, body.current_password)
    if not checked.ok:
        raise NotAuthorizedException(
            detail="The current password is wrong.", headers={"WWW-Authenticate": REALM}
        )
    weaknesses = password_problems(body.new_password)
    if weaknesses:
        message = "; ".join(weaknesses)
        raise problem(
            422,
            f"The new password is too weak: {message}.",
            type_="/problems/weak-password",
            title="Weak password",
            errors=[{"field": "new_password", "message": message}],
        )
    await identity.credentials.change_password(
        principal.user_id, await identity.hash_password(body.new_password)
    )
    return Response(None, status_code=204)
