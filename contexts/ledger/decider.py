"""The account aggregate as pure functions: decide new events, evolve state.

No I/O and no framework: ids and the acting owner come in with the command.
`evolve` folded over an account's events gives the state the store keeps in
its state row; a test proves the two always agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal, assert_never
from uuid import UUID

import msgspec

from contexts.ledger.commands import AccountCommand, CloseAccount, Deposit, OpenAccount, Transfer, Withdraw
from contexts.ledger.currencies import is_known_currency
from contexts.ledger.errors import (
    AccountAlreadyExists,
    AccountClosedError,
    AccountNotFound,
    AmountOutOfRange,
    BalanceNotZero,
    CurrencyMismatch,
    InsufficientFunds,
    SameAccountTransfer,
    UnknownCurrency,
)
from contexts.ledger.events import (
    AccountClosed,
    AccountEvent,
    AccountOpened,
    MoneyDeposited,
    MoneyWithdrawn,
    TransferReceived,
    TransferSent,
)

# Balances live in PostgreSQL bigint columns; staying far below 2**63 keeps
# every sum of a read model exact.
MAX_BALANCE: Final = 10**15
MAX_AMOUNT: Final = 10**15


class Account(msgspec.Struct, frozen=True, kw_only=True):
    account_id: UUID
    owner_id: UUID
    currency: str
    name: str
    balance: int = 0
    status: Literal["open", "closed"] = "open"


def evolve(state: Account | None, event: AccountEvent) -> Account:
    match event:
        case AccountOpened():
            return Account(
                account_id=event.account_id, owner_id=event.owner_id, currency=event.currency, name=event.name
            )
        case MoneyDeposited() | TransferReceived():
            return msgspec.structs.replace(_existing(state), balance=_existing(state).balance + event.amount)
        case MoneyWithdrawn() | TransferSent():
            return msgspec.structs.replace(_existing(state), balance=_existing(state).balance - event.amount)
        case AccountClosed():
            return msgspec.structs.replace(_existing(state), status="closed")
        case _:
            assert_never(event)


def fold(events: Iterable[AccountEvent], state: Account | None = None) -> Account | None:
    for event in events:
        state = evolve(state, event)
    return state


def decide(state: Account | None, command: AccountCommand) -> list[AccountEvent]:
    if state is not None and state.account_id != command.account_id:
        # A caller bug, not a refusal: the state loaded is another account's.
        raise ValueError("the state given is not the command's account")
    match command:
        case OpenAccount():
            return _open(state, command)
        case Deposit():
            account = _open_account(state)
            _check_amount(command.amount)
            if account.balance + command.amount > MAX_BALANCE:
                raise AmountOutOfRange("the balance would exceed the ledger's limit")
            return [
                MoneyDeposited(
                    account_id=account.account_id,
                    entry_id=command.entry_id,
                    amount=command.amount,
                    reference=command.reference,
                )
            ]
        case Withdraw():
            account = _open_account(state)
            _check_amount(command.amount)
            _check_funds(account, command.amount)
            return [
                MoneyWithdrawn(
                    account_id=account.account_id,
                    entry_id=command.entry_id,
                    amount=command.amount,
                    reference=command.reference,
                )
            ]
        case CloseAccount():
            account = _open_account(state)
            if account.balance != 0:
                raise BalanceNotZero(f"the balance is {account.balance}; it must be 0 to close")
            return [AccountClosed(account_id=account.account_id)]
        case _:
            assert_never(command)


def decide_transfer(
    source: Account | None, target: Account | None, command: Transfer
) -> tuple[list[AccountEvent], list[AccountEvent]]:
    """Both sides of a transfer, decided together; the store appends them atomically."""
    if command.from_account_id == command.to_account_id:
        raise SameAccountTransfer("a transfer needs two different accounts")
    sender = _open_account(source)
    receiver = _open_account(target)
    if sender.currency != receiver.currency:
        # Says nothing of the receiving account's currency: it may be another user's.
        raise CurrencyMismatch("the two accounts are in different currencies")
    _check_amount(command.amount)
    _check_funds(sender, command.amount)
    if receiver.balance + command.amount > MAX_BALANCE:
        raise AmountOutOfRange("the receiving balance would exceed the ledger's limit")
    common = {"transfer_id": command.transfer_id, "amount": command.amount, "reference": command.reference}
    sent = TransferSent(account_id=sender.account_id, counterparty_account_id=receiver.account_id, **common)
    received = TransferReceived(
        account_id=receiver.account_id, counterparty_account_id=sender.account_id, **common
    )
    return [sent], [received]


def _open(state: Account | None, command: OpenAccount) -> list[AccountEvent]:
    if state is not None:
        raise AccountAlreadyExists("an account with this id exists")
    if not is_known_currency(command.currency):
        raise UnknownCurrency(f"{command.currency} is not an ISO 4217 currency")
    return [
        AccountOpened(
            account_id=command.account_id,
            owner_id=command.owner_id,
            currency=command.currency,
            name=command.name,
        )
    ]


def _existing(state: Account | None) -> Account:
    if state is None:
        raise AccountNotFound("no such account")
    return state


def _open_account(state: Account | None) -> Account:
    account = _existing(state)
    if account.status == "closed":
        raise AccountClosedError("the account is closed")
    return account


def _check_amount(amount: int) -> None:
    if not 0 < amount <= MAX_AMOUNT:
        raise AmountOutOfRange(f"amounts are positive integers up to {MAX_AMOUNT} minor units")


def _check_funds(account: Account, amount: int) -> None:
    if account.balance < amount:
        raise InsufficientFunds(f"the balance is {account.balance}, less than {amount}")
