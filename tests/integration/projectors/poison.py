"""Helpers for the dead-letter, rebuild and CLI tests of the projectors.

- `Ledger` appends account events through the event store as the command side
  would: each stream's version and its folded state (with its balance) in
  `aggregate_states`, so a read model can be compared with the store;
- `Ledger.deposit(..., schema_version=2)` stores a `MoneyDeposited` of a
  schema version newer than the code knows: a poison event for the projectors;
- `fixed_registry()` is "the fix deployed": a registry that knows that v2;
- readers of the read models, the store's states and the dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar
from uuid import UUID

import asyncpg
import msgspec

from contexts.identity import events as identity_events
from contexts.ledger import events as ledger_events
from contexts.ledger.decider import Account, evolve
from contexts.ledger.events import AccountEvent, AccountOpened, MoneyDeposited
from projectors.projection import Projection
from projectors.runner import ProjectionRunner
from projectors.settings import ProjectorSettings
from shared.cache.tags import TagAnnouncer
from shared.eventsourcing.registry import EventRegistry
from shared.eventsourcing.store import NewEvent, StreamWrite
from shared.infrastructure.event_store import PostgresEventStore
from shared.infrastructure.resources import open_resources
from shared.settings import load_settings

# Attempts at a failing event before it is parked, as the tests configure it.
MAX_ATTEMPTS = 3
NEWER_THAN_CODE = "MoneyDeposited v2 is newer than this code (v1)"
BLOCKED = "blocked: an earlier event of its stream is parked"
_METADATA = b'{"correlation_id":"c-1","causation_id":"r-1"}'


def projector_environment(service_environment: Mapping[str, str]) -> dict[str, str]:
    """The test's environment with quick projector timings (still real servers)."""
    return {
        **service_environment,
        "CQRS_PROJECTOR_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "CQRS_PROJECTOR_RETRY_DELAY_SECONDS": "0.01",
        "CQRS_PROJECTOR_HALT_POLL_SECONDS": "0.1",
        "CQRS_PROJECTOR_FETCH_TIMEOUT_SECONDS": "0.2",
    }


class MoneyDepositedV2(MoneyDeposited, frozen=True, kw_only=True):
    """The deposit at schema version 2 (same fields): what a newer command side writes.

    A subclass of the v1 type, so the projections' `match` on `MoneyDeposited` applies it.
    """

    schema_version: ClassVar[int] = 2


def fixed_registry() -> EventRegistry:
    """The catalogue's registry with `MoneyDeposited` at v2 and an upcaster from v1."""
    registry = EventRegistry()
    for context in (ledger_events, identity_events):
        for cls in context.EVENT_TYPES:
            current = MoneyDepositedV2 if cls is MoneyDeposited else cls
            registry.register(current, context=context.CONTEXT, aggregate=context.AGGREGATE)
    registry.register_upcaster("MoneyDeposited", 1, dict)
    return registry


@dataclass
class Ledger:
    """Appends account events through the store, one stream write per call, state folded as the
    command side does; `states` holds what the store holds."""

    store: PostgresEventStore
    states: dict[UUID, Account] = field(default_factory=dict)
    versions: dict[UUID, int] = field(default_factory=dict)

    async def open(self, owner_id: UUID | None = None, *, deposits: Sequence[int] = ()) -> UUID:
        account_id = uuid.uuid4()
        opened = AccountOpened(
            account_id=account_id, owner_id=owner_id or uuid.uuid4(), currency="EUR", name="t"
        )
        await self.append(account_id, [opened, *(self._deposit(account_id, a) for a in deposits)])
        return account_id

    async def deposit(self, account_id: UUID, amount: int, *, schema_version: int = 1) -> int:
        """Append one deposit (at the given schema version); return its stream version."""
        await self.append(account_id, [self._deposit(account_id, amount)], schema_version=schema_version)
        return self.versions[account_id]

    async def append(
        self, account_id: UUID, events: Sequence[AccountEvent], *, schema_version: int = 1
    ) -> None:
        version = self.versions.get(account_id, 0)
        state = self.states.get(account_id)
        new_events = []
        for offset, event in enumerate(events, start=1):
            state = evolve(state, event)
            new_events.append(
                NewEvent(
                    event_id=uuid.uuid4(),
                    stream_id=account_id,
                    stream_type="account",
                    version=version + offset,
                    event_type=event.event_type,
                    schema_version=schema_version,
                    data=msgspec.json.encode(event),
                    metadata=_METADATA,
                )
            )
        assert state is not None
        new_version = version + len(events)
        write = StreamWrite(account_id, "account", version, new_version, msgspec.json.encode(state))
        await self.store.append([write], new_events)
        self.versions[account_id] = new_version
        self.states[account_id] = state

    async def orphan(self, deposits: Sequence[int]) -> UUID:
        """Deposits into an account stream that was never opened: no projection can apply them."""
        account_id = uuid.uuid4()
        new_events = [
            NewEvent(
                event_id=uuid.uuid4(),
                stream_id=account_id,
                stream_type="account",
                version=version,
                event_type="MoneyDeposited",
                schema_version=1,
                data=msgspec.json.encode(self._deposit(account_id, amount)),
                metadata=_METADATA,
            )
            for version, amount in enumerate(deposits, start=1)
        ]
        write = StreamWrite(account_id, "account", 0, len(deposits), b"{}")
        await self.store.append([write], new_events)
        return account_id

    @staticmethod
    def _deposit(account_id: UUID, amount: int) -> MoneyDeposited:
        return MoneyDeposited(account_id=account_id, entry_id=uuid.uuid4(), amount=amount, reference="r")

    def expected_accounts(self) -> dict[UUID, tuple[int, int]]:
        """(balance, version) of every account, as the store has them."""
        return {i: (s.balance, self.versions[i]) for i, s in self.states.items()}


