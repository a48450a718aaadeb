"""POST /v1/api-keys and DELETE /v1/api-keys/{id}: a user's API keys, shown once, stored hashed."""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

import msgspec
from litestar import Request, Response, delete, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from uuid_utils.compat import uuid7

from command_api.execution.executor import Answer
from command_api.http_commands import EmptyBody
from command_api.identity.answers import ApiKeyCreatedAnswer
from command_api.identity.bodies import CreateApiKeyBody
from command_api.identity.runtime import IdentityRuntime
from command_api.identity.users import plan_on_user
from command_api.identity.write_side import revoke_api_key, store_api_key
from command_api.runtime import Plan
from contexts.identity.commands import IssueApiKey, RevokeApiKey
from contexts.identity.decider import User
from shared.auth.api_keys import generate_api_key
from shared.auth.principal import Principal
from shared.http.openapi import ANSWER, REQUEST_BODY

_decoder = msgspec.json.Decoder(CreateApiKeyBody)
_empty = msgspec.json.Decoder(EmptyBody)
_json = msgspec.json.Encoder()


def creation_plan(body: CreateApiKeyBody, principal: Principal) -> Plan:
    api_key_id = UUID(bytes=uuid7().bytes)
    new_key = generate_api_key()
    command = IssueApiKey(
        user_id=principal.user_id,
        api_key_id=api_key_id,
        name=body.name,
        scopes=tuple(body.scopes),
        tier=principal.tier,
    )

    def respond(user: User, version: int | None, token: str) -> Answer:
        issued = user.api_keys[api_key_id]
        answer = ApiKeyCreatedAnswer(
            api_key_id=api_key_id,
            name=issued.name,
            scopes=issued.scopes,
            version=version or 0,
            consistency_token=token,
        )
        return Answer(
            status=201,
            body=_json.encode(msgspec.structs.replace(answer, key=new_key.key)),
            # A replay answers without the key: it is shown once and never stored.
            replay_body=_json.encode(answer),
            headers={"Cache-Control": "no-store"},
        )

    return plan_on_user(
        principal.user_id,
        command,
        respond,
        side_writes=lambda user: [
            # The key is rate-limited by the tier of the session that made it (its event's tier).
            store_api_key(
                api_key_id,
                principal.user_id,
                new_key,
                user.api_keys[api_key_id].scopes,
                user.api_keys[api_key_id].tier,
            )
        ],
    )


@post(
    "/api-keys",
    opt={REQUEST_BODY: CreateApiKeyBody, ANSWER: ApiKeyCreatedAnswer},
    status_code=201,
    summary="Create an API key",
    operation_id="createApiKey",
    tags=["identity"],
)
async def create_api_key(
    request: Request[Any, Any, Any], identity: NamedDependency[IdentityRuntime]
) -> Response[bytes]:
    return await identity.commands.handle(request, _decoder, creation_plan, scope=None, sessions_only=True)


@delete(
    "/api-keys/{api_key_id:uuid}",
    # The answer is 204 (or a problem); declared 200 because litestar refuses a body type with 204.
    status_code=204,
    summary="Revoke an API key",
    operation_id="revokeApiKey",
    tags=["identity"],
)
async def revoke(
    request: Request[Any, Any, Any], api_key_id: FromPath[UUID], identity: NamedDependency[IdentityRuntime]
) -> Response[None]:
    def plan(body: EmptyBody, principal: Principal) -> Plan:
        return plan_on_user(
            principal.user_id,
            RevokeApiKey(user_id=principal.user_id, api_key_id=api_key_id),
            lambda user, version, token: Answer(status=204, body=b""),
            side_writes=lambda user: [revoke_api_key(api_key_id, principal.user_id)],
        )

    answer = await identity.commands.handle(request, _empty, plan, scope=None, sessions_only=True)
    # Response[None] because litestar allows a 204 only to a handler typed to answer nothing;
    # a refusal (404), or the replay of one, still carries its problem.
    return cast("Response[None]", answer)
