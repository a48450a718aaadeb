"""Ledger commands as the decider sees them: every id and the acting owner given.

The HTTP bodies that carry them are validated at the edge (command_api);
these are built by the handlers, so they need no unknown-field checks.
"""

from __future__ import annotations

from uuid import UUID

import msgspec


class OpenAccount(msgspec.Struct, frozen=True, kw_only=True):
    account_id: UUID
    owner_id: UUID
    currency: str
    name: str


class Deposit(msgspec.Struct, frozen=True, kw_only=True):
    account_id: UUID
    entry_id: UUID
    amount: int
    reference: str


class Withdraw(msgspec.Struct, frozen=True, kw_only=True):
    account_id: UUID
    entry_id: UUID
    amount: int
    reference: str


class CloseAccount(msgspec.Struct, frozen=True, kw_only=True):
    account_id: UUID


class Transfer(msgspec.Struct, frozen=True, kw_only=True):
    transfer_id: UUID
    from_account_id: UUID
    to_account_id: UUID
    amount: int
    reference: str


AccountCommand = OpenAccount | Deposit | Withdraw | CloseAccount