@contextlib.asynccontextmanager
async def connect(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        yield connection
    finally:
        await connection.close()


async def read_accounts(connection: asyncpg.Connection) -> dict[UUID, tuple[int, int]]:
    """(balance, version) of every row of read.accounts."""
    rows = await connection.fetch("SELECT account_id, balance, version FROM read.accounts")
    return {row["account_id"]: (row["balance"], row["version"]) for row in rows}


async def store_accounts(connection: asyncpg.Connection) -> dict[UUID, tuple[int, int]]:
    """(balance, version) of every account stream in aggregate_states: what the command side decided."""
    rows = await connection.fetch(
        "SELECT stream_id, version, (state->>'balance')::bigint AS balance "
        "FROM aggregate_states WHERE stream_type = 'account'"
    )
    return {row["stream_id"]: (row["balance"], row["version"]) for row in rows}


async def read_summaries(connection: asyncpg.Connection) -> dict[tuple[UUID, str], tuple[int, int]]:
    """(owner, currency) -> (open accounts, balance) of every row of read.owner_summaries."""
    rows = await connection.fetch(
        "SELECT owner_id, currency, open_accounts, balance FROM read.owner_summaries"
    )
    return {(r["owner_id"], r["currency"]): (r["open_accounts"], r["balance"]) for r in rows}


def expected_summaries(accounts: Mapping[UUID, Account]) -> dict[tuple[UUID, str], tuple[int, int]]:
    """What read.owner_summaries should hold for these (open) accounts."""
    summaries: dict[tuple[UUID, str], tuple[int, int]] = {}
    for state in accounts.values():
        count, balance = summaries.get((state.owner_id, state.currency), (0, 0))
        summaries[(state.owner_id, state.currency)] = (count + 1, balance + state.balance)
    return summaries


async def entries(connection: asyncpg.Connection, account_id: UUID) -> list[tuple[int, str, int, int]]:
    """(version, kind, amount, balance_after) of an account's entries, oldest first."""
    rows = await connection.fetch(
        "SELECT version, kind, amount, balance_after FROM read.account_entries "
        "WHERE account_id = $1 ORDER BY version",
        account_id,
    )
    return [(row["version"], row["kind"], row["amount"], row["balance_after"]) for row in rows]


async def stream_versions(connection: asyncpg.Connection, projection: str) -> dict[UUID, int]:
    table = {"accounts": "accounts_streams", "owner_summaries": "owner_summaries_streams"}[projection]
    rows = await connection.fetch(f"SELECT stream_id, version FROM read.{table}")  # noqa: S608 - fixed names
    return {row["stream_id"]: row["version"] for row in rows}


@dataclass(frozen=True, slots=True)
class Letter:
    id: int
    stream_id: UUID
    version: int
    event_type: str
    error: str
    attempts: int


async def letters(connection: asyncpg.Connection, projection: str) -> list[Letter]:
    """The projection's dead letters in stream order (those dropped are records, no longer letters)."""
    rows = await connection.fetch(
        "SELECT id, stream_id, version, event_type, error, attempts FROM dead_letters "
        "WHERE projection = $1 AND dropped_at IS NULL ORDER BY stream_id, version",
        projection,
    )
    return [Letter(**dict(row)) for row in rows]


async def checkpoint(connection: asyncpg.Connection, projection: str) -> asyncpg.Record:
    row = await connection.fetchrow(
        "SELECT position, state, halted_reason FROM projection_checkpoints WHERE projection = $1", projection
    )
    assert row is not None, f"{projection} has no checkpoint"
    return row


@dataclass(frozen=True, slots=True)
class RunningRunner:
    runner: ProjectionRunner
    task: asyncio.Task[None]

    def check(self) -> None:
        """Raise what stopped the runner, if it stopped: call it in wait conditions to fail fast."""
        if self.task.done():
            self.task.result()
            raise AssertionError("the runner stopped without an error")


@contextlib.asynccontextmanager
async def running_runner(
    environment: Mapping[str, str], projection: Projection, registry: EventRegistry
) -> AsyncIterator[RunningRunner]:
    """One projection's runner in this process, built as projectors/service.py builds them."""
    settings = load_settings(ProjectorSettings, environment)
    stop = asyncio.Event()
    async with open_resources(settings, process_name="projector-test") as resources:
        runner = ProjectionRunner(
            projection,
            settings=settings,
            pool=resources.pool,
            nats=resources.nats,
            announcer=TagAnnouncer(resources.redis, key_prefix=settings.redis_key_prefix),
            registry=registry,
            stop=stop,
        )
        task = asyncio.create_task(runner.run())
        try:
            yield RunningRunner(runner, task)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


def run_cli(environment: Mapping[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """`cqrs ARGUMENTS` in a subprocess with only this test's CQRS_* variables."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("CQRS_")}
    return subprocess.run(
        [sys.executable, "-m", "operator_cli", *arguments],
        env={**inherited, **environment, "CQRS_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=os.getcwd(),
    )
