"""POST /v1/auth/register: a new user with a checked password, its email reserved."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from command_api.http_commands import read_command
from command_api.identity.answers import UserRegisteredAnswer
from command_api.identity.bodies import RegisterBody
from command_api.identity.password_rule import refuse_weak_password
from command_api.identity.registration import registration_plan
from command_api.identity.runtime import IdentityRuntime
from command_api.runtime import ANONYMOUS
from shared.http.openapi import ANSWER, REQUEST_BODY

_decoder = msgspec.json.Decoder(RegisterBody)
_json = msgspec.json.Encoder()


@post(
    "/auth/register",
    opt={REQUEST_BODY: RegisterBody, ANSWER: UserRegisteredAnswer},
    status_code=201,
    summary="Register a user",
    operation_id="register",
    security=[],
)
async def register(
    request: Request[Any, Any, Any], identity: NamedDependency[IdentityRuntime]
) -> Response[bytes]:
    await identity.admit_anonymous(request)
    body, _ = await read_command(request, _decoder)
    refuse_weak_password(body.password, field="password", user_inputs=(body.email, body.display_name))
    password_hash = await identity.hash_password(body.password)
    plan = registration_plan(body.email, body.display_name, password_hash)
    # The Idempotency-Key fingerprint leaves the password out: a fast hash of it,
    # kept for a day, would let anyone reading the table guess it at SHA-256 speed.
    # A retry is recognised by the email and display name.
    fingerprinted = _json.encode({"email": body.email, "display_name": body.display_name})
    return await identity.commands.run(request, ANONYMOUS, fingerprinted, plan)
