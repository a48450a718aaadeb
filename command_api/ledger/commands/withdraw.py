"""POST /v1/accounts/{account_id}/withdrawals: money out, never below zero."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from command_api.ledger.answers import EntryRecordedAnswer
from command_api.ledger.bodies import EntryBody
from command_api.ledger.commands.entries import plan_entry
from command_api.runtime import CommandRuntime
from contexts.ledger.commands import Withdraw
from shared.http.openapi import ANSWER, REQUEST_BODY

_decoder = msgspec.json.Decoder(EntryBody)


@post(
    "/accounts/{account_id:uuid}/withdrawals",
    opt={REQUEST_BODY: EntryBody, ANSWER: EntryRecordedAnswer},
    status_code=201,
    summary="Withdraw money",
    operation_id="withdraw",
)
async def withdraw(
    request: Request[Any, Any, Any],
    account_id: FromPath[UUID],
    runtime: NamedDependency[CommandRuntime],
) -> Response[bytes]:
    return await runtime.handle(
        request, _decoder, lambda body, principal: plan_entry(account_id, body, principal, Withdraw)
    )
