"""POST /v1/accounts/{account_id}/close: close an account whose balance is zero."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from command_api.answers import success
from command_api.http_commands import EmptyBody
from command_api.ledger.accounts import plan_on_own_account
from command_api.ledger.answers import AccountClosedAnswer
from command_api.runtime import CommandRuntime, Plan
from contexts.ledger.commands import CloseAccount
from shared.auth.principal import Principal
from shared.http.openapi import ANSWER, REQUEST_BODY

_decoder = msgspec.json.Decoder(EmptyBody)


def plan(account_id: UUID, principal: Principal) -> Plan:
    return plan_on_own_account(
        account_id,
        principal,
        CloseAccount(account_id=account_id),
        lambda version, token: success(
            200, AccountClosedAnswer(account_id=account_id, version=version, consistency_token=token)
        ),
    )


@post(
    "/accounts/{account_id:uuid}/close",
    opt={REQUEST_BODY: EmptyBody, ANSWER: AccountClosedAnswer},
    status_code=200,
    summary="Close an account",
    operation_id="closeAccount",
)
async def close_account(
    request: Request[Any, Any, Any],
    account_id: FromPath[UUID],
    runtime: NamedDependency[CommandRuntime],
) -> Response[bytes]:
    return await runtime.handle(request, _decoder, lambda body, principal: plan(account_id, principal))
