"""Projection `accounts`: each account with its balance, and its entries with the balance after each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final
from uuid import UUID

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, Integer, Table, Text
from sqlalchemy.dialects.postgresql import UUID as SqlUUID

from contexts.ledger.events import (
    AccountClosed,
    AccountOpened,
    MoneyDeposited,
    MoneyWithdrawn,
    TransferReceived,
    TransferSent,
)
from projectors.envelope import Envelope
from projectors.projection import Projection
from projectors.tables import read_metadata, stream_versions_table
from shared.db.schema import READ_SCHEMA
from shared.infrastructure.postgres import Connection

accounts = Table(
    "accounts",
    read_metadata,
    Column("account_id", SqlUUID(as_uuid=True), primary_key=True),
    Column("owner_id", SqlUUID(as_uuid=True), nullable=False),
    Column("name", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("status IN ('open', 'closed')", name="status_known"),
    # The caller's own accounts, in the order the list query pages through them.
    Index(None, "owner_id", "opened_at", "account_id"),
)

# One row per money movement. `version` is the account's stream version of the
# event: the index on (account_id, version) pages newest first by scanning
# backward, which a B-tree does as cheaply as forward (a DESC column would
# also defeat Alembic's comparison). A transfer's entry takes the event's id
# as its entry id (its events carry a transfer id only).
account_entries = Table(
    "account_entries",
    read_metadata,
    Column("entry_id", SqlUUID(as_uuid=True), primary_key=True),
    Column("account_id", SqlUUID(as_uuid=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("transfer_id", SqlUUID(as_uuid=True)),
    Column("counterparty_account_id", SqlUUID(as_uuid=True)),
    Column("reference", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("kind IN ('deposit', 'withdrawal', 'transfer_in', 'transfer_out')", name="kind_known"),
    Index(None, "account_id", "version", unique=True),
)

_ACCOUNT_COLUMNS: Final = (
    "account_id, owner_id, name, currency, balance, status, version, opened_at, updated_at"
)


@dataclass(slots=True)
class _Account:
    account_id: UUID
    owner_id: UUID
    name: str
    currency: str
    balance: int
    status: str
    version: int
    opened_at: datetime
    updated_at: datetime


_CREDITS: Final = frozenset({"deposit", "transfer_in"})
_Movement = tuple[UUID, str, int, UUID | None, UUID | None, str]


def _movement(envelope: Envelope) -> _Movement | None:
    """The entry an event makes: (entry id, kind, amount, transfer id, counterparty, reference)."""
    match envelope.event:
        case MoneyDeposited(entry_id=entry_id, amount=amount, reference=reference):
            return entry_id, "deposit", amount, None, None, reference
        case MoneyWithdrawn(entry_id=entry_id, amount=amount, reference=reference):
            return entry_id, "withdrawal", amount, None, None, reference
        case TransferSent() as sent:
            return (
                envelope.event_id,
                "transfer_out",
                sent.amount,
                sent.transfer_id,
                sent.counterparty_account_id,
                sent.reference,
            )
        case TransferReceived() as received:
            return (
                envelope.event_id,
                "transfer_in",
                received.amount,
                received.transfer_id,
                received.counterparty_account_id,
                received.reference,
            )
        case _:
            return None


class AccountsProjection(Projection):
    name: ClassVar[str] = "accounts"
    stream_types: ClassVar[frozenset[str]] = frozenset({"account"})
    tables: ClassVar[tuple[Table, ...]] = (accounts, account_entries)
    streams: ClassVar[Table] = stream_versions_table("accounts")

    def __init__(self, schema: str = READ_SCHEMA) -> None:
        super().__init__(schema)
        table = self.qualified(accounts)
        self._select = f"SELECT {_ACCOUNT_COLUMNS} FROM {table} WHERE account_id = ANY($1::uuid[])"
        self._upsert = f"""
            INSERT INTO {table} ({_ACCOUNT_COLUMNS})
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bigint[],
                                 $6::text[], $7::int[], $8::timestamptz[], $9::timestamptz[])
            ON CONFLICT (account_id) DO UPDATE SET
                balance = EXCLUDED.balance, status = EXCLUDED.status,
                version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
        """
        self._insert_entries = f"""
            INSERT INTO {self.qualified(account_entries)} (entry_id, account_id, version, kind, amount,
                balance_after, transfer_id, counterparty_account_id, reference, recorded_at)
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::bigint[],
                                 $6::bigint[], $7::uuid[], $8::uuid[], $9::text[], $10::timestamptz[])
        """

    async def apply(self, connection: Connection, events: Sequence[Envelope]) -> set[str]:
        rows = await connection.fetch(self._select, list({e.stream_id for e in events}))
        known = {row["account_id"]: _Account(**dict(row)) for row in rows}
        changed: dict[UUID, _Account] = {}
        entries: list[tuple[object, ...]] = []
        for envelope in events:
            at = envelope.at
            event = envelope.event
            if isinstance(event, AccountOpened):
                account = _Account(
                    event.account_id, event.owner_id, event.name, event.currency, 0, "open", 0, at, at
                )
                known[event.account_id] = account
            else:
                account = known[envelope.stream_id]  # KeyError: an account never opened (parked)
            movement = _movement(envelope)
            if movement is not None:
                entry_id, kind, amount, transfer_id, counterparty, reference = movement
                account.balance += amount if kind in _CREDITS else -amount
                entries.append(
                    (
                        entry_id,
                        account.account_id,
                        envelope.version,
                        kind,
                        amount,
                        account.balance,
                        transfer_id,
                        counterparty,
                        reference,
                        at,
                    )
                )
            elif isinstance(event, AccountClosed):
                account.status = "closed"
            account.version = envelope.version
            account.updated_at = at
            changed[account.account_id] = account
        await connection.execute(
            self._upsert,
            *(
                list(column)
                for column in zip(
                    *(
                        (
                            a.account_id,
                            a.owner_id,
                            a.name,
                            a.currency,
                            a.balance,
                            a.status,
                            a.version,
                            a.opened_at,
                            a.updated_at,
                        )
                        for a in changed.values()
                    ),
                    strict=True,
                )
            ),
        )
        if entries:
            await connection.execute(
                self._insert_entries, *(list(column) for column in zip(*entries, strict=True))
            )
        tags = {f"account:{account_id}" for account_id in changed}
        tags.update(f"owner:{account.owner_id}" for account in changed.values())
        return tags
