"""What deposits and withdrawals share: one account, one entry, one event."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from uuid import UUID

from uuid_utils.compat import uuid7

from command_api.execution.executor import Outcome
from command_api.ledger.accounts import account_of, answering_refusals, change, success
from command_api.ledger.answers import EntryRecordedAnswer
from command_api.ledger.bodies import EntryBody
from command_api.runtime import Plan
from contexts.ledger import decider
from contexts.ledger.commands import Deposit, Withdraw
from shared.auth.principal import Principal
from shared.eventsourcing.store import StreamState


def plan_entry(
    account_id: UUID, body: EntryBody, principal: Principal, command_type: Callable[..., Deposit | Withdraw]
) -> Plan:
    entry_id = UUID(bytes=uuid7().bytes)
    command = command_type(
        account_id=account_id, entry_id=entry_id, amount=body.amount, reference=body.reference
    )

    @answering_refusals
    def decide(states: Mapping[UUID, StreamState]) -> Outcome:
        account = account_of(states, account_id, principal)
        events = decider.decide(account, command)
        return Outcome(
            [change(account_id, account, events)],
            lambda versions, token: success(
                201,
                EntryRecordedAnswer(
                    entry_id=entry_id,
                    account_id=account_id,
                    version=versions[account_id],
                    consistency_token=token,
                ),
            ),
        )

    return [account_id], decide
