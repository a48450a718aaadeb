"""Fault helpers for the projector tests.

- a projector subprocess (`cqrs projector run`) that a test can SIGKILL, restart or stop;
- a ledger appender that keeps its own tally of what it wrote;
- publishing stored events to JetStream directly (copies, shuffles, gaps);
- the exact check of the ledger read models against the store, and a dry-run rebuild.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from uuid import UUID

import asyncpg
import nats
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from contexts.catalogue import REGISTRY
from contexts.ledger.events import AccountOpened, LedgerEvent, MoneyDeposited
from projectors.catalogue import PROJECTIONS
from relay.publisher import event_headers
from shared.eventsourcing.store import NewEvent, RecordedEvent, StreamWrite
from shared.infrastructure.event_store import PostgresEventStore
from shared.messaging.jetstream import ensure_stream, stream_config
from tests.integration.projectors.helpers import dry_run
from tests.integration.relay.helpers import outbox_size, wait_until

LEDGER_PROJECTIONS: Final = ("accounts", "owner_summaries")
CONSUMER_PREFIX: Final = "projection-"
# A killed projector's batch comes back after the ack wait: short enough for a test, and longer
# than a projector takes to start (~3 s), so that the restarted one meets newer events first,
# the out-of-order redelivery that production (30 s) always gives.
FAST_REDELIVERY: Final = {
    "CQRS_LOG_FORMAT": "json",
    "CQRS_PROJECTOR_ACK_WAIT_SECONDS": "6",
    "CQRS_PROJECTOR_FETCH_TIMEOUT_SECONDS": "0.5",
}
_MONEY_EVENTS: Final = ("MoneyDeposited", "MoneyWithdrawn", "TransferSent", "TransferReceived")


# --- the projector as a process -------------------------------------------------------------------


@dataclass
class ProjectorProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def exited(self, seconds: float) -> int:
        """Wait for the process to end on its own; its return code (negative: the signal)."""

        async def ended() -> bool:
            return not self.running()

        try:
            await wait_until(ended, seconds, "the projector process exits")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.log_tail()}") from None
        code = self.process.returncode
        assert code is not None
        return code

    async def kill(self) -> None:
        """SIGKILL: no batch in flight finishes, nothing is acked."""
        self.process.send_signal(signal.SIGKILL)
        assert await self.exited(10) == -signal.SIGKILL

    async def stop(self) -> int:
        """SIGTERM: the projector finishes its batch in flight and exits."""
        self.process.send_signal(signal.SIGTERM)
        return await self.exited(30)


class ProjectorLauncher:
    """Starts projector subprocesses on one test's resources, and ends every one it started."""

    def __init__(self, environment: Mapping[str, str], log_dir: Path) -> None:
        self.environment = dict(environment)
        self.log_dir = log_dir
        self.started: list[ProjectorProcess] = []

    def start(self, *names: str, crash_point: str | None = None) -> ProjectorProcess:
        """`cqrs projector run NAMES`, its output in a log file of its own."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CQRS_")}
        env = {**inherited, **FAST_REDELIVERY, **self.environment}
        if crash_point is not None:
            env["CQRS_PROJECTOR_CRASH_POINT"] = crash_point
        log_path = self.log_dir / f"projector-{len(self.started)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "operator_cli", "projector", "run", *names],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        projector = ProjectorProcess(process, log_path)
        self.started.append(projector)
        return projector

    def close(self) -> None:
        for projector in self.started:
            if projector.running():
                projector.process.send_signal(signal.SIGKILL)
                projector.process.wait(10)


# --- appending, with a tally of what was written ----------------------------------------------------


@dataclass
class Tally:
    """What a test appended to the ledger: the expectations no read model can influence."""

    versions: dict[UUID, int] = field(default_factory=dict)
    balances: dict[UUID, int] = field(default_factory=dict)
    events: int = 0
    deposits: int = 0

    @property
    def total(self) -> int:
        return sum(self.balances.values())


def _amount(account_id: UUID, version: int) -> int:
    # Varied amounts, so that a deposit applied twice or skipped changes a sum visibly.
    return 1 + (account_id.int % 89 + version * 37) % 1000


def _new_event(account_id: UUID, version: int, event: LedgerEvent) -> NewEvent:
    return NewEvent(
        event_id=uuid.uuid4(),
        stream_id=account_id,
        stream_type="account",
        version=version,
        event_type=REGISTRY.type_of(event).name,
        schema_version=1,
        data=REGISTRY.encode(event),
        metadata=b'{"correlation_id":"c-1","causation_id":"r-1"}',
    )


async def append_ledger(
    store: PostgresEventStore,
    tally: Tally,
    *,
    new_accounts: int,
    deposits: int,
    existing: Iterable[UUID] = (),
    more_deposits: int = 0,
) -> list[UUID]:
    """Open `new_accounts` accounts with `deposits` deposits each, and add `more_deposits` to each of
    `existing`; one append per account. Returns the new accounts' ids."""
    opened: list[UUID] = []
    for _ in range(new_accounts):
        account_id = uuid.uuid4()
        opened.append(account_id)
        events = [
            _new_event(
                account_id,
                1,
                AccountOpened(account_id=account_id, owner_id=uuid.uuid4(), currency="EUR", name="t"),
            )
        ]
        tally.versions[account_id] = 1
        tally.balances[account_id] = 0
        tally.events += 1
        events += _deposits(tally, account_id, deposits)
        await store.append([StreamWrite(account_id, "account", 0, len(events), b"{}")], events)
    for account_id in existing:
        before = tally.versions[account_id]
        events = _deposits(tally, account_id, more_deposits)
        write = StreamWrite(account_id, "account", before, tally.versions[account_id], b"{}")
        await store.append([write], events)
    return opened


