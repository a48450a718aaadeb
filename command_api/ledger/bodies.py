"""Request bodies of the ledger commands: refused at the edge unless well-formed."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar
from uuid import UUID

import msgspec

from contexts.ledger.decider import MAX_AMOUNT
from shared.http.text import printable

Amount = Annotated[int, msgspec.Meta(gt=0, le=MAX_AMOUNT, description="Positive integer, minor units")]
Reference = Annotated[str, printable(max_length=200)]


class OpenAccountBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    example: ClassVar[dict[str, Any]] = {"currency": "EUR", "name": "Household"}

    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
    name: Annotated[str, printable(max_length=100)]


class EntryBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    example: ClassVar[dict[str, Any]] = {"amount": 12500, "reference": "salary November"}

    amount: Amount
    reference: Reference


class TransferBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    example: ClassVar[dict[str, Any]] = {
        "from_account_id": "0192f5e4-7c3a-7d2e-9b1a-3f4e5d6c7b8a",
        "to_account_id": "0192f5e4-9d10-7a41-8c3e-2b7f1e0d9c6a",
        "amount": 2000,
        "reference": "rent",
    }

    from_account_id: UUID
    to_account_id: UUID
    amount: Amount
    reference: Reference
