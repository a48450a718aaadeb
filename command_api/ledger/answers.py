"""Success bodies of the ledger commands: the ids, the new versions, the consistency token."""

from __future__ import annotations

from uuid import UUID

import msgspec


class AccountOpenedAnswer(msgspec.Struct, frozen=True, kw_only=True):
    account_id: UUID
    version: int
    consistency_token: str


class EntryRecordedAnswer(msgspec.Struct, frozen=True, kw_only=True):
    entry_id: UUID
    account_id: UUID
    version: int
    consistency_token: str


class TransferAnswer(msgspec.Struct, frozen=True, kw_only=True):
    transfer_id: UUID
    from_account_id: UUID
    to_account_id: UUID
    from_version: int
    # Only when the caller may see the receiving account (its own, or an admin).
    to_version: int | None
    consistency_token: str


class AccountClosedAnswer(msgspec.Struct, frozen=True, kw_only=True):
    account_id: UUID
    version: int
    consistency_token: str