def _deposits(tally: Tally, account_id: UUID, count: int) -> list[NewEvent]:
    events = []
    for _ in range(count):
        version = tally.versions[account_id] + 1
        amount = _amount(account_id, version)
        deposit = MoneyDeposited(
            account_id=account_id, entry_id=uuid.uuid4(), amount=amount, reference=f"d{version}"
        )
        events.append(_new_event(account_id, version, deposit))
        tally.versions[account_id] = version
        tally.balances[account_id] += amount
        tally.events += 1
        tally.deposits += 1
    return events


# --- JetStream, directly -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def jetstream(url: str) -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(servers=[url], connect_timeout=5, max_reconnect_attempts=2)
    try:
        yield client.jetstream(timeout=5)
    finally:
        await client.close()


async def ensure_events_stream(js: JetStreamContext, environment: Mapping[str, str]) -> None:
    """The stream as the relay creates it (for tests that publish without a relay)."""
    await ensure_stream(
        js, stream_config(environment["CQRS_NATS_STREAM"], environment["CQRS_NATS_SUBJECT_PREFIX"])
    )


async def publish(
    js: JetStreamContext,
    environment: Mapping[str, str],
    events: Sequence[RecordedEvent],
    *,
    as_copies: bool = False,
) -> None:
    """Publish stored events with the relay's subjects and headers, in the order given.

    `as_copies` gives each a fresh Nats-Msg-Id, so JetStream's dedupe lets it in
    again: a duplicate delivery that only the projector can recognise.
    """
    prefix = environment["CQRS_NATS_SUBJECT_PREFIX"]
    for event in events:
        headers = event_headers(event)
        if as_copies:
            headers["Nats-Msg-Id"] = str(uuid.uuid4())
        subject = REGISTRY.subject(prefix, event.stream_type, str(event.stream_id))
        ack = await js.publish(subject, event.data, headers=headers)
        assert not ack.duplicate, f"JetStream took {event.event_id} for a duplicate"


async def last_sequence(js: JetStreamContext, environment: Mapping[str, str]) -> int:
    info = await js.stream_info(environment["CQRS_NATS_STREAM"])
    return int(info.state.last_seq)


