"""What deposits and withdrawals share: one account, one entry, one event."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from uuid_utils.compat import uuid7

from command_api.answers import success
from command_api.ledger.accounts import plan_on_own_account
from command_api.ledger.answers import EntryRecordedAnswer
from command_api.ledger.bodies import EntryBody
from command_api.runtime import Plan
from contexts.ledger.commands import Deposit, Withdraw
from shared.auth.principal import Principal


def plan_entry(
    account_id: UUID, body: EntryBody, principal: Principal, command_type: Callable[..., Deposit | Withdraw]
) -> Plan:
    entry_id = UUID(bytes=uuid7().bytes)
    command = command_type(
        account_id=account_id, entry_id=entry_id, amount=body.amount, reference=body.reference
    )
    return plan_on_own_account(
        account_id,
        principal,
        command,
        lambda version, token: success(
            201,
            EntryRecordedAnswer(
                entry_id=entry_id, account_id=account_id, version=version, consistency_token=token
            ),
        ),
    )
