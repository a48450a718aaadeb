"""Ledger events: the public contract of the ledger context (contract.md).

Events do not forbid unknown fields, so an older consumer skips a newer
field. Schema evolution rules: a new field gets a default; a field never
changes its type; anything else is a new schema version with an upcaster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar
from uuid import UUID

import msgspec


class LedgerEvent(msgspec.Struct, frozen=True, kw_only=True):
    event_type: ClassVar[str]
    schema_version: ClassVar[int]
    account_id: UUID


class AccountOpened(LedgerEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "AccountOpened"
    schema_version: ClassVar[int] = 1
    owner_id: UUID
    currency: str
    name: str


class MoneyDeposited(LedgerEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "MoneyDeposited"
    schema_version: ClassVar[int] = 1
    entry_id: UUID
    amount: int
    reference: str


class MoneyWithdrawn(LedgerEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "MoneyWithdrawn"
    schema_version: ClassVar[int] = 1
    entry_id: UUID
    amount: int
    reference: str


class TransferSent(LedgerEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "TransferSent"
    schema_version: ClassVar[int] = 1
    transfer_id: UUID
    counterparty_account_id: UUID
    amount: int
    reference: str


class TransferReceived(LedgerEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "TransferReceived"
    schema_version: ClassVar[int] = 1
    transfer_id: UUID
    counterparty_account_id: UUID
    amount: int
    reference: str


class AccountClosed(LedgerEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "AccountClosed"
    schema_version: ClassVar[int] = 1


AccountEvent = (
    AccountOpened | MoneyDeposited | MoneyWithdrawn | TransferSent | TransferReceived | AccountClosed
)

EVENT_TYPES: tuple[type[LedgerEvent], ...] = (
    AccountOpened,
    MoneyDeposited,
    MoneyWithdrawn,
    TransferSent,
    TransferReceived,
    AccountClosed,
)
# No ledger event has had a second version yet (see contexts/identity/events.py for one that has).
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}
CONTEXT = "ledger"
AGGREGATE = "account"
