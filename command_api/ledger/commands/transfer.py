"""POST /v1/transfers: move money between two accounts of one currency, atomically."""

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
from command_api.ledger.accounts import account_of, answering_refusals, any_account, change
from command_api.ledger.answers import TransferAnswer
from command_api.ledger.bodies import TransferBody
from command_api.runtime import CommandRuntime, Plan
from contexts.ledger import decider
from contexts.ledger.commands import Transfer
from shared.auth.principal import Principal
from shared.eventsourcing.store import StreamState
from shared.http.openapi import ANSWER, REQUEST_BODY

_decoder = msgspec.json.Decoder(TransferBody)


def plan(body: TransferBody, principal: Principal) -> Plan:
    transfer_id = UUID(bytes=uuid7().bytes)
    source_id, target_id = body.from_account_id, body.to_account_id
    command = Transfer(
        transfer_id=transfer_id,
        from_account_id=source_id,
        to_account_id=target_id,
        amount=body.amount,
        reference=body.reference,
    )

    @answering_refusals
    def decide(states: Mapping[UUID, StreamState]) -> Outcome:
        # The caller must own the source; the target may be anyone's account.
        source = account_of(states, source_id, principal)
        target = any_account(states, target_id)
        sent, received = decider.decide_transfer(source, target, command)
        # Another user's account may receive money, but its version is not the caller's to see.
        target_visible = target is not None and principal.may_act_for(target.owner_id)
        return Outcome(
            [
                change(source_id, source, sent),
                change(target_id, target, received, visible_to_caller=target_visible),
            ],
            lambda versions, token: success(
                201,
                TransferAnswer(
                    transfer_id=transfer_id,
                    from_account_id=source_id,
                    to_account_id=target_id,
                    from_version=versions[source_id],
                    to_version=versions.get(target_id),
                    consistency_token=token,
                ),
            ),
        )

    return [source_id, target_id], decide


@post(
    "/transfers",
    opt={REQUEST_BODY: TransferBody, ANSWER: TransferAnswer},
    status_code=201,
    summary="Transfer money between accounts",
    operation_id="transfer",
)
async def transfer(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[CommandRuntime],
) -> Response[bytes]:
    return await runtime.handle(request, _decoder, plan)
