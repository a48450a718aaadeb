"""Benchmark of the projector runtime: batch sizes side by side, rebuild from the store, command → read model.

    uv run python -m bench.projections [--events 50000] [--accounts 2000] [--rate 200] [--quick] [--no-docs]

Everything runs on 127.0.0.1, on the servers of bench/commands.py (an embedded
PostgreSQL, NATS and Redis in a temporary folder, or the servers named by
CQRS_BENCH_*; there the bench creates a database of its own and drops it at
the end, and its JetStream stream is its own too). Each figure has its
baseline measured in the same run:

1. fill: E ledger events (accounts opened along the way, deposits,
   withdrawals and transfers decided by the ledger's decider, over A accounts
   of A/4 owners) appended through PostgresEventStore in transactions of
   about 1,000 events, then drained to JetStream by `Relay`.
2. throughput: the `accounts` projection (run_projectors, in this process)
   from an empty read model (its tables truncated, its checkpoint deleted,
   a fresh durable consumer) until it applied all E events, with
   CQRS_PROJECTOR_BATCH_SIZE 1, 100 and 500; then all three projections
   together at 500. Baselines: batch size 1, and beside each batch size a
   trivial consumer of the same events (fetch, one unnest upsert of
   (stream_id, version), ack: the "one transaction per batch" ceiling of
   ../shared/ceilings.md, measured again here). Batch size 1 runs are
   stopped after --cap-seconds.
3. rebuild: `Rebuild(AccountsProjection)` from the store (bulk chunks of
   10,000 and of 2,000 events, tables swapped in at the end).
4. command → read model: `cqrs command-api`, `cqrs relay` and
   `cqrs projector run` as processes; deposits at a steady rate (open loop) to
   K accounts, at R/s and at a lighter baseline R0/s, in segments ordered
   light, moderate, moderate, light. For each 2xx the answer's stream version
   is awaited in read.accounts_streams by one poller that asks for every
   pending account every 2 ms; a NATS subscription on the events' subjects
   splits the time into 2xx → on the bus (relay) and bus → visible
   (projector).

Figures, ratios, the targets of issue 5 and what limits them are printed and
written to the section "## Projections (issue 5)" of docs/benchmarks.md (only
that section is replaced). `--profile` also prints a cProfile of the batch-500
accounts run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import functools
import inspect
import io
import os
import pstats
import random
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
import msgspec
import nats
import psutil
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from redis.asyncio import Redis

from bench.commands import (
    BUSY_MACHINE,
    CpuSnapshot,
    CpuUse,
    Servers,
    api_log_lines,
    bench_servers,
    command_api,
    cpu_use,
    delete_stream,
    ensure_jetstream,
    environment_lines,
    mint_token,
    percentiles,
    service_environment,
    wait_published,
    write_docs,
)
from bench.http_load import BODY, Plan, ProtocolError, Stats, connect, read_response, request_heads
from bench.logins import postgres_version_of, say
from contexts.catalogue import REGISTRY
from contexts.ledger import decider
from contexts.ledger.commands import Deposit, OpenAccount, Transfer, Withdraw
from contexts.ledger.decider import Account
from contexts.ledger.errors import InsufficientFunds
from contexts.ledger.events import AccountEvent
from projectors import checkpoints as checkpoints_module
from projectors import runner as runner_module
from projectors.applier import BatchApplier
from projectors.catalogue import PROJECTIONS, projection_class
from projectors.consumer import (
    MAX_ACK_PENDING_BATCHES,
    PREFETCH_BATCHES,
    PULL_REQUEST_EXPIRES_SECONDS,
    EventConsumer,
)
from projectors.ledger.accounts import AccountsProjection
from projectors.prefetch import PrefetchingPull
from projectors.rebuild import Progress, Rebuild, RebuildReport
from projectors.runner import ProjectionRunner, subject_filter
from projectors.service import run_projectors
from projectors.settings import ProjectorSettings
from relay.service import Relay
from shared.cache.tags import TagAnnouncer
from shared.db.migrate import upgrade
from shared.eventsourcing.store import NewEvent, StreamWrite
from shared.infrastructure.event_store import PostgresEventStore
from shared.infrastructure.postgres import PoolSettings, open_pool
from shared.observability.logging import configure_logging

SECTION: Final = "## Projections (issue 5)"

# Issue 5's targets, and the figures of ../shared/ceilings.md for this machine kind.
BATCHED_TARGET: Final = 20_000.0  # events/s, batched projector
REBUILD_TARGET: Final = 40_000.0  # events/s, rebuild from the store
P99_TARGET_MS: Final = 100.0  # command 2xx → read model, p99 at moderate load
CEILING_PER_EVENT: Final = 4_500.0  # one autocommit upsert + ack per event
CEILING_BATCHED: Final = 36_000.0  # one transaction (unnest) per 100 events
CEILING_BUS: Final = 56_000.0  # JetStream pull fetch(100) + ack, no database

BATCH_SIZES: Final = (1, 100, 500)
ALL_AT: Final = 500
REBUILD_CHUNKS: Final = (10_000, 2_000)
APPEND_EVENTS: Final = 1_000  # events per fill transaction
POLL_INTERVAL: Final = 0.002  # seconds between the poller's queries
VISIBLE_TIMEOUT: Final = 10.0  # a 2xx not visible after this long counts as unseen
SENDERS: Final = 16  # keep-alive connections of the steady load
NO_CAP: Final = 300.0  # seconds: the runs that go to the last event are bounded all the same
METADATA: Final = b'{"correlation_id":"bench-projections","causation_id":"bench-projections"}'
CURRENCY: Final = "EUR"

_answer_decoder = msgspec.json.Decoder(dict[str, object])


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class Options:
    events: int
    accounts: int
    cap_seconds: float
    latency_seconds: float
    warmup: float
    rate: float
    light_rate: float
    latency_accounts: int
    quick: bool
    write_docs: bool = True
    profile: bool = False
    workers: int = 2
    pool_size: int | None = None
    server: str = "granian"


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.projections",
        description="Projector benchmark: batch sizes, rebuild, command → read model latency.",
    )
    parser.add_argument("--events", type=int, default=None, help="ledger events in the store E (50,000)")
    parser.add_argument("--accounts", type=int, default=None, help="accounts they fall on A (2,000)")
    parser.add_argument(
        "--cap-seconds", type=float, default=None, help="bound of the batch-size-1 runs (12 s; 3 quick)"
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=None, help="measured seconds per load (20; 4 quick)"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="moderate load, deposits/s R (200)")
    parser.add_argument("--light-rate", type=float, default=50.0, help="light load, deposits/s R0 (50)")
    parser.add_argument("--latency-accounts", type=int, default=None, help="accounts K of the load (200)")
    parser.add_argument("--workers", type=int, default=2, help="command API worker processes (2)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the batch-500 run")
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs, for smoke use")
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    quick: bool = args.quick
    return Options(
        events=args.events or (5_000 if quick else 50_000),
        accounts=args.accounts or (500 if quick else 2_000),
        cap_seconds=args.cap_seconds or (3.0 if quick else 12.0),
        latency_seconds=args.latency_seconds or (4.0 if quick else 20.0),
        warmup=0.5 if quick else 1.0,
        rate=args.rate,
        light_rate=args.light_rate,
        latency_accounts=args.latency_accounts or (50 if quick else 200),
        quick=quick,
        write_docs=not args.no_docs,
        profile=args.profile,
        workers=args.workers,
    )


# --------------------------------------------------------------------------- a database of its own


@contextlib.contextmanager
def own_database(servers: Servers) -> Iterator[Servers]:
    """External servers: a fresh database beside CQRS_BENCH_DATABASE_URL's, dropped at the end.

    The rebuild reads every account event of its database, so it must hold
    this bench's events only. The embedded stack's database is fresh already.
    """
    if not servers.external:
        yield servers
        return
    name = f"cqrs_bench_projections_{uuid.uuid4().hex[:8]}"
    admin_url = servers.urls.database_url
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    url = urllib.parse.urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    try:
        yield dataclasses.replace(servers, urls=dataclasses.replace(servers.urls, database_url=url))
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


# --------------------------------------------------------------------------- fill: a ledger's events


@dataclass(slots=True)
class LedgerMix:
    """Decides a plausible stream of ledger commands with the ledger's own decider.

    Accounts open along the way (spread over the whole stream, so any prefix
    of it looks like the rest); half of the operations are deposits, a
    quarter withdrawals, a quarter transfers between two accounts (two
    events). An operation the decider refuses (insufficient funds) becomes a
    deposit.
    """

    events: int
    accounts: int
    owners: list[uuid.UUID]
    rng: random.Random = field(default_factory=lambda: random.Random(5))
    states: dict[uuid.UUID, Account] = field(default_factory=dict)
    versions: dict[uuid.UUID, int] = field(default_factory=dict)
    ids: list[uuid.UUID] = field(default_factory=list)
    produced: int = 0

    def next_operation(self) -> list[tuple[uuid.UUID, AccountEvent]]:
        due = 2 + (self.accounts - 2) * self.produced // max(self.events, 1)
        if len(self.ids) < min(self.accounts, due):
            account_id = uuid.uuid4()
            command = OpenAccount(
                account_id=account_id,
                owner_id=self.owners[len(self.ids) % len(self.owners)],
                currency=CURRENCY,
                name=f"bench {len(self.ids)}",
            )
            self.ids.append(account_id)
            return self._record([(account_id, event) for event in decider.decide(None, command)])
        roll = self.rng.random()
        amount = self.rng.randint(1, 500)
        account_id = self.ids[self.rng.randrange(len(self.ids))]
        try:
            if roll < 0.25:
                return self._record(self._withdraw(account_id, amount))
            if roll < 0.5:
                return self._record(self._transfer(account_id, amount))
        except InsufficientFunds:
            pass
        deposit = Deposit(account_id=account_id, entry_id=uuid.uuid4(), amount=amount, reference="bench")
        return self._record([(account_id, e) for e in decider.decide(self.states[account_id], deposit)])

    def _withdraw(self, account_id: uuid.UUID, amount: int) -> list[tuple[uuid.UUID, AccountEvent]]:
        command = Withdraw(account_id=account_id, entry_id=uuid.uuid4(), amount=amount, reference="bench")
        return [(account_id, e) for e in decider.decide(self.states[account_id], command)]

    def _transfer(self, source: uuid.UUID, amount: int) -> list[tuple[uuid.UUID, AccountEvent]]:
        target = self.ids[self.rng.randrange(len(self.ids))]
        if target == source:
            raise InsufficientFunds("same account: deposit instead")
        command = Transfer(
            transfer_id=uuid.uuid4(),
            from_account_id=source,
            to_account_id=target,
            amount=amount,
            reference="t",
        )
        sent, received = decider.decide_transfer(self.states[source], self.states[target], command)
        return [(source, e) for e in sent] + [(target, e) for e in received]

    def _record(self, events: list[tuple[uuid.UUID, AccountEvent]]) -> list[tuple[uuid.UUID, AccountEvent]]:
        for stream_id, event in events:
            self.states[stream_id] = decider.evolve(self.states.get(stream_id), event)
            self.versions[stream_id] = self.versions.get(stream_id, 0) + 1
        self.produced += len(events)
        return events


def append_arguments(
    mix: LedgerMix, operations: list[tuple[uuid.UUID, AccountEvent]]
) -> tuple[list[StreamWrite], list[NewEvent]]:
    """One transaction's writes: each stream from its version before to its version after."""
    after = dict(mix.versions)
    count: dict[uuid.UUID, int] = {}
    for stream_id, _ in operations:
        count[stream_id] = count.get(stream_id, 0) + 1
    next_version = {stream_id: after[stream_id] - n + 1 for stream_id, n in count.items()}
    events: list[NewEvent] = []
    for stream_id, event in operations:
        events.append(
            NewEvent(
                event_id=uuid.uuid4(),
                stream_id=stream_id,
                stream_type="account",
                version=next_version[stream_id],
                event_type=REGISTRY.type_of(event).name,
                schema_version=REGISTRY.type_of(event).schema_version,
                data=REGISTRY.encode(event),
                metadata=METADATA,
            )
        )
        next_version[stream_id] += 1
    writes = [
        StreamWrite(s, "account", after[s] - n, after[s], msgspec.json.encode(mix.states[s]))
        for s, n in count.items()
    ]
    return writes, events


