"""POST /v1/accounts/{account_id}/close: close an account whose balance is zero."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from command_api.execution.executor import Outcome
from command_api.ledger.accounts import account_of, answering_refusals, change, success
from command_api.ledger.answers import AccountClosedAnswer
from command_api.ledger.bodies import EmptyBody
from command_api.runtime import CommandRuntime, Plan
from contexts.ledger import decider
from contexts.ledger.commands import CloseAccount
from shared.auth.principal import Principal
from shared.eventsourcing.store import StreamState

_decoder = msgspec.json.Decoder(EmptyBody)


def plan(account_id: UUID, principal: Principal) -> Plan:
    command = CloseAccount(account_id=account_id)

    @answering_refusals
    def decide(states: Mapping[UUID, StreamState]) -> Outcome:
        account = account_of(states, account_id, principal)
        events = decider.decide(account, command)
        return Outcome(
            [change(account_id, account, events)],
            lambda versions, token: success(
                200,
                AccountClosedAnswer(
                    account_id=account_id, version=versions[account_id], consistency_token=token
                ),
            ),
        )

    return [account_id], decide


@post(
    "/accounts/{account_id:uuid}/close",
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
