"""Rebuilds: from the event store into read_next, swapped in while writes and reads go on."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
import nats
import pytest

from contexts.catalogue import REGISTRY
from projectors.ledger.accounts import AccountsProjection
from projectors.ledger.owner_summaries import OwnerSummariesProjection
from projectors.rebuild import Rebuild, RebuildReport
from shared.infrastructure.event_store import PostgresEventStore
from tests.integration.projectors.helpers import dry_run, running_projectors, running_relay, wait_until
from tests.integration.projectors.poison import (
    BLOCKED,
    NEWER_THAN_CODE,
    Ledger,
    connect,
    expected_summaries,
    letters,
    projector_environment,
    read_accounts,
    read_summaries,
    store_accounts,
    stream_versions,
)
from tests.support.isolation import StreamNames, event_store_for

ACCOUNT_QUERY = "SELECT balance, version FROM read.accounts WHERE account_id = $1"
ENTRIES_QUERY = """
SELECT entry_id, version, kind, amount, balance_after FROM read.account_entries
 WHERE account_id = $1 ORDER BY version DESC LIMIT 20
"""
SUMMARY_QUERY = "SELECT currency, open_accounts, balance FROM read.owner_summaries WHERE owner_id = $1"
MAX_FAILURES = 50


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresEventStore]:
    async with event_store_for(database_url, size=8) as event_store:
        yield event_store


async def _converged(connection: asyncpg.Connection, ledger: Ledger) -> bool:
    """Both ledger projections applied every event the ledger appended."""
    return (
        await stream_versions(connection, "owner_summaries") == ledger.versions
        and await read_accounts(connection) == ledger.expected_accounts()
    )


@dataclass
class Readers:
    """Query-side readers: each loops over the three prepared queries and records what went wrong."""

    pool: asyncpg.Pool
    accounts: dict[UUID, UUID]  # account -> owner
    failures: list[str] = field(default_factory=list)
    reads: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - picks accounts, not secrets
        seen: dict[UUID, int] = {}
        ids = list(self.accounts)
        while not self.stop.is_set():
            account = rng.choice(ids)
            try:
                row = await self.pool.fetchrow(ACCOUNT_QUERY, account)
                page = await self.pool.fetch(ENTRIES_QUERY, account)
                summary = await self.pool.fetch(SUMMARY_QUERY, self.accounts[account])
            except Exception as error:  # noqa: BLE001 - every failure is what the test counts
                self.failures.append(f"{type(error).__name__}: {error}")
                if len(self.failures) >= MAX_FAILURES:
                    return  # enough to show; a closed pool must not spin here
                continue
            self.reads += 1
            if row is None or not page or not summary:
                self.failures.append(f"{account}: missing (account {row}, {len(page)} entries, {summary})")
            elif row["version"] < seen.get(account, 0):
                self.failures.append(f"{account}: version went back from {seen[account]} to {row['version']}")
            else:
                seen[account] = row["version"]
            await asyncio.sleep(0)

    @contextlib.asynccontextmanager
    async def running(self, count: int) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(self.run(seed)) for seed in range(count)]
        try:
            yield
        finally:
            self.stop.set()
            await asyncio.gather(*tasks)


@dataclass
class Writers:
    """Deposits appended without pause, each writer on accounts of its own (no version conflicts)."""

    ledger: Ledger
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    appended: int = 0

    async def run(self, accounts: list[UUID], seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - picks accounts and amounts, not secrets
        while not self.stop.is_set():
            await self.ledger.deposit(rng.choice(accounts), rng.randint(1, 9))
            self.appended += 1

    @contextlib.asynccontextmanager
    async def running(self, accounts: list[UUID], count: int) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(self.run(accounts[n::count], seed=n)) for n in range(count)]
        try:
            yield
        finally:
            self.stop.set()
            await asyncio.gather(*tasks)


async def _oid(connection: asyncpg.Connection) -> int:
    return int(await connection.fetchval("SELECT 'read.accounts'::regclass::oid"))


REBUILDS = 3


@pytest.mark.slow
async def test_rebuilds_swap_in_under_writes_and_reads_without_a_failed_read(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str
) -> None:
    """While deposits keep flowing through relay and projectors and readers keep running the query
    side's prepared statements, rebuilds of `accounts` (three in a row) build from the store, catch
    up under the checkpoint lock and swap their tables in, each within a bound: no read fails, no
    account disappears or goes back a version, each swap puts a new table in place, the live
    projector goes on after each, and once writes stop both ledger projections equal the store's
    states and a dry-run rebuild."""
    environment = projector_environment(service_environment)
    ledger = Ledger(store)
    owners = [uuid.uuid4() for _ in range(40)]
    accounts: dict[UUID, UUID] = {}
    for n in range(200):
        accounts[await ledger.open(owners[n % len(owners)], deposits=[1] * 20)] = owners[n % len(owners)]
    initial_events = 200 * 21
    ids = list(accounts)

    reader_pool = await asyncpg.create_pool(database_url, min_size=4, max_size=4, timeout=10)
    rebuild_pool = await asyncpg.create_pool(database_url, min_size=2, max_size=2, timeout=10)
    readers = Readers(reader_pool, accounts)
    writers = Writers(ledger)

    async def more_writes(count: int) -> None:
        mark = writers.appended

        async def written() -> bool:
            return writers.appended >= mark + count

        await wait_until(written, 10, f"{count} more deposits")

    try:
        async with (
            running_relay(environment),
            running_projectors(environment),
            connect(database_url) as connection,
        ):
            await wait_until(lambda: _converged(connection, ledger), 30, "the first events apply")
            oids = [await _oid(connection)]
            reports: list[RebuildReport] = []
            figures: list[tuple[float, int, int, int]] = []
            async with readers.running(4):
                async with writers.running(ids, 3):
                    await more_writes(100)
                    for _ in range(REBUILDS):
                        appended_before, reads_before = writers.appended, readers.reads
                        started = time.monotonic()
                        rebuild = Rebuild(
                            AccountsProjection, pool=rebuild_pool, registry=REGISTRY, chunk_size=500
                        )
                        # Bounded: a rebuild that chased the writes would hold the projector off long.
                        report = await asyncio.wait_for(rebuild.run(), 20)
                        reports.append(report)
                        oids.append(await _oid(connection))
                        figures.append(
                            (
                                round(time.monotonic() - started, 2),
                                report.events,
                                writers.appended - appended_before,
                                readers.reads - reads_before,
                            )
                        )
                        assert report.events >= initial_events + appended_before
                        await more_writes(100)
                await wait_until(lambda: _converged(connection, ledger), 20, "the projections catch up")

            assert readers.failures == []
            assert [(r.swapped, r.parked) for r in reports] == [(True, 0)] * REBUILDS
            assert len(set(oids)) == REBUILDS + 1, "a swap left the same table in place"
            assert all(appended > 0 for _, _, appended, _ in figures), "no write ran during a rebuild"
            assert all(reads > 0 for _, _, _, reads in figures), "no read ran during a rebuild"
            assert await read_accounts(connection) == await store_accounts(connection)
            assert await store_accounts(connection) == ledger.expected_accounts()
            assert await read_summaries(connection) == expected_summaries(ledger.states)
            assert await connection.fetchval("SELECT count(*) FROM read.account_entries") == sum(
                version - 1 for version in ledger.versions.values()
            )
            # (seconds, events, deposits appended during it, reads during it) per rebuild; shown with -s
            print("rebuilds:", figures, "reads:", readers.reads)
    finally:
        await reader_pool.close()
        await rebuild_pool.close()
    for name in ("accounts", "owner_summaries"):
        assert (await dry_run(database_url, name)).differences == [], name


async def test_a_rebuild_after_the_bus_was_purged_recomputes_everything_from_the_store(
    store: PostgresEventStore,
    service_environment: dict[str, str],
    database_url: str,
    nats_url: str,
    stream_names: StreamNames,
) -> None:
    """With the JetStream stream purged (its old events gone) and the read rows wrecked (accounts
    truncated, entries deleted, summaries zeroed) while the projectors are stopped, rebuilding both
    ledger projections restores every row from the event store alone; projectors started again then
    apply events appended after the purge on top of the rebuilt tables."""
    environment = projector_environment(service_environment)
    ledger = Ledger(store)
    owners = [uuid.uuid4() for _ in range(5)]
    accounts = [await ledger.open(owners[n % 5], deposits=[n + 1, 2, 3]) for n in range(30)]
    total_events = 30 * 4

    async with running_relay(environment), connect(database_url) as connection:
        async with running_projectors(environment):
            await wait_until(lambda: _converged(connection, ledger), 20, "the events apply")
        client = await nats.connect(servers=[nats_url], connect_timeout=5)
        try:
            js = client.jetstream()
            assert (await js.stream_info(stream_names.stream)).state.messages == total_events
            await js.purge_stream(stream_names.stream)
            assert (await js.stream_info(stream_names.stream)).state.messages == 0
        finally:
            await client.close()
        await connection.execute("TRUNCATE read.accounts")
        await connection.execute("DELETE FROM read.account_entries WHERE version > 2")
        await connection.execute("UPDATE read.owner_summaries SET balance = 0, open_accounts = 0")
        assert await read_accounts(connection) == {}

        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2, timeout=10)
        try:
            for projection_class in (AccountsProjection, OwnerSummariesProjection):
                report = await Rebuild(projection_class, pool=pool, registry=REGISTRY, chunk_size=50).run()
                assert (report.events, report.swapped, report.parked) == (total_events, True, 0)
        finally:
            await pool.close()

        assert await read_accounts(connection) == await store_accounts(connection)
        assert await read_accounts(connection) == ledger.expected_accounts()
        assert await connection.fetchval("SELECT count(*) FROM read.account_entries") == 30 * 3
        assert await read_summaries(connection) == expected_summaries(ledger.states)
        for name in ("accounts", "owner_summaries"):
            assert (await dry_run(database_url, name)).differences == [], name

        newcomer = await ledger.open(owners[0], deposits=[50])
        await ledger.deposit(accounts[0], 7)
        async with running_projectors(environment):
            await wait_until(lambda: _converged(connection, ledger), 10, "events after the purge apply")
        assert (await read_accounts(connection))[newcomer] == (50, 2)
        assert (await read_accounts(connection))[accounts[0]] == (1 + 2 + 3 + 7, 5)
        assert await read_summaries(connection) == expected_summaries(ledger.states)


async def test_a_rebuild_keeps_one_dead_letter_per_event_of_a_poisoned_stream(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str
) -> None:
    """A poisoned stream whose events span several of the rebuild's chunks is read again from the
    store with each later event, and its events parked again each time: the rebuild still swaps in,
    the dead letters hold each event once (the poison's own error kept, its attempts added up), and
    the rebuilt tables equal what the live projector had built."""
    environment = projector_environment(service_environment)
    ledger = Ledger(store)
    poisoned = await ledger.open()
    await ledger.deposit(poisoned, 100, schema_version=2)
    await ledger.deposit(poisoned, 7)
    others = [await ledger.open(deposits=[1]) for _ in range(3)]
    await ledger.deposit(poisoned, 11)
    expected = {**{a: (1, 2) for a in others}, poisoned: (0, 1)}

    async with (
        running_relay(environment),
        running_projectors(environment, ["accounts"]),
        connect(database_url) as connection,
    ):

        async def parked() -> bool:
            return (
                len(await letters(connection, "accounts")) == 3
                and await read_accounts(connection) == expected
            )

        await wait_until(parked, 15, "the poison and the two events behind it are parked")
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2, timeout=10)
        try:
            # Two events a chunk: the poison, the event behind it and the last one come in three.
            report = await Rebuild(AccountsProjection, pool=pool, registry=REGISTRY, chunk_size=2).run()
        finally:
            await pool.close()

        assert (report.swapped, report.parked, report.events) == (True, 3, 10)
        assert [(x.version, x.error, x.attempts) for x in await letters(connection, "accounts")] == [
            (2, f"UnknownEventType: {NEWER_THAN_CODE}", 2),
            (3, BLOCKED, 0),
            (4, BLOCKED, 0),
        ]
        assert await read_accounts(connection) == expected
    assert (await dry_run(database_url, "accounts")).differences == []
