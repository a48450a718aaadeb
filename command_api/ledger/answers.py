"""Success bodies of the ledger commands: the ids, the new versions, the consistency token."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

import msgspec

from command_api.example_values import EXAMPLE_TOKEN


class AccountOpenedAnswer(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {
        "account_id": "0192f5e4-7c3a-7d2e-9b1a-3f4e5d6c7b8a",
        "version": 1,
        "consistency_token": EXAMPLE_TOKEN,
    }

    account_id: UUID
    version: int
    consistency_token: str


class EntryRecordedAnswer(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {
        "entry_id": "0192f5e6-1a2b-7c3d-9e4f-5a6b7c8d9e0f",
        "account_id": "0192f5e4-7c3a-7d2e-9b1a-3f4e5d6c7b8a",
        "version": 2,
        "consistency_token": EXAMPLE_TOKEN,
    }

    entry_id: UUID
    account_id: UUID
    version: int
    consistency_token: str


class TransferAnswer(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {
        "transfer_id": "0192f5e7-3c4d-7e5f-8a6b-7c8d9e0f1a2b",
        "from_account_id": "0192f5e4-7c3a-7d2e-9b1a-3f4e5d6c7b8a",
        "to_account_id": "0192f5e4-9d10-7a41-8c3e-2b7f1e0d9c6a",
        "from_version": 3,
        "to_version": 2,
        "consistency_token": EXAMPLE_TOKEN,
    }

    transfer_id: UUID
    from_account_id: UUID
    to_account_id: UUID
    from_version: int
    # Only when the caller may see the receiving account (its own, or an admin).
    to_version: int | None
    consistency_token: str


class AccountClosedAnswer(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {
        "account_id": "0192f5e4-7c3a-7d2e-9b1a-3f4e5d6c7b8a",
        "version": 4,
        "consistency_token": EXAMPLE_TOKEN,
    }

    account_id: UUID
    version: int
    consistency_token: str