async def append_mix(store: PostgresEventStore, mix: LedgerMix) -> None:
    while mix.produced < mix.events:
        operations: list[tuple[uuid.UUID, AccountEvent]] = []
        while len(operations) < APPEND_EVENTS and mix.produced < mix.events:
            operations += mix.next_operation()
        await store.append(*append_arguments(mix, operations))


def pool_settings(database_url: str, size: int = 2) -> PoolSettings:
    return PoolSettings(
        url=database_url,
        application_name="bench-projections",
        size=size,
        connect_timeout_seconds=10,
        command_timeout_seconds=120,
    )


@dataclass(frozen=True, slots=True)
class Fill:
    events: int
    accounts: int
    owners: int
    append_seconds: float
    relay_seconds: float
    relayed: int
    kinds: dict[str, int]


async def fill(servers: Servers, options: Options) -> Fill:
    owners = [uuid.uuid4() for _ in range(max(1, options.accounts // 4))]
    mix = LedgerMix(options.events, options.accounts, owners)
    started = time.perf_counter()
    async with open_pool(pool_settings(servers.urls.database_url)) as pool:
        await append_mix(PostgresEventStore(pool), mix)
        appended = time.perf_counter()
        kinds = {
            str(row["event_type"]): int(row["n"])
            for row in await pool.fetch("SELECT event_type, count(*) AS n FROM events GROUP BY 1 ORDER BY 1")
        }
        await pool.execute("VACUUM ANALYZE")
    relay = Relay(servers.relay_settings())
    relay_started = time.perf_counter()
    task = asyncio.create_task(relay.run())
    await wait_published(relay, task, mix.produced, relay_started + 600)
    relay_seconds = time.perf_counter() - relay_started
    relay.stop.set()
    await asyncio.wait_for(task, 30)
    if relay.published_total < mix.produced:
        raise RuntimeError(f"the relay published {relay.published_total} of {mix.produced} events")
    return Fill(
        mix.produced,
        len(mix.ids),
        len(owners),
        appended - started,
        relay_seconds,
        relay.published_total,
        kinds,
    )


# --------------------------------------------------------------------------- throughput


@dataclass
class Throughput:
    name: str
    batch_size: int
    applied: int
    expected: int
    seconds: float
    batches: int
    cpu: CpuUse | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def measured(
        cls,
        name: str,
        batch_size: int,
        counts: tuple[int, int, int],
        cpu: tuple[CpuSnapshot, CpuSnapshot],
        *,
        cap: float,
        label: str = "projector (in-process)",
    ) -> Throughput:
        """From (applied, expected, batches) and the CPU snapshots taken before and after."""
        applied, expected, batches = counts
        before, after = cpu
        result = cls(
            name,
            batch_size,
            applied,
            expected,
            after.at - before.at,
            batches,
            cpu_use(before, after, label=label),
        )
        if result.capped:
            result.notes.append(f"stopped at the {cap:g} s bound after {applied:,} of {expected:,} events")
        return result

    @property
    def rate(self) -> float:
        return self.applied / self.seconds if self.seconds > 0 else 0.0

    @property
    def capped(self) -> bool:
        return self.applied < self.expected

    @property
    def mean_batch(self) -> float:
        return self.applied / self.batches if self.batches else 0.0


async def reset_read_models(database_url: str, names: Sequence[str]) -> None:
    """Empty read tables, no checkpoint, no dead letters: a projection that never ran."""
    projections = [projection_class(name)() for name in names]
    tables = [p.qualified(table) for p in projections for table in p.all_tables()]
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        await connection.execute(f"TRUNCATE {', '.join(tables)}")
        await connection.execute(
            "DELETE FROM projection_checkpoints WHERE projection = ANY($1::text[])", names
        )
        await connection.execute("DELETE FROM dead_letters WHERE projection = ANY($1::text[])", names)
        await connection.execute("CHECKPOINT")
    finally:
        await connection.close()


def projector_settings(servers: Servers, *, batch_size: int, prefix: str) -> ProjectorSettings:
    urls = servers.urls
    return ProjectorSettings(
        profile="test",
        log_level="warning",
        database_url=urls.database_url,
        nats_urls=(urls.nats_url,),
        redis_url=urls.redis_url,
        redis_key_prefix=redis_prefix(servers),
        nats_stream=servers.stream,
        nats_subject_prefix=servers.subject_prefix,
        projector_batch_size=batch_size,
        projector_consumer_prefix=prefix,
    )


def redis_prefix(servers: Servers) -> str:
    """Tag versions live 7 days: on external servers they go under the run's own prefix, deleted after."""
    return f"cqrs-bench-{servers.subject_prefix}:"


async def delete_consumers(servers: Servers, names: Sequence[str]) -> None:
    client = await nats.connect(servers=[servers.urls.nats_url], connect_timeout=5)
    try:
        js = client.jetstream()
        for name in names:
            with contextlib.suppress(nats.errors.Error):
                await js.delete_consumer(servers.stream, name)
    finally:
        await client.close()


async def projector_run(
    servers: Servers, names: Sequence[str], batch_size: int, expected: int, cap: float
) -> Throughput:
    """run_projectors in this process from an empty read model until `expected` events applied (or `cap`)."""
    await reset_read_models(servers.urls.database_url, names)
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    settings = projector_settings(servers, batch_size=batch_size, prefix=prefix)
    stop = asyncio.Event()
    runners: list[ProjectionRunner] = []
    task = asyncio.create_task(run_projectors(settings, names, stop, started=runners.extend))
    while not runners and not task.done():  # noqa: ASYNC110 - waits for the runners the service builds
        await asyncio.sleep(0.001)
    before = CpuSnapshot.take(servers)
    deadline = before.at + cap
    while (  # noqa: ASYNC110 - polls the runners' counters
        sum(r.applied_total for r in runners) < expected
        and time.perf_counter() < deadline
        and not task.done()
    ):
        await asyncio.sleep(0.002)
    after = CpuSnapshot.take(servers)
    applied = sum(r.applied_total for r in runners)
    batches = sum(r.batches_total for r in runners)
    stop.set()
    await asyncio.wait_for(task, 60)
    await delete_consumers(servers, [f"{prefix}{name}" for name in names])
    label = names[0] if len(names) == 1 else f"all {len(names)} ({', '.join(names)})"
    return Throughput.measured(
        f"projector `{label}`", batch_size, (applied, expected, batches), (before, after), cap=cap
    )


# Where a batch's time goes: (label, owner, attribute) of the calls timed by `phase_counters`.
# The runner works one batch at a time, so their wall times add up along its loop.
_PHASES: Final[tuple[tuple[str, object, str], ...]] = (
    ("fetch", EventConsumer, "fetch"),
    ("batch", ProjectionRunner, "_process"),
    ("decode", runner_module, "from_message"),
    ("checkpoint", checkpoints_module, "lock"),
    ("checkpoint", checkpoints_module, "advance"),
    ("applier", BatchApplier, "apply"),
    ("versions read", BatchApplier, "_states"),
    ("projection", BatchApplier, "_apply_runnable"),
    ("ack", Msg, "ack"),
    ("announce", TagAnnouncer, "announce"),
)


def _timed(original: Callable[..., Any], label: str, times: dict[str, float]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(original):

        async def timed_coroutine(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                times[label] = times.get(label, 0.0) + time.perf_counter() - began

        return functools.wraps(original)(timed_coroutine)

    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            times[label] = times.get(label, 0.0) + time.perf_counter() - began

    return functools.wraps(original)(timed)


@contextlib.contextmanager
def phase_counters() -> Iterator[dict[str, float]]:
    """Wall seconds spent in each phase of _PHASES while the block runs; the originals restored after."""
    times: dict[str, float] = {}
    originals = [(owner, name, getattr(owner, name)) for _, owner, name in _PHASES]
    for (label, owner, name), (_, _, original) in zip(_PHASES, originals, strict=True):
        setattr(owner, name, _timed(original, label, times))
    try:
        yield times
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)


@dataclass(frozen=True, slots=True)
class Phases:
    """The batch-500 run with phase counters: wall seconds per phase, and the run itself."""

    run: Throughput
    times: dict[str, float]

    def rows(self) -> list[tuple[str, float]]:
        t = self.times.get
        batch, applier = t("batch", 0.0), t("applier", 0.0)
        inside = sum(t(k, 0.0) for k in ("decode", "checkpoint", "applier", "ack", "announce"))
        return [
            ("fetch: waiting for a batch from the prefetching pull", t("fetch", 0.0)),
            ("decode: headers and data → Envelope (msgspec)", t("decode", 0.0)),
            ("checkpoint row: lock and advance (2 statements)", t("checkpoint", 0.0)),
            ("applier: stream versions read (1 statement)", t("versions read", 0.0)),
            ("projection: account rows read, rows built, upsert + entries insert (3 statements, savepoint)",
             t("projection", 0.0)),
            ("applier: planning, versions upsert (1 statement)",
             applier - t("versions read", 0.0) - t("projection", 0.0)),
            ("ack, one publish per message (queued; written by nats-py's flusher)", t("ack", 0.0)),
            ("announce cache tags: one script call per batch (redis-py)", t("announce", 0.0)),
            ("pool acquire, BEGIN, COMMIT (synchronous), the rest of the batch", batch - inside),
            ("between batches (the loop, heartbeat, the bench's own polling)",
             self.run.seconds - t("fetch", 0.0) - batch),
        ]  # fmt: skip


async def phases_run(servers: Servers, expected: int) -> Phases:
    with phase_counters() as times:
        run = await projector_run(servers, ["accounts"], ALL_AT, expected, NO_CAP)
    return Phases(run, dict(times))


async def profiled_run(
    servers: Servers, names: Sequence[str], batch_size: int, expected: int, cap: float
) -> tuple[Throughput, str]:
    """The same run under cProfile (slower); its statistics, the largest first."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        result = await projector_run(servers, names, batch_size, expected, cap)
    finally:
        profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    return result, out.getvalue()


_TRIVIAL_TABLE: Final = "bench_trivial_projection"
_TRIVIAL_UPSERT: Final = """
INSERT INTO bench_trivial_projection (stream_id, version)
SELECT * FROM unnest($1::uuid[], $2::int[])
ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version
"""


async def trivial_run(
    servers: Servers,
    batch_size: int,
    expected: int,
    cap: float,
    *,
    write: bool = True,
    prefetch: bool = False,
) -> Throughput:
    """ceilings.md's loop: fetch(N), ONE autocommit unnest upsert of (stream_id, version), ack each.

    Without `write`, the bus alone: fetch(N) and ack each, no database. With
    `prefetch`, batches come from the projector's PrefetchingPull instead of
    nats-py's fetch.
    """
    connection = await asyncpg.connect(servers.urls.database_url, timeout=10)
    await connection.execute(
        f"DROP TABLE IF EXISTS {_TRIVIAL_TABLE}; "
        f"CREATE TABLE {_TRIVIAL_TABLE} (stream_id uuid PRIMARY KEY, version int NOT NULL); CHECKPOINT"
    )
    client = await nats.connect(servers=[servers.urls.nats_url], connect_timeout=5)
    durable = f"bench-trivial-{uuid.uuid4().hex[:8]}"
    js = client.jetstream(timeout=10)
    await js.add_consumer(
        servers.stream,
        ConsumerConfig(
            durable_name=durable,
            filter_subject=subject_filter(servers.subject_prefix, REGISTRY, AccountsProjection.stream_types),
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=batch_size * MAX_ACK_PENDING_BATCHES,
        ),
    )
    pull = PrefetchingPull(
        client,
        stream=servers.stream,
        durable=durable,
        batch_size=batch_size,
        ahead=batch_size * PREFETCH_BATCHES,
        request_expires_seconds=PULL_REQUEST_EXPIRES_SECONDS,
    )
    subscription = None if prefetch else await js.pull_subscribe_bind(durable=durable, stream=servers.stream)
    if subscription is None:
        await pull.open()

    async def next_batch() -> list[Msg]:
        if subscription is None:
            return await pull.take(1.0)
        with contextlib.suppress(nats.errors.TimeoutError):
            return await subscription.fetch(batch_size, timeout=1.0)
        return []

    applied = batches = 0
    before = CpuSnapshot.take(servers)
    deadline = before.at + cap
    try:
        while applied < expected and time.perf_counter() < deadline:
            if messages := await next_batch():
                await _trivial_apply(connection if write else None, messages)
                applied += len(messages)
                batches += 1
        after = CpuSnapshot.take(servers)
    finally:
        await pull.close()
        await js.delete_consumer(servers.stream, durable)
        await client.close()
        await connection.execute(f"DROP TABLE IF EXISTS {_TRIVIAL_TABLE}")
        await connection.close()
    kind = "one autocommit upsert" if batch_size == 1 else "one unnest upsert"
    taking = f"prefetching pull({batch_size})" if prefetch else f"fetch({batch_size})"
    name = f"trivial: {taking}, {kind}, ack" if write else f"bus alone: {taking}, ack"
    counts = (applied, expected, batches)
    return Throughput.measured(
        name, batch_size, counts, (before, after), cap=cap, label="consumer (in-process)"
    )


async def _trivial_apply(connection: asyncpg.Connection | None, messages: list[Msg]) -> None:
    latest: dict[uuid.UUID, int] = {}
    for message in messages:
        headers = message.headers or {}
        stream_id = uuid.UUID(headers["Stream-Id"])
        latest[stream_id] = max(latest.get(stream_id, 0), int(headers["Stream-Version"]))
    if connection is not None:
        await connection.execute(_TRIVIAL_UPSERT, list(latest), list(latest.values()))
    for message in messages:
        await message.ack()


@dataclass
class ThroughputRuns:
    projector: dict[int, Throughput]
    trivial: dict[int, Throughput]
    all_projections: Throughput
    bus: Throughput
    bus_prefetching: Throughput
    phases: Phases
    profile: str = ""


async def throughput_runs(servers: Servers, fill_: Fill, options: Options) -> ThroughputRuns:
    expected = fill_.events
    projector: dict[int, Throughput] = {}
    trivial: dict[int, Throughput] = {}
    profile = ""
    say(f"  the bus alone (fetch and ack), batch {ALL_AT} ...")
    bus = await trivial_run(servers, ALL_AT, expected, NO_CAP, write=False)
    say(f"  the bus alone (the projector's prefetching pull and ack), batch {ALL_AT} ...")
    bus_prefetching = await trivial_run(servers, ALL_AT, expected, NO_CAP, write=False, prefetch=True)
    for size in BATCH_SIZES:
        cap = options.cap_seconds if size == 1 else NO_CAP
        say(f"  trivial consumer, batch {size} ...")
        trivial[size] = await trivial_run(servers, size, expected, cap)
        say(f"  projector `accounts`, batch {size} ...")
        projector[size] = await projector_run(servers, ["accounts"], size, expected, cap)
    names = list(PROJECTIONS)
    say(f"  projector, all of {', '.join(names)}, batch {ALL_AT} ...")
    applies = 2 * expected  # accounts and owner_summaries follow account streams; users none of them
    together = await projector_run(servers, names, ALL_AT, applies, NO_CAP)
    together.notes.append(
        f"`users` follows user streams, of which the store holds none: {applies:,} events applied "
        "are those of `accounts` and `owner_summaries`"
    )
    say(f"  projector `accounts`, batch {ALL_AT}, with phase counters ...")
    phases = await phases_run(servers, expected)
    if options.profile:
        say(f"  projector `accounts`, batch {ALL_AT}, under cProfile ...")
        _, profile = await profiled_run(servers, ["accounts"], ALL_AT, expected, NO_CAP)
    return ThroughputRuns(projector, trivial, together, bus, bus_prefetching, phases, profile)


# --------------------------------------------------------------------------- rebuild


@dataclass
class RebuildRun:
    chunk: int
    report: RebuildReport
    bulk_rate: float
    cpu: CpuUse


async def rebuild_run(servers: Servers, chunk: int) -> RebuildRun:
    progress: list[Progress] = []
    async with open_pool(pool_settings(servers.urls.database_url, size=3)) as pool:
        before = CpuSnapshot.take(servers)
        report = await Rebuild(
            AccountsProjection, pool=pool, registry=REGISTRY, chunk_size=chunk, progress=progress.append
        ).run()
        after = CpuSnapshot.take(servers)
    bulk = [p for p in progress if p.phase == "bulk"]
    return RebuildRun(
        chunk, report, bulk[-1].rate if bulk else 0.0, cpu_use(before, after, label="rebuild (in-process)")
    )


# --------------------------------------------------------------------------- command → read model


_VISIBLE: Final = "SELECT stream_id, version FROM read.accounts_streams WHERE stream_id = ANY($1::uuid[])"


@dataclass
class Watch:
    """Each answered deposit until its version is visible in the read model."""

    counting: bool = False
    pending: dict[uuid.UUID, list[tuple[int, float, bool]]] = field(default_factory=dict)
    on_bus: dict[tuple[uuid.UUID, int], float] = field(default_factory=dict)
    visible_ms: list[float] = field(default_factory=list)
    bus_ms: list[float] = field(default_factory=list)
    projector_ms: list[float] = field(default_factory=list)
    http: Stats = field(default_factory=Stats)
    poll_periods: list[float] = field(default_factory=list)
    late_sends: int = 0
    unseen: int = 0

    @property
    def http_ms(self) -> list[float]:
        return [seconds * 1000 for seconds in self.http.latencies]

    def answered(self, account: uuid.UUID, version: int, at: float, *, counted: bool) -> None:
        self.pending.setdefault(account, []).append((version, at, counted))

    def seen_on_bus(self, message: Msg) -> None:
        headers = message.headers or {}
        with contextlib.suppress(KeyError, ValueError):
            key = (uuid.UUID(headers["Stream-Id"]), int(headers["Stream-Version"]))
            self.on_bus[key] = time.perf_counter()

    def settle(self, account: uuid.UUID, version: int, at: float) -> None:
        waiting = self.pending.get(account, [])
        left = [entry for entry in waiting if entry[0] > version]
        for target, answered, counted in waiting:
            if target > version:
                continue
            bus = self.on_bus.pop((account, target), None)
            if not counted:
                continue
            self.visible_ms.append((at - answered) * 1000)
            if bus is not None:
                self.bus_ms.append((bus - answered) * 1000)
                self.projector_ms.append((at - bus) * 1000)
        if left:
            self.pending[account] = left
        else:
            self.pending.pop(account, None)

    def give_up(self, before: float) -> None:
        """Entries answered before `before` and still not visible: unseen."""
        for account in list(self.pending):
            keep = [entry for entry in self.pending[account] if entry[1] >= before]
            self.unseen += sum(1 for entry in self.pending[account] if entry[1] < before and entry[2])
            if keep:
                self.pending[account] = keep
            else:
                del self.pending[account]


async def poll_read_model(database_url: str, watch: Watch, stop: asyncio.Event) -> None:
    """One connection asking for every pending account's applied version every POLL_INTERVAL."""
    connection = await asyncpg.connect(database_url, timeout=10)
    last = time.perf_counter()
    try:
        while not stop.is_set():
            began = time.perf_counter()
            if watch.counting:
                watch.poll_periods.append((began - last) * 1000)
            last = began
            if watch.pending:
                rows = await connection.fetch(_VISIBLE, list(watch.pending))
                seen = time.perf_counter()
                for row in rows:
                    watch.settle(row["stream_id"], row["version"], seen)
            watch.give_up(time.perf_counter() - VISIBLE_TIMEOUT)
            await asyncio.sleep(max(0.0, began + POLL_INTERVAL - time.perf_counter()))
    finally:
        await connection.close()


@dataclass(frozen=True, slots=True)
class Schedule:
    rate: float
    start: float
    warm_until: float
    stop_at: float


async def steady_sender(plan: Plan, heads: list[bytes], index: int, schedule: Schedule, watch: Watch) -> None:
    """Sender `index` of SENDERS: deposits due at start + (k * SENDERS + index) / rate (open loop)."""
    rng = random.Random(index * 7919 + int(schedule.start))
    connection = await connect(plan, watch.http)
    if connection is None:
        return
    reader, writer = connection
    k = 0
    try:
        while (due := schedule.start + (k * SENDERS + index) / schedule.rate) < schedule.stop_at:
            k += 1
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.01 and due >= schedule.warm_until:
                watch.late_sends += 1
            account = rng.randrange(len(plan.accounts))
            sent = time.perf_counter()
            writer.write(b"%s%s-%d-%d\r\n\r\n%s" % (heads[account], plan.key_prefix.encode(), index, k, BODY))
            try:
                status, body, _ = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ProtocolError) as error:
                watch.http.errors[type(error).__name__] = watch.http.errors.get(type(error).__name__, 0) + 1
                return
            answered = time.perf_counter()
            record(watch, plan.accounts[account], (status, body), times=(sent, answered), schedule=schedule)
    finally:
        writer.close()


def record(
    watch: Watch, account: str, answer: tuple[int, bytes], *, times: tuple[float, float], schedule: Schedule
) -> None:
    status, body = answer
    sent, answered = times
    counted = schedule.warm_until <= answered <= schedule.stop_at
    if counted:
        watch.http.statuses[status] = watch.http.statuses.get(status, 0) + 1
        watch.http.latencies.append(answered - sent)
    if 200 <= status < 300:
        version = _answer_decoder.decode(body)["version"]
        assert isinstance(version, int)
        watch.answered(uuid.UUID(account), version, answered, counted=counted)
    elif status not in watch.http.samples:
        watch.http.samples[status] = body[:200].decode("utf-8", "replace")


@dataclass
class LatencyRun:
    name: str
    rate: float
    seconds: float
    watches: list[Watch]
    cpu: list[str]
    others: list[float]  # cores used outside the benchmark, per segment

    def merged(self, attribute: str) -> list[float]:
        return [value for watch in self.watches for value in getattr(watch, attribute)]

    @property
    def answered(self) -> int:
        return len(self.merged("visible_ms")) + self.unseen

    @property
    def unseen(self) -> int:
        return sum(w.unseen for w in self.watches)

    @property
    def ok_rate(self) -> float:
        ok = sum(n for w in self.watches for s, n in w.http.statuses.items() if 200 <= s < 300)
        return ok / self.seconds if self.seconds else 0.0

    @property
    def non_2xx(self) -> int:
        return sum(n for w in self.watches for s, n in w.http.statuses.items() if not 200 <= s < 300)

    def p(self, attribute: str) -> tuple[float, float, float]:
        """p50, p95, p99 (ms) of a list of milliseconds."""
        return percentiles([ms / 1000 for ms in self.merged(attribute)])


def service(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "operator_cli", *argv], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def stop_service(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@dataclass(frozen=True, slots=True)
class Pipeline:
    relay_pid: int
    projector_pid: int
    logs: tuple[Path, ...]


@contextlib.contextmanager
def relay_and_projector(servers: Servers) -> Iterator[Pipeline]:
    """`cqrs relay` and `cqrs projector run` (every projection) as processes, with default settings."""
    env = {
        **service_environment(servers.urls, None),
        "CQRS_NATS_STREAM": servers.stream,
        "CQRS_NATS_SUBJECT_PREFIX": servers.subject_prefix,
        "CQRS_REDIS_KEY_PREFIX": redis_prefix(servers),
        "CQRS_PROJECTOR_CONSUMER_PREFIX": f"bench-live-{uuid.uuid4().hex[:8]}-",
    }
    logs = (servers.data_dir / "relay.log", servers.data_dir / "projector.log")
    relay = service(["relay"], env, logs[0])
    projector = service(["projector", "run"], env, logs[1])
    try:
        yield Pipeline(relay.pid, projector.pid, logs)
    finally:
        stop_service(projector)
        stop_service(relay)


async def open_latency_accounts(database_url: str, owner: uuid.UUID, count: int) -> list[uuid.UUID]:
    """K accounts of one owner, opened through the event store (so through the outbox and the bus)."""
    mix = LedgerMix(count, count, [owner])
    operations = [event for _ in range(count) for event in mix.next_operation()]
    async with open_pool(pool_settings(database_url, size=1)) as pool:
        await PostgresEventStore(pool).append(*append_arguments(mix, operations))
    return mix.ids


async def wait_visible(database_url: str, accounts: list[uuid.UUID], seconds: float) -> None:
    connection = await asyncpg.connect(database_url, timeout=10)
    deadline = time.perf_counter() + seconds
    try:
        while len(await connection.fetch(_VISIBLE, accounts)) < len(accounts):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the accounts opened were not in the read model within {seconds:g} s")
            await asyncio.sleep(0.05)
    finally:
        await connection.close()


def service_cpu(pid: int) -> float:
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
        return sum(float(p.cpu_times().user + p.cpu_times().system) for p in processes)
    return 0.0


def describe_cpu(cpu: CpuUse, relay: float, projector: float) -> str:
    other = max(0.0, cpu.other - relay - projector)
    return (
        f"bench {cpu.client:.2f}, API {cpu.api:.2f}, relay {relay:.2f}, projector {projector:.2f}, "
        f"PostgreSQL {cpu.postgres:.2f}, NATS {cpu.nats:.2f}, other {other:.2f} "
        f"(busy {cpu.busy:.2f} of {os.cpu_count()})"
    )


@dataclass(frozen=True, slots=True)
class Target:
    api_port: int
    api_pid: int
    token: str
    accounts: list[str]
    pipeline: Pipeline


async def latency_segment(
    servers: Servers, target: Target, rate: float, seconds: float, warmup: float
) -> tuple[Watch, str, float]:
    """Deposits at `rate`/s for warmup + seconds; then every answer awaited in the read model (bounded)."""
    watch = Watch()
    stop = asyncio.Event()
    poller = asyncio.create_task(poll_read_model(servers.urls.database_url, watch, stop))
    client = await nats.connect(servers=[servers.urls.nats_url], connect_timeout=5)
    subject = subject_filter(servers.subject_prefix, REGISTRY, AccountsProjection.stream_types)

    async def on_message(message: Msg) -> None:
        watch.seen_on_bus(message)

    await client.subscribe(subject, cb=on_message)
    start = time.perf_counter() + 0.05
    schedule = Schedule(rate, start, start + warmup, start + warmup + seconds)
    plan = Plan(
        "127.0.0.1", target.api_port, target.token, target.accounts, schedule.warm_until, schedule.stop_at,
        uuid.uuid4().hex[:12],
    )  # fmt: skip
    heads = request_heads(plan)

    async def measure() -> tuple[float, float, CpuSnapshot]:
        await asyncio.sleep(max(0.0, schedule.warm_until - time.perf_counter()))
        watch.counting = True
        pids = target.pipeline
        return (
            service_cpu(pids.relay_pid),
            service_cpu(pids.projector_pid),
            CpuSnapshot.take(servers, target.api_pid),
        )

    measuring = asyncio.create_task(measure())
    await asyncio.gather(*(steady_sender(plan, heads, i, schedule, watch) for i in range(SENDERS)))
    relay0, projector0, before = await measuring
    after = CpuSnapshot.take(servers, target.api_pid)
    watch.counting = False
    wall = max(after.at - before.at, 1e-9)
    relay = (service_cpu(target.pipeline.relay_pid) - relay0) / wall
    projector = (service_cpu(target.pipeline.projector_pid) - projector0) / wall
    drain_until = time.perf_counter() + VISIBLE_TIMEOUT + 1
    while watch.pending and time.perf_counter() < drain_until:  # noqa: ASYNC110 - the poller settles them
        await asyncio.sleep(0.01)
    stop.set()
    await poller
    await client.close()
    watch.unseen += sum(1 for entries in watch.pending.values() for entry in entries if entry[2])
    cpu = cpu_use(before, after)
    return watch, describe_cpu(cpu, relay, projector), max(0.0, cpu.other - relay - projector)


def latency_runs(servers: Servers, options: Options) -> tuple[list[LatencyRun], list[str]]:
    """Light and moderate load in segments ordered light, moderate, moderate, light (half the time each)."""
    owner = uuid.uuid4()
    accounts = asyncio.run(open_latency_accounts(servers.urls.database_url, owner, options.latency_accounts))
    half = options.latency_seconds / 2
    runs = {
        rate: LatencyRun(f"{rate:g} deposits/s", rate, 0.0, [], [], [])
        for rate in (options.light_rate, options.rate)
    }
    api_log = servers.data_dir / "command-api-projections.log"
    with (
        relay_and_projector(servers) as pipeline,
        command_api(servers.urls, options, mint_token(owner), api_log) as api,
    ):
        asyncio.run(wait_visible(servers.urls.database_url, accounts, 60))
        target = Target(api.port, api.pid, api.token, [str(a) for a in accounts], pipeline)
        for rate in (options.light_rate, options.rate, options.rate, options.light_rate):
            say(f"  {rate:g} deposits/s, {half:g} s (+ {options.warmup:g} s warm-up) ...")
            watch, cpu, other = asyncio.run(latency_segment(servers, target, rate, half, options.warmup))
            runs[rate].watches.append(watch)
            runs[rate].cpu.append(cpu)
            runs[rate].others.append(other)
            runs[rate].seconds += half
    logs = api_log_lines(api_log)
    for path in pipeline.logs:
        logs += [line[:400] for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return [runs[options.light_rate], runs[options.rate]], logs


# --------------------------------------------------------------------------- report


@dataclass
class Report:
    options: Options
    servers: Servers
    postgres_version: str
    nats_version: str
    fill: Fill
    throughput: ThroughputRuns
    rebuilds: list[RebuildRun]
    latency: list[LatencyRun]
    logs: list[str]
    total_seconds: float = 0.0

    @property
    def light(self) -> LatencyRun:
        return self.latency[0]

    @property
    def moderate(self) -> LatencyRun:
        return self.latency[1]

    def caveats(self) -> list[str]:
        runs = [
            *self.throughput.projector.values(),
            *self.throughput.trivial.values(),
            self.throughput.bus,
            self.throughput.bus_prefetching,
        ]
        busy = [(r.cpu.other, r.name) for r in runs if r.cpu is not None]
        busy += [(other, f"the latency run at {r.name}") for r in self.latency for other in r.others]
        busy += [(r.cpu.other, f"the rebuild, chunk {r.chunk:,}") for r in self.rebuilds]
        if not busy or max(busy)[0] < BUSY_MACHINE:
            return []
        other, name = max(busy)
        return [
            f"Processes outside the benchmark used up to {other:.2f} cores (during {name}): "
            "the machine was not quiet, so these figures understate it."
        ]


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else 0.0


def ceiling_of(run: Throughput) -> float:
    if run.name.startswith("bus"):
        return CEILING_BUS
    return CEILING_PER_EVENT if run.batch_size == 1 else CEILING_BATCHED


def throughput_table(report: Report) -> list[str]:
    runs = report.throughput
    base = runs.projector[1].rate
    lines = [
        "| run | batch | events applied | s | events/s | µs CPU / event | mean batch | x batch 1 "
        "| / trivial, same batch | / ceilings.md | cores used |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    rows: list[tuple[Throughput, Throughput | None]] = [(runs.bus, None), (runs.bus_prefetching, None)]
    for size in BATCH_SIZES:
        rows += [(runs.trivial[size], None), (runs.projector[size], runs.trivial[size])]
    for run, trivial in [*rows, (runs.all_projections, None)]:
        versus = f"{ratio(run.rate, trivial.rate):.0%}" if trivial else "-"
        factor = f"{ratio(run.rate, base):.1f}x" if run.name.startswith("projector") else "-"
        cpu = cores(run)
        ceiling = ratio(run.rate, ceiling_of(run))
        lines.append(
            f"| {run.name} | {run.batch_size} | {run.applied:,} | {run.seconds:.1f} | {run.rate:,.0f} | "
            f"{cpu_per_event(run):,.0f} | {run.mean_batch:,.0f} | {factor} | {versus} | {ceiling:.0%} "
            f"| {cpu} |"
        )
    return lines


def phases_table(report: Report) -> list[str]:
    phases = report.throughput.phases
    run = phases.run
    lines = [
        f"| where the time of `accounts` at batch {ALL_AT} goes (wall time; one batch at a time) | s "
        "| µs per event | share |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, seconds in phases.rows():
        lines.append(
            f"| {label} | {seconds:.2f} | {ratio(seconds, run.applied) * 1e6:,.1f} | "
            f"{ratio(seconds, run.seconds):.0%} |"
        )
    lines.append(
        f"| the run, with these counters ({run.rate:,.0f} events/s) | {run.seconds:.2f} | "
        f"{ratio(run.seconds, run.applied) * 1e6:,.1f} | 100% |"
    )
    return lines


def rebuild_table(report: Report) -> list[str]:
    lines = [
        "| rebuild `accounts` from the store | events | s (all phases) | events/s | bulk phase events/s "
        "| cores used |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for run in report.rebuilds:
        lines.append(
            f"| chunk {run.chunk:,} | {run.report.events:,} | {run.report.elapsed_seconds:.2f} | "
            f"{run.report.rate:,.0f} | {run.bulk_rate:,.0f} | {run.cpu.describe()} |"
        )
    return lines


def latency_table(report: Report) -> list[str]:
    lines = [
        "| load | 2xx/s | HTTP p50 / p99 ms | 2xx → bus p50 / p99 ms | bus → visible p50 / p99 ms "
        "| **2xx → visible p50 / p95 / p99 / max ms** | unseen in 10 s | poll period p50 / p99 ms "
        "| cores used (per segment) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for run in report.latency:
        http50, _, http99 = run.p("http_ms")
        bus50, _, bus99 = run.p("bus_ms")
        proj50, _, proj99 = run.p("projector_ms")
        vis50, vis95, vis99 = run.p("visible_ms")
        top = max(run.merged("visible_ms"), default=0.0)
        poll50, _, poll99 = run.p("poll_periods")
        lines.append(
            f"| {run.name} | {run.ok_rate:,.0f} | {http50:.1f} / {http99:.1f} | {bus50:.1f} / {bus99:.1f} | "
            f"{proj50:.1f} / {proj99:.1f} | **{vis50:.1f} / {vis95:.1f} / {vis99:.1f} / {top:.0f}** | "
            f"{run.unseen} | {poll50:.1f} / {poll99:.1f} | {'; '.join(run.cpu)} |"
        )
    return lines


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def targets_table(report: Report) -> list[str]:
    batched = report.throughput.projector[ALL_AT].rate
    rebuild = report.rebuilds[0].report.rate
    p99 = report.moderate.p("visible_ms")[2]
    return [
        "| target (issue 5) | measured | |",
        "| --- | ---: | --- |",
        f"| projector, batched: ≥ {BATCHED_TARGET:,.0f} events/s | {batched:,.0f} events/s (`accounts`, "
        f"batch {ALL_AT}) | {verdict(batched >= BATCHED_TARGET)} |",
        f"| rebuild from the store: ≥ {REBUILD_TARGET:,.0f} events/s | {rebuild:,.0f} events/s (chunk "
        f"{report.rebuilds[0].chunk:,}, all phases) | {verdict(rebuild >= REBUILD_TARGET)} |",
        f"| command 2xx → read model, p99 at moderate load: < {P99_TARGET_MS:.0f} ms | {p99:,.0f} ms at "
        f"{report.moderate.rate:g} deposits/s | {verdict(p99 < P99_TARGET_MS)} |",
    ]


def settings_line(report: Report) -> str:
    options = report.options
    fill_ = report.fill
    kinds = ", ".join(f"{name} {count:,}" for name, count in fill_.kinds.items())
    text = (
        f"- Settings: E = {fill_.events:,} ledger events ({kinds}) over A = {fill_.accounts:,} accounts of "
        f"{fill_.owners:,} owners, appended in {fill_.append_seconds:.1f} s through PostgresEventStore "
        f"({APPEND_EVENTS:,} events a transaction) and relayed to JetStream in {fill_.relay_seconds:.1f} s; "
        f"throughput runs in this process, each from an empty read model with a fresh durable consumer, "
        f"timed from the runners' start to the last event applied (batch size 1 stopped after "
        f"{options.cap_seconds:g} s); rebuilds with the default settings; latency: K = "
        f"{options.latency_accounts} accounts of one owner, {SENDERS} keep-alive connections sending at a "
        f"fixed schedule, {options.light_rate:g} and {options.rate:g} deposits/s in segments of "
        f"{options.latency_seconds / 2:g} s (+ {options.warmup:g} s warm-up) ordered light, moderate, "
        f"moderate, light, W = {options.workers} granian workers, `cqrs relay` and `cqrs projector run` "
        "(all projections) as processes with their default settings"
    )
    return text + (", `--quick`" if options.quick else "")


def observations(report: Report) -> list[str]:
    runs = report.throughput
    notes = [
        f"{run.name}, batch {run.batch_size}: {note}"
        for run in [*runs.trivial.values(), *runs.projector.values(), runs.all_projections]
        for note in run.notes
    ]
    for run in report.latency:
        late = sum(w.late_sends for w in run.watches)
        errors: dict[str, int] = {}
        for watch in run.watches:
            for name, count in watch.http.errors.items():
                errors[name] = errors.get(name, 0) + count
        if late:
            notes.append(f"{run.name}: {late} deposits sent more than 10 ms behind their schedule")
        if run.non_2xx or errors:
            samples = {s: t for w in run.watches for s, t in w.http.samples.items()}
            notes.append(
                f"{run.name}: {run.non_2xx} non-2xx answers, client errors {errors}, first {samples}"
            )
        if run.unseen:
            notes.append(
                f"{run.name}: {run.unseen} answered deposits not visible within {VISIBLE_TIMEOUT:g} s"
            )
    for rebuild in report.rebuilds:
        if rebuild.report.parked:
            notes.append(f"rebuild chunk {rebuild.chunk}: {rebuild.report.parked} events parked")
    notes += report.caveats()
    return notes


def cpu_per_event(run: Throughput) -> float:
    """µs of the consuming process's CPU per event applied."""
    return ratio(run.cpu.client, run.rate) * 1e6 if run.cpu else 0.0


def phase_share(report: Report, prefix: str) -> float:
    phases = report.throughput.phases
    return sum(ratio(s, phases.run.seconds) for label, s in phases.rows() if label.startswith(prefix))


def cores(run: Throughput) -> str:
    return run.cpu.describe() if run.cpu else ""


def on_one_core(cpu_us: float) -> str:
    """The rate of a process with this CPU per event that kept one core busy all the time."""
    return f"≈ {1e6 / cpu_us:,.0f} events/s" if cpu_us > 0 else "-"


def batched_bullet(report: Report) -> str:
    runs = report.throughput
    hundred, five = runs.projector[100], runs.projector[ALL_AT]
    bus, prefetching, t500 = runs.bus, runs.bus_prefetching, runs.trivial[ALL_AT]
    rebuild = report.rebuilds[0]
    bus_share = BATCHED_TARGET * cpu_per_event(prefetching) / 1e6
    nats_share = BATCHED_TARGET * ratio(prefetching.cpu.nats, prefetching.rate) if prefetching.cpu else 0.0
    return (
        f"- **Batched** ({hundred.rate:,.0f} events/s at 100, {five.rate:,.0f} at 500): the round trips "
        "are paid once a batch and the projector's one Python process becomes the limit: "
        f"{cpu_per_event(five):,.0f} µs of its CPU per event at batch 500 ({cores(five)}); kept busy all "
        f"the time, one core would give {on_one_core(cpu_per_event(five))}. The projector takes its "
        "events from a prefetching pull (projectors/prefetch.py): pull requests stay open ahead of it, "
        "JetStream delivers the next batch while the current one commits, and a batch is what has "
        "arrived, without nats-py's `fetch` and its `wait_for` per message. The bus alone through it "
        f"(no database) reached {prefetching.rate:,.0f} msg/s at {cpu_per_event(prefetching):,.0f} µs of "
        f"CPU per message, against {bus.rate:,.0f} msg/s at {cpu_per_event(bus):,.0f} µs through nats-py's "
        f"`fetch(500)`; the trivial consumer (with `fetch`) {t500.rate:,.0f} events/s at "
        f"{cpu_per_event(t500):,.0f} µs. What remains per message is nats-py's parsing (its ten headers, "
        "with a per-character check of each header name) and the ack; ceilings.md's "
        f"{CEILING_BUS:,.0f} msg/s was measured with small messages without headers. At "
        f"{BATCHED_TARGET:,.0f} events/s the bus alone would take {bus_share:.2f} of the projector's core "
        f"and the NATS server {nats_share:.2f} of the other, leaving the projector "
        f"{max(1e6 / BATCHED_TARGET - cpu_per_event(prefetching), 0):,.0f} µs per event for decoding, "
        f"SQL and cache tags, which take {max(cpu_per_event(five) - cpu_per_event(prefetching), 0):,.0f} µs "
        f"now (the rebuild, in chunks of {rebuild.chunk:,} and without bus, acks or tags, needs "
        f"{ratio(rebuild.cpu.client, rebuild.report.rate) * 1e6:,.0f}): the "
        "target asks for more than one Python process per projection. Of the projector's wall time at batch "
        f"{ALL_AT} (table above) waiting for a batch took {phase_share(report, 'fetch'):.0%}, announcing "
        f"the cache tags {phase_share(report, 'announce'):.0%} (one script call with a key per account "
        "and owner the batch touched), the projection's statements and row building "
        f"{phase_share(report, 'projection'):.0%}, decoding {phase_share(report, 'decode'):.0%}; the "
        "messages of the next batch are parsed while this batch awaits the database, so the database "
        "phases' wall times include that parsing."
    )


def rebuild_bullet(report: Report) -> str:
    rebuild = report.rebuilds[0]
    cpu_us = ratio(rebuild.cpu.client, rebuild.report.rate) * 1e6
    return (
        f"- **Rebuild** ({rebuild.report.rate:,.0f} events/s, bulk phase {rebuild.bulk_rate:,.0f}): no bus, "
        "no acks, no tags, one transaction per chunk of the store; the same applier and projection code "
        "decode and build every row in one Python process, the busiest party "
        f"({rebuild.cpu.describe()}): {cpu_us:,.0f} µs of its CPU per event. PostgreSQL reads the next chunk "
        "while the current one is applied (this took about as much as it saved: the Python process, which "
        f"also decodes the {rebuild.chunk:,} rows read, data as text, is the limit); kept busy all the time, "
        "one core would give "
        f"{on_one_core(cpu_us)}. Secondary indexes are built once at the end."
    )


def latency_bullet(report: Report) -> str:
    moderate = report.moderate
    return (
        f"- **Command → read model** (p99 {moderate.p('visible_ms')[2]:,.0f} ms at {moderate.rate:g}/s): "
        f"2xx → bus {moderate.p('bus_ms')[0]:.1f} ms at the median (the relay wakes on the event store's "
        "NOTIFY, reads the outbox, publishes and waits for JetStream's ack), bus → visible "
        f"{moderate.p('projector_ms')[0]:.1f} ms (a pull request is always open, so JetStream delivers "
        "each event at once, then one batch transaction with a synchronous commit). Events arrive a few "
        "milliseconds apart at this load, so batches are small and each event pays most of a batch's "
        "fixed cost, as at batch size 1 (the projector's cores are in the table)."
    )


def limits_paragraph(report: Report) -> list[str]:
    runs = report.throughput
    return [
        "What limits each figure:",
        "",
        f"- **Batch size 1** ({runs.projector[1].rate:,.0f} events/s against {runs.trivial[1].rate:,.0f} for "
        "the trivial consumer): each event pays a pull request to JetStream, a transaction of seven "
        "statements and a savepoint (checkpoint lock, stream versions, the account row, upsert, entry "
        "insert, versions upsert, checkpoint update) between BEGIN and a synchronous COMMIT, an ack and "
        "a Redis round trip for its cache tags: some eleven round trips and "
        f"{cpu_per_event(runs.projector[1]):,.0f} µs of CPU per event.",
        batched_bullet(report),
        rebuild_bullet(report),
        latency_bullet(report),
        "- **Levers not taken**: one ack per batch (AckPolicy.ALL acks every message of a lower stream "
        "sequence, including a nak'ed batch not yet redelivered, which the projector would then never "
        "see: unsafe with redelivery); a faster header parser than nats-py's (about 6 µs of 10 per "
        "message, in a private method of the library: for upstream); COPY for the rebuild's entries; more "
        "processes (the projections are independent of each other: `cqrs projector run NAME` per process; "
        "one projection across processes would need partitioned subjects, NATS 2.10 or later).",
        f"- **Resolution**: the poller asks every {POLL_INTERVAL * 1000:g} ms (its measured period is in the "
        "table) and takes the time its answer arrives, so each latency is overstated by up to one period; "
        "the load, the poller and the bus subscription share one event loop in the bench process.",
        "- **Other** in the cores column is CPU used by processes outside this benchmark (the machine may "
        "be shared); when it is well above 0 the figures of that run are low, and the CPU per event is "
        "the steadier comparison.",
    ]


def section(report: Report) -> str:
    lines = [
        SECTION,
        "",
        "`uv run python -m bench.projections` (bench/projections.py): the projector at batch sizes 1, 100 "
        "and 500 against a trivial consumer of the same events, the rebuild from the store, and the time "
        "from a deposit's 2xx to its version in the read model under a steady load, all measured in one "
        "run.",
        "",
        *environment_lines(report.servers, report.postgres_version, report.nats_version),
        settings_line(report),
        f"- Run time: {report.total_seconds:.0f} s in all, the servers' start-up included",
        "",
        *throughput_table(report),
        "",
        *phases_table(report),
        "",
        *rebuild_table(report),
        "",
        *latency_table(report),
        "",
        *targets_table(report),
        "",
        "Ratios: x batch 1 is against the projector at batch size 1 (the baseline); / trivial is against "
        "the trivial consumer at the same batch size in this run; / ceilings.md is against "
        f"{CEILING_PER_EVENT:,.0f} events/s (batch 1), {CEILING_BATCHED:,.0f} events/s (batched) or "
        f"{CEILING_BUS:,.0f} msg/s (the bus alone), measured on this machine kind before "
        "(../shared/ceilings.md). The time table comes from one more run of `accounts` at batch "
        f"{ALL_AT} with timing counters around the runner's calls (fetch, decode, checkpoint, applier, "
        "projection, ack, announce); the runner works one batch at a time, so their wall times add up "
        "to the run's.",
        "",
    ]
    notes = observations(report)
    if notes:
        lines += ["Observations of this run:", "", *(f"- {n}" for n in notes), ""]
    if report.logs:
        lines += [f"The services logged {len(report.logs)} lines at warning or above; the first:", "", "```"]
        lines += [*report.logs[:3], "```", ""]
    lines += [*limits_paragraph(report), ""]
    return "\n".join(lines)


def print_report(report: Report, *, docs_written: bool) -> None:
    for table in (throughput_table, phases_table, rebuild_table, latency_table, targets_table):
        print()
        print("\n".join(table(report)))
    for note in observations(report):
        print(f"  {note}")
    for line in report.logs[:5]:
        print(f"  service log: {line}")
    if report.throughput.profile:
        print("\ncProfile of `accounts` at batch 500 (a coroutine's ncalls counts each resumption):\n")
        print(report.throughput.profile)
    where = "written to docs/benchmarks.md" if docs_written else "docs left alone (--no-docs)"
    print(f"\ntotal {report.total_seconds:.0f} s; {where}")


# --------------------------------------------------------------------------- main


async def delete_redis_keys(servers: Servers) -> None:
    """External Redis only: the tag versions the projectors set under this run's prefix."""
    redis = Redis.from_url(servers.urls.redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{redis_prefix(servers)}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
    finally:
        await redis.aclose()


async def measure_throughput(servers: Servers, options: Options) -> tuple[Fill, ThroughputRuns]:
    say(f"filling the store with {options.events:,} ledger events, relaying them to JetStream ...")
    filled = await fill(servers, options)
    say(f"  appended in {filled.append_seconds:.1f} s, relayed in {filled.relay_seconds:.1f} s")
    say("throughput runs ...")
    return filled, await throughput_runs(servers, filled, options)


async def measure_rebuilds(servers: Servers) -> list[RebuildRun]:
    runs = []
    for chunk in REBUILD_CHUNKS:
        say(f"rebuild `accounts`, chunk {chunk:,} ...")
        runs.append(await rebuild_run(servers, chunk))
    return runs


def run(options: Options) -> Report:
    started = time.perf_counter()
    configure_logging("warning", "console")
    with bench_servers() as shared, own_database(shared) as servers:
        say("migrating ...")
        upgrade(servers.urls.database_url)
        nats_version = asyncio.run(ensure_jetstream(servers))
        postgres_version = asyncio.run(postgres_version_of(servers.urls.database_url))
        filled, throughput = asyncio.run(measure_throughput(servers, options))
        rebuilds = asyncio.run(measure_rebuilds(servers))
        say("command → read model ...")
        latency, logs = latency_runs(servers, options)
        if servers.external:
            asyncio.run(delete_stream(servers))
            asyncio.run(delete_redis_keys(servers))
        report = Report(
            options, servers, postgres_version, nats_version, filled, throughput, rebuilds, latency, logs
        )
    report.total_seconds = time.perf_counter() - started
    return report


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    report = run(options)
    if options.write_docs:
        write_docs(section(report), SECTION)
    print_report(report, docs_written=options.write_docs)


if __name__ == "__main__":
    main()
