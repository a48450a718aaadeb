"""What the ledger's command handlers share: reading account state, refusing, answering."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final
from uuid import UUID

import msgspec

from command_api.answers import problem_answer, refused
from command_api.execution.executor import Answer, Decide, Outcome, StreamChange
from contexts.ledger import decider, errors
from contexts.ledger.commands import AccountCommand
from contexts.ledger.decider import Account, fold
from contexts.ledger.events import AGGREGATE, AccountEvent
from shared.auth.principal import Principal
from shared.eventsourcing.store import StreamState

_account_decoder = msgspec.json.Decoder(Account)

# How each refusal reaches the client (contract.md).
REFUSAL_STATUS: Final[Mapping[type[errors.LedgerError], int]] = {
    errors.AccountNotFound: 404,
    errors.AccountAlreadyExists: 409,
    errors.AccountClosedError: 409,
    errors.InsufficientFunds: 409,
    errors.BalanceNotZero: 409,
    errors.UnknownCurrency: 422,
    errors.CurrencyMismatch: 422,
    errors.SameAccountTransfer: 422,
    errors.AmountOutOfRange: 422,
}


def account_of(states: Mapping[UUID, StreamState], account_id: UUID, principal: Principal) -> Account | None:
    """The account's state; None when it does not exist or belongs to someone else.

    Another user's account is reported exactly like a missing one, so its
    existence is never revealed (contract.md: 404).
    """
    account = any_account(states, account_id)
    return account if account is not None and principal.may_act_for(account.owner_id) else None


def any_account(states: Mapping[UUID, StreamState], account_id: UUID) -> Account | None:
    """The account's state; None when the id is no account (missing, or another aggregate's)."""
    row = states.get(account_id)
    if row is None or row.stream_type != AGGREGATE:
        return None
    return _account_decoder.decode(row.state)


def change(
    account_id: UUID, state: Account | None, events: list[AccountEvent], *, visible_to_caller: bool = True
) -> StreamChange:
    new_state = fold(events, state)
    if new_state is None:  # pragma: no cover - a decider never returns no event with no state
        raise ValueError("no state after the events")
    return StreamChange(
        stream_id=account_id,
        stream_type=AGGREGATE,
        events=events,
        state=new_state,
        visible_to_caller=visible_to_caller,
    )


def refusal(error: errors.LedgerError) -> Outcome:
    """A refused command changes nothing; its problem answer is kept for replay like any other."""
    return refused(problem_answer(REFUSAL_STATUS.get(type(error), 409), error.code, str(error)))


def answering_refusals(decide: Decide) -> Decide:
    """Turn a ledger refusal raised while deciding into a stored problem answer."""

    def decide_or_refuse(states: Mapping[UUID, StreamState]) -> Outcome:
        try:
            return decide(states)
        except errors.LedgerError as error:
            return refusal(error)

    return decide_or_refuse


def plan_on_own_account(
    account_id: UUID,
    principal: Principal,
    command: AccountCommand,
    respond: Callable[[int, str], Answer],
) -> tuple[list[UUID], Decide]:
    """The plan of a command on one account of the caller's: decide it, answer with its new version."""

    @answering_refusals
    def decide(states: Mapping[UUID, StreamState]) -> Outcome:
        account = account_of(states, account_id, principal)
        events = decider.decide(account, command)
        return Outcome(
            [change(account_id, account, events)],
            lambda versions, token: respond(versions[account_id], token),
        )

    return [account_id], decide
