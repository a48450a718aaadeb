"""POST /v1/accounts: open an account in a currency, owned by the caller."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from uuid_utils.compat import uuid7

from command_api.answers import success
from command_api.execution.executor import Outcome
from command_api.ledger.accounts import answering_refusals, any_account, change
from command_api.ledger.answers import AccountOpenedAnswer
from command_api.ledger.bodies import OpenAccountBody
from command_api.runtime import CommandRuntime, Plan
from contexts.ledger import decider
from contexts.ledger.commands import OpenAccount
from shared.auth.principal import Principal
from shared.eventsourcing.store import StreamState
from shared.http.openapi import ANSWER, REQUEST_BODY

_decoder = msgspec.json.Decoder(OpenAccountBody)


def plan(body: OpenAccountBody, principal: Principal) -> Plan:
    account_id = UUID(bytes=uuid7().bytes)
    command = OpenAccount(
        account_id=account_id, owner_id=principal.user_id, currency=body.currency, name=body.name
    )

    @answering_refusals
    def decide(states: Mapping[UUID, StreamState]) -> Outcome:
        events = decider.decide(any_account(states, account_id), command)
        return Outcome(
            [change(account_id, None, events)],
            lambda versions, token: success(
                201,
                AccountOpenedAnswer(
                    account_id=account_id, version=versions[account_id], consistency_token=token
                ),
                {"Location": f"/v1/accounts/{account_id}"},
            ),
        )

    return [account_id], decide


@post(
    "/accounts",
    opt={REQUEST_BODY: OpenAccountBody, ANSWER: AccountOpenedAnswer},
    status_code=201,
    summary="Open an account",
    operation_id="openAccount",
)
async def open_account(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[CommandRuntime],
) -> Response[bytes]:
    return await runtime.handle(request, _decoder, plan)
