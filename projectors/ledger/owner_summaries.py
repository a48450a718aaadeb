"""Projection `owner_summaries`: per owner and currency, the open accounts and their total balance."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar
from uuid import UUID

from sqlalchemy import BigInteger, Boolean, Column, Integer, Table, Text
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

owner_summaries = Table(
    "owner_summaries",
    read_metadata,
    Column("owner_id", SqlUUID(as_uuid=True), primary_key=True),
    Column("currency", Text, primary_key=True),
    Column("open_accounts", Integer, nullable=False),
    Column("balance", BigInteger, nullable=False),
)

# What this projection remembers of each account: the later events of an
# account name neither its owner nor its currency.
owner_summary_accounts = Table(
    "owner_summary_accounts",
    read_metadata,
    Column("account_id", SqlUUID(as_uuid=True), primary_key=True),
    Column("owner_id", SqlUUID(as_uuid=True), nullable=False),
    Column("currency", Text, nullable=False),
    Column("open", Boolean, nullable=False),
)

_SummaryKey = tuple[UUID, str]


@dataclass(frozen=True, slots=True)
class _Account:
    owner_id: UUID
    currency: str


def _balance_change(event: object) -> int:
    match event:
        case MoneyDeposited(amount=amount) | TransferReceived(amount=amount):
            return amount
        case MoneyWithdrawn(amount=amount) | TransferSent(amount=amount):
            return -amount
        case _:
            return 0


class OwnerSummariesProjection(Projection):
    name: ClassVar[str] = "owner_summaries"
    stream_types: ClassVar[frozenset[str]] = frozenset({"account"})
    tables: ClassVar[tuple[Table, ...]] = (owner_summaries, owner_summary_accounts)
    streams: ClassVar[Table] = stream_versions_table("owner_summaries")

    def __init__(self, schema: str = READ_SCHEMA) -> None:
        super().__init__(schema)
        known = self.qualified(owner_summary_accounts)
        self._select = (
            f"SELECT account_id, owner_id, currency FROM {known} WHERE account_id = ANY($1::uuid[])"
        )
        self._remember = f"""
            INSERT INTO {known} (account_id, owner_id, currency, open)
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bool[])
            ON CONFLICT (account_id) DO UPDATE SET open = EXCLUDED.open
        """
        self._add = f"""
            INSERT INTO {self.qualified(owner_summaries)} AS s (owner_id, currency, open_accounts, balance)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bigint[])
            ON CONFLICT (owner_id, currency) DO UPDATE SET
                open_accounts = s.open_accounts + EXCLUDED.open_accounts,
                balance = s.balance + EXCLUDED.balance
        """

    async def apply(self, connection: Connection, events: Sequence[Envelope]) -> set[str]:
        rows = await connection.fetch(self._select, list({e.stream_id for e in events}))
        known = {row["account_id"]: _Account(row["owner_id"], row["currency"]) for row in rows}
        opened_or_closed: dict[UUID, bool] = {}
        accounts_delta: Counter[_SummaryKey] = Counter()
        balance_delta: Counter[_SummaryKey] = Counter()
        touched: set[_SummaryKey] = set()
        for envelope in events:
            event = envelope.event
            if isinstance(event, AccountOpened):
                known[event.account_id] = _Account(event.owner_id, event.currency)
            account = known[envelope.stream_id]  # KeyError: an account never opened (parked)
            key = (account.owner_id, account.currency)
            touched.add(key)
            if isinstance(event, AccountOpened):
                accounts_delta[key] += 1
                opened_or_closed[envelope.stream_id] = True
            elif isinstance(event, AccountClosed):
                accounts_delta[key] -= 1
                opened_or_closed[envelope.stream_id] = False
            balance_delta[key] += _balance_change(event)
        if opened_or_closed:
            ids = list(opened_or_closed)
            await connection.execute(
                self._remember,
                ids,
                [known[i].owner_id for i in ids],
                [known[i].currency for i in ids],
                [opened_or_closed[i] for i in ids],
            )
        # Every key touched, even when its changes add up to zero: whether a row
        # exists must not depend on how events were cut into batches, or a
        # rebuild (other chunks) would differ from the live table.
        keys = sorted(touched)
        if keys:
            await connection.execute(
                self._add,
                [owner for owner, _ in keys],
                [currency for _, currency in keys],
                [accounts_delta[key] for key in keys],
                [balance_delta[key] for key in keys],
            )
        return {f"owner:{owner}" for owner, _ in keys}
