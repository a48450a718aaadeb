"""POST /v1/auth/register: a new user with a checked password, its email reserved."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from command_api.http_commands import read_command
from command_api.identity.bodies import RegisterBody
from command_api.identity.registration import registration_plan
from command_api.identity.runtime import IdentityRuntime
from command_api.runtime import ANONYMOUS
from shared.auth.passwords import password_problems
from shared.http.problems import problem

_decoder = msgspec.json.Decoder(RegisterBody)


@post("/auth/register", status_code=201, summary="Register a user", operation_id="register", security=[])
async def register(
    request: Request[Any, Any, Any], identity: NamedDependency[IdentityRuntime]
) -> Response[bytes]:
    body, raw = await read_command(request, _decoder)
    weaknesses = password_problems(body.password, user_inputs=(body.email, body.display_name))
    if weaknesses:
        message = "; ".join(weaknesses)
        raise problem(
            422,
            f"The password is too weak: {message}.",
            type_="/problems/weak-password",
            title="Weak password",
            errors=[{"field": "password", "message": message}],
        )
    password_hash = await identity.hash_password(body.password)
    plan = registration_plan(body.email, body.display_name, password_hash)
    return await identity.commands.run(request, ANONYMOUS, raw, plan)
