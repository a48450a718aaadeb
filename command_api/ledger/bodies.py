"""Request bodies of the ledger commands: refused at the edge unless well-formed."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec

from contexts.ledger.decider import MAX_AMOUNT
from shared.http.text import printable

Amount = Annotated[int, msgspec.Meta(gt=0, le=MAX_AMOUNT, description="Positive integer, minor units")]
Reference = Annotated[str, printable(max_length=200)]


class OpenAccountBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
    name: Annotated[str, printable(max_length=100)]


class EntryBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    amount: Amount
    reference: Reference


class TransferBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    from_account_id: UUID
    to_account_id: UUID
    amount: Amount
    reference: Reference
