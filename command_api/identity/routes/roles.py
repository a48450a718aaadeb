"""POST /v1/users/{id}/roles and DELETE /v1/users/{id}/roles/{role}: admins grant and revoke roles.

A role takes effect in the user's next access token (at most the token
lifetime later), since tokens carry the roles they were issued with.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, Response, delete, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from command_api.answers import success
from command_api.http_commands import EmptyBody
from command_api.identity.answers import RolesAnswer
from command_api.identity.bodies import RoleBody
from command_api.identity.runtime import IdentityRuntime
from command_api.identity.users import plan_on_user
from command_api.runtime import Plan
from contexts.identity.commands import GrantRole, RevokeRole, UserCommand
from contexts.identity.decider import User
from shared.auth.principal import Principal
from shared.http.openapi import ANSWER, REQUEST_BODY
from shared.http.problems import problem

_decoder = msgspec.json.Decoder(RoleBody)
_empty = msgspec.json.Decoder(EmptyBody)


def _admin_plan(user_id: UUID, principal: Principal, command: UserCommand) -> Plan:
    if not principal.is_admin:
        raise problem(403, "Only an admin may change roles.", type_="/problems/forbidden")

    def respond(user: User, version: int | None, token: str) -> Any:
        return success(
            200, RolesAnswer(user_id=user_id, roles=user.roles, version=version, consistency_token=token)
        )

    return plan_on_user(user_id, command, respond)


@post(
    "/users/{user_id:uuid}/roles",
    opt={REQUEST_BODY: RoleBody, ANSWER: RolesAnswer},
    status_code=200,
    summary="Grant a role (admin)",
    operation_id="grantRole",
    tags=["identity"],
)
async def grant_role(
    request: Request[Any, Any, Any], user_id: FromPath[UUID], identity: NamedDependency[IdentityRuntime]
) -> Response[bytes]:
    def plan(body: RoleBody, principal: Principal) -> Plan:
        return _admin_plan(
            user_id, principal, GrantRole(user_id=user_id, role=body.role, by=principal.user_id)
        )

    return await identity.commands.handle(request, _decoder, plan, scope=None, sessions_only=True)


@delete(
    "/users/{user_id:uuid}/roles/{role:str}",
    status_code=200,
    summary="Revoke a role (admin)",
    opt={ANSWER: RolesAnswer},
    operation_id="revokeRole",
    tags=["identity"],
)
async def revoke_role(
    request: Request[Any, Any, Any],
    user_id: FromPath[UUID],
    role: FromPath[str],
    identity: NamedDependency[IdentityRuntime],
) -> Response[bytes]:
    def plan(body: EmptyBody, principal: Principal) -> Plan:
        return _admin_plan(user_id, principal, RevokeRole(user_id=user_id, role=role, by=principal.user_id))

    return await identity.commands.handle(request, _empty, plan, scope=None, sessions_only=True)