async def consumer(js: JetStreamContext, environment: Mapping[str, str], projection: str) -> ConsumerInfo:
    return await js.consumer_info(environment["CQRS_NATS_STREAM"], f"{CONSUMER_PREFIX}{projection}")


# --- what the store says, and what the read models say ---------------------------------------------


@contextlib.asynccontextmanager
async def connected(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        yield connection
    finally:
        await connection.close()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    stream_sequence: int
    position: int
    state: str
    bus_epoch: str | None


async def checkpoints(connection: asyncpg.Connection) -> dict[str, Checkpoint]:
    rows = await connection.fetch(
        "SELECT projection, stream_sequence, position, state, bus_epoch FROM projection_checkpoints"
    )
    return {
        row["projection"]: Checkpoint(row["stream_sequence"], row["position"], row["state"], row["bus_epoch"])
        for row in rows
    }


async def store_versions(connection: asyncpg.Connection) -> dict[UUID, int]:
    """The version of each account stream, as the write side recorded it."""
    rows = await connection.fetch(
        "SELECT stream_id, version FROM aggregate_states WHERE stream_type = 'account'"
    )
    return {row["stream_id"]: row["version"] for row in rows}


async def stream_versions(connection: asyncpg.Connection, projection: str) -> dict[UUID, int]:
    assert projection in PROJECTIONS  # a known name, never input
    rows = await connection.fetch(f"SELECT stream_id, version FROM read.{projection}_streams")  # noqa: S608
    return {row["stream_id"]: row["version"] for row in rows}


async def caught_up(connection: asyncpg.Connection) -> bool:
    """Both ledger projections reached every account stream's version in the store."""
    expected = await store_versions(connection)
    for projection in LEDGER_PROJECTIONS:
        if await stream_versions(connection, projection) != expected:
            return False
    return True


async def wait_caught_up(database_url: str, seconds: float = 20) -> None:
    async with connected(database_url) as connection:
        try:
            await wait_until(lambda: caught_up(connection), seconds, "the ledger projections catch up")
        except AssertionError as error:
            raise AssertionError(f"{error}; {await _lag(connection)}") from None


async def _lag(connection: asyncpg.Connection) -> str:
    """Which streams each ledger projection lacks, for a failure message."""
    expected = await store_versions(connection)
    lags = []
    for projection in LEDGER_PROJECTIONS:
        applied = await stream_versions(connection, projection)
        behind = {s: (applied.get(s, 0), v) for s, v in expected.items() if applied.get(s, 0) != v}
        lags.append(
            f"{projection} lags on {len(behind)} streams (applied, stored): {list(behind.values())[:8]}"
        )
    marks = await checkpoints(connection)
    return "; ".join(lags) + f"; checkpoints {marks}"


async def wait_consumed(js: JetStreamContext, environment: Mapping[str, str], seconds: float = 20) -> int:
    """Every ledger consumer acked the whole stream (nothing pending, nothing to redeliver)."""

    async def acked_everything() -> bool:
        last = await last_sequence(js, environment)
        for projection in LEDGER_PROJECTIONS:
            try:
                info = await consumer(js, environment, projection)
            except NotFoundError:
                return False  # the projector has not created it yet
            if info.num_pending or info.num_ack_pending or info.ack_floor is None:
                return False
            if info.ack_floor.stream_seq != last:
                return False
        return True

    await wait_until(acked_everything, seconds, "the ledger consumers ack the whole stream")
    return await last_sequence(js, environment)


@dataclass(frozen=True, slots=True)
class StoreLedger:
    versions: dict[UUID, int]
    balances: dict[UUID, int]
    money_events: dict[UUID, int]
    owners: dict[UUID, UUID]


async def read_store(connection: asyncpg.Connection) -> StoreLedger:
    """The ledger as the event store holds it: versions, sums of the money events, owners."""
    rows = await connection.fetch(
        """SELECT stream_id,
                  count(*) FILTER (WHERE event_type = ANY($1::text[])) AS money,
                  coalesce(sum(CASE event_type
                      WHEN 'MoneyDeposited' THEN (data->>'amount')::bigint
                      WHEN 'TransferReceived' THEN (data->>'amount')::bigint
                      WHEN 'MoneyWithdrawn' THEN -(data->>'amount')::bigint
                      WHEN 'TransferSent' THEN -(data->>'amount')::bigint
                      ELSE 0 END), 0) AS balance,
                  max(CASE WHEN event_type = 'AccountOpened' THEN data->>'owner_id' END) AS owner
             FROM events WHERE stream_type = 'account' GROUP BY stream_id""",
        list(_MONEY_EVENTS),
    )
    return StoreLedger(
        versions=await store_versions(connection),
        balances={row["stream_id"]: row["balance"] for row in rows},
        money_events={row["stream_id"]: row["money"] for row in rows},
        owners={row["stream_id"]: UUID(row["owner"]) for row in rows},
    )


async def assert_ledger_exact(database_url: str, tally: Tally) -> None:
    """The read models hold exactly what the store says, each event once, and equal a rebuild.

    Exactly once is visible three ways: one entry per money event, balances equal
    to the sums of the amounts (a deposit applied twice would add twice to the
    owner summary, which no unique index guards), and versions equal to the
    store's aggregate versions. No event may be parked either.
    """
    async with connected(database_url) as connection:
        store = await read_store(connection)
        # The store holds what this test wrote: the expectations are not taken from thin air.
        assert store.versions == tally.versions
        assert store.balances == tally.balances
        assert sum(store.money_events.values()) == tally.deposits
        accounts = await connection.fetch("SELECT account_id, balance, version, status FROM read.accounts")
        assert {r["account_id"]: (r["balance"], r["version"], r["status"]) for r in accounts} == {
            account: (store.balances[account], version, "open") for account, version in store.versions.items()
        }
        entries = await connection.fetch(
            """SELECT account_id, count(*) AS entries, count(DISTINCT version) AS versions,
                      min(version) AS first, max(version) AS last,
                      (array_agg(balance_after ORDER BY version DESC))[1] AS closing
                 FROM read.account_entries GROUP BY account_id"""
        )
        assert {
            r["account_id"]: (r["entries"], r["versions"], r["first"], r["last"], r["closing"])
            for r in entries
        } == {
            account: (count, count, 2, store.versions[account], store.balances[account])
            for account, count in store.money_events.items()
            if count
        }
        assert await connection.fetchval("SELECT count(*) FROM read.account_entries") == tally.deposits
        for projection in LEDGER_PROJECTIONS:
            assert await stream_versions(connection, projection) == store.versions, projection
        summaries = await connection.fetch(
            "SELECT owner_id, currency, open_accounts, balance FROM read.owner_summaries"
        )
        assert {r["owner_id"]: (r["currency"], r["open_accounts"], r["balance"]) for r in summaries} == {
            store.owners[account]: ("EUR", 1, balance) for account, balance in store.balances.items()
        }
        assert await connection.fetchval("SELECT sum(balance) FROM read.owner_summaries") == tally.total
        parked = await connection.fetch("SELECT projection, event_type, error FROM dead_letters")
        assert parked == [], [dict(r) for r in parked]
        states = {name: c.state for name, c in (await checkpoints(connection)).items()}
        assert set(states.values()) <= {"running"}, states
    for name in PROJECTIONS:
        report = await dry_run(database_url, name)
        assert report.differences == [], (name, report.differences)
        assert report.parked == 0, name


async def load_events(
    store: PostgresEventStore, stream_ids: Iterable[UUID]
) -> dict[UUID, list[RecordedEvent]]:
    """Each stream's stored events, by version."""
    return {stream_id: await store.load_stream(stream_id) for stream_id in stream_ids}


async def outbox_drained(database_url: str) -> None:
    """Wait until the relay has published everything in the outbox."""

    async def empty() -> bool:
        return await outbox_size(database_url) == 0

    await wait_until(empty, 20, "the relay publishes the outbox")
