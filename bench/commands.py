"""Benchmark of the command path: HTTP deposits against the same work done directly, and the relay.

    uv run python -m bench.commands [--seconds 10] [--connections 32] [--workers 2] [--quick]

Everything runs on 127.0.0.1: an embedded PostgreSQL, NATS and Redis in a
temporary folder (or the servers named by CQRS_BENCH_DATABASE_URL,
CQRS_BENCH_NATS_URL and CQRS_BENCH_REDIS_URL when all three are set: the
database should be a throwaway one, the bench writes some 2.6 million events
into it; its JetStream stream is its own and deleted at the end).

Each figure has its baseline measured in the same run:

1. ceiling: C asyncio tasks in this process, each with its own asyncpg
   connection, doing a deposit's database work with no HTTP: the load query
   of PostgresEventStore, then one `SELECT cqrs_append(...)` (event, state row
   from the loaded version, idempotency record). Version conflicts (CQ002)
   are retried by loading again.
2. HTTP, short streams: `cqrs command-api --workers W` driven by
   `bench.http_load` (a separate process) over C keep-alive connections.
3. HTTP, long streams: the same against accounts whose streams already hold
   10,000 events (bulk-inserted by SQL, not in the outbox). 2 and 3 run in
   halves, ordered short, long, long, short, so a drift of the machine
   weighs on both alike.
4. relay: the outbox filled by 1-3 drained to JetStream by `Relay`, against
   raw `js.publish` of as many messages with 256 in flight on the same stream.

Besides the rates and latencies it records the cores each party used
(PostgreSQL, NATS, the API, the client, and "other": anything else on the
machine), the conflicts PostgreSQL logged, the sessions the API opened, the
plan of the relay's fetch, and checks that every 2xx stored exactly one event.
`--pool-size N` runs the API with CQRS_DATABASE_POOL_SIZE=N.

Figures, ratios and what limits them are printed and written to the section
"## Commands (issue 3)" of docs/benchmarks.md (only that section is replaced).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import asyncpg
import msgspec
import nats
import nats.errors
import psutil
from nats.js import JetStreamContext
from uuid_utils.compat import uuid7

from command_api.settings import CommandApiSettings
from contexts.ledger import decider
from contexts.ledger.commands import Deposit
from contexts.ledger.decider import Account
from contexts.ledger.events import AccountOpened
from devstack.ports import LOOPBACK, free_port
from devstack.stack import EmbeddedStack, StackUrls
from relay.outbox import _FETCH as RELAY_FETCH
from relay.service import Relay
from relay.settings import RelaySettings
from shared.auth.keys import load_key_set
from shared.auth.tokens import AccessTokenIssuer
from shared.consistency import encode_token
from shared.db.migrate import upgrade
from shared.messaging.jetstream import ensure_stream, stream_config_from
from shared.observability.logging import configure_logging
from shared.settings.dev_keys import DEV_JWT_PRIVATE_KEY

ROOT: Final = Path(__file__).resolve().parent.parent
DOCS: Final = ROOT / "docs" / "benchmarks.md"
SECTION: Final = "## Commands (issue 3)"
ENV_URLS: Final = ("CQRS_BENCH_DATABASE_URL", "CQRS_BENCH_NATS_URL", "CQRS_BENCH_REDIS_URL")

LONG_STREAM_LENGTH: Final = 10_000
MIN_RELAY_EVENTS: Final = 20_000
RAW_IN_FLIGHT: Final = 256
MAX_ATTEMPTS: Final = 10
VERSION_CONFLICT: Final = "CQ002"
UNIQUE_VIOLATION: Final = "23505"
BODY: Final = b'{"amount":1,"reference":"bench"}'
IDEMPOTENCY_TTL: Final = dt.timedelta(hours=24)

BUSY_MACHINE: Final = 0.25  # cores used by other processes above which a run is flagged
HTTP_TARGET: Final = 0.50
LONG_TARGET: Final = 0.90

_json = msgspec.json.Encoder()
_account_decoder = msgspec.json.Decoder(Account)


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class Options:
    seconds: float
    warmup: float
    connections: int
    workers: int
    accounts: int
    long_accounts: int
    relay_timeout: float
    quick: bool
    pool_size: int | None = None
    server: str = "granian"
    write_docs: bool = True


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.commands",
        description="Command path benchmark: HTTP deposits vs the same database work, and the relay.",
    )
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per run (10)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections C (32)")
    parser.add_argument("--workers", type=int, default=2, help="command API worker processes (2)")
    parser.add_argument("--accounts", type=int, default=None, help="accounts per set K (256; 64 quick)")
    parser.add_argument(
        "--long-accounts",
        type=int,
        default=None,
        help="accounts with 10,000-event streams, and of the short-stream set alike (default K)",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="CQRS_DATABASE_POOL_SIZE of the API (default: the project's default)",
    )
    parser.add_argument(
        "--server", choices=("granian", "uvicorn"), default="granian", help="HTTP server (granian)"
    )
    parser.add_argument("--quick", action="store_true", help="short runs and small sets, for smoke use")
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    quick: bool = args.quick
    return Options(
        seconds=args.seconds or (3.0 if quick else 10.0),
        warmup=0.5 if quick else 1.0,
        connections=args.connections,
        workers=args.workers,
        accounts=args.accounts or (64 if quick else 256),
        long_accounts=args.long_accounts or args.accounts or (64 if quick else 256),
        relay_timeout=10.0 if quick else 60.0,
        quick=quick,
        pool_size=args.pool_size,
        server=args.server,
        write_docs=not args.no_docs,
    )


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True, slots=True)
class PostgresErrors:
    errors: int | None
    conflicts: int | None

    def __sub__(self, other: PostgresErrors) -> PostgresErrors:
        if self.errors is None or other.errors is None or self.conflicts is None or other.conflicts is None:
            return PostgresErrors(None, None)
        return PostgresErrors(self.errors - other.errors, self.conflicts - other.conflicts)

    def __add__(self, other: PostgresErrors) -> PostgresErrors:
        if self.errors is None or other.errors is None or self.conflicts is None or other.conflicts is None:
            return PostgresErrors(None, None)
        return PostgresErrors(self.errors + other.errors, self.conflicts + other.conflicts)


@dataclass(frozen=True, slots=True)
class Servers:
    urls: StackUrls
    external: bool
    stream: str
    subject_prefix: str
    data_dir: Path
    postgres_pid: int | None = None
    nats_pid: int | None = None
    postgres_log: Path | None = None

    def postgres_errors(self) -> PostgresErrors:
        """Errors PostgreSQL has logged so far (embedded stack only: an external server's log is not ours)."""
        if self.postgres_log is None or not self.postgres_log.exists():
            return PostgresErrors(None, None)
        text = self.postgres_log.read_bytes()
        return PostgresErrors(text.count(b"ERROR:"), text.count(b"is not at version"))

    def relay_settings(self) -> RelaySettings:
        return RelaySettings(
            profile="test",
            log_level="warning",
            database_url=self.urls.database_url,
            nats_urls=(self.urls.nats_url,),
            redis_url=self.urls.redis_url,
            nats_stream=self.stream,
            nats_subject_prefix=self.subject_prefix,
        )


@contextlib.contextmanager
def bench_servers() -> Iterator[Servers]:
    """The servers named by CQRS_BENCH_* when all are set, else an embedded stack in a temp dir."""
    values = [os.environ.get(name, "") for name in ENV_URLS]
    with tempfile.TemporaryDirectory(prefix="cqrs-bench-") as tmp:
        data_dir = Path(tmp)
        if all(values):
            remote = [v for v in values if urllib.parse.urlsplit(v).hostname not in (LOOPBACK, "localhost")]
            if remote:
                raise SystemExit(f"benchmarks run on 127.0.0.1 only; not on {', '.join(remote)}")
            run_id = uuid.uuid4().hex[:8]
            urls = StackUrls(*values)
            yield Servers(
                urls,
                external=True,
                stream=f"BENCH_{run_id}",
                subject_prefix=f"bench_{run_id}",
                data_dir=data_dir,
                postgres_pid=listener_pid(urls.database_url),
                nats_pid=listener_pid(urls.nats_url),
            )
            return
        stack = EmbeddedStack(data_dir / "stack")
        print(f"starting the embedded stack in {data_dir} ...", flush=True)
        urls = stack.start()
        try:
            yield Servers(
                urls,
                external=False,
                stream="EVENTS",
                subject_prefix="events",
                data_dir=data_dir,
                postgres_pid=stack.postgres.process.pid if stack.postgres.process else None,
                nats_pid=stack.nats.process.pid if stack.nats.process else None,
                postgres_log=stack.postgres.log_path,
            )
        finally:
            stack.stop()


def listener_pid(url: str) -> int | None:
    """The local process listening on the URL's port, so its CPU can be counted (None: not visible)."""
    port = urllib.parse.urlsplit(url).port
    with contextlib.suppress(psutil.Error, OSError):
        for connection in psutil.net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port:
                return connection.pid
    return None


async def ensure_jetstream(servers: Servers) -> str:
    """`cqrs stream ensure` for the bench's stream; returns the NATS server version."""
    client = await nats.connect(servers=[servers.urls.nats_url], connect_timeout=5)
    try:
        await ensure_stream(client.jetstream(), stream_config_from(servers.relay_settings()))
        version = client.connected_server_version
        return f"{version.major}.{version.minor}.{version.patch}"
    finally:
        await client.close()


async def delete_stream(servers: Servers) -> None:
    client = await nats.connect(servers=[servers.urls.nats_url], connect_timeout=5)
    try:
        await client.jetstream().delete_stream(servers.stream)
    finally:
        await client.close()


# --------------------------------------------------------------------------- data set


@dataclass(frozen=True, slots=True)
class DataSet:
    owner: uuid.UUID
    baseline: list[uuid.UUID]
    short: list[uuid.UUID]
    long: list[uuid.UUID]
    long_setup_seconds: float
    postgres_version: str


def _account_rows(owner: uuid.UUID, count: int, name: str) -> tuple[list[uuid.UUID], list[str], list[str]]:
    ids = [uuid.uuid4() for _ in range(count)]
    opened = [
        _json.encode(AccountOpened(account_id=i, owner_id=owner, currency="EUR", name=name)).decode()
        for i in ids
    ]
    states = [
        _json.encode(Account(account_id=i, owner_id=owner, currency="EUR", name=name)).decode() for i in ids
    ]
    return ids, opened, states


_OPEN_ACCOUNTS: Final = """
WITH opened AS (
    INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data)
    SELECT gen_random_uuid(), a.id, 'account', 1, 'AccountOpened', 1, a.data
      FROM unnest($1::uuid[], $2::jsonb[]) AS a(id, data)
)
INSERT INTO aggregate_states (stream_id, stream_type, version, state)
SELECT a.id, 'account', 1, a.state FROM unnest($1::uuid[], $3::jsonb[]) AS a(id, state)
"""

# Events 2..N of each long stream: deposits of 1, straight into the store, not into the outbox.
_FILL_STREAMS: Final = """
INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data)
SELECT gen_random_uuid(), a.id, 'account', v, 'MoneyDeposited', 1,
       jsonb_build_object('account_id', a.id, 'entry_id', gen_random_uuid(), 'amount', 1,
                          'reference', 'seed ' || v)
  FROM unnest($1::uuid[]) AS a(id) CROSS JOIN generate_series(2, $2::int) AS v
"""
_SET_LONG_STATES: Final = """
UPDATE aggregate_states
   SET version = $2, state = jsonb_set(state, '{balance}', to_jsonb($2 - 1)), updated_at = now()
 WHERE stream_id = ANY($1::uuid[])
"""


async def open_accounts(
    connection: asyncpg.Connection, owner: uuid.UUID, count: int, name: str
) -> list[uuid.UUID]:
    ids, opened, states = _account_rows(owner, count, name)
    await connection.execute(_OPEN_ACCOUNTS, ids, opened, states)
    return ids


async def fill_long_streams(database_url: str, ids: list[uuid.UUID]) -> None:
    """Two connections, half the accounts each: PostgreSQL uses both cores."""
    halves = [ids[0::2], ids[1::2]]

    async def fill(part: list[uuid.UUID]) -> None:
        connection = await asyncpg.connect(database_url, timeout=10)
        try:
            async with connection.transaction():
                await connection.execute(_FILL_STREAMS, part, LONG_STREAM_LENGTH)
                await connection.execute(_SET_LONG_STATES, part, LONG_STREAM_LENGTH)
        finally:
            await connection.close()

    await asyncio.gather(*(fill(part) for part in halves if part))


async def prepare_data(database_url: str, options: Options) -> DataSet:
    owner = uuid.uuid4()
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        postgres_version = str(await connection.fetchval("SHOW server_version"))
        baseline = await open_accounts(connection, owner, options.accounts, "bench baseline")
        # As many short streams as long ones: both HTTP runs see the same contention per account.
        short = await open_accounts(connection, owner, options.long_accounts, "bench short")
        long = await open_accounts(connection, owner, options.long_accounts, "bench long")
        started = time.perf_counter()
        await fill_long_streams(database_url, long)
        long_seconds = time.perf_counter() - started
        # Leave no autovacuum, analyze or checkpoint debt from the bulk load to the timed runs.
        await connection.execute("VACUUM ANALYZE events")
        await connection.execute("VACUUM ANALYZE aggregate_states")
        with contextlib.suppress(asyncpg.PostgresError):
            await connection.execute("CHECKPOINT")
    finally:
        await connection.close()
    return DataSet(owner, baseline, short, long, long_seconds, postgres_version)


# --------------------------------------------------------------------------- CPU accounting


def _cpu(process: psutil.Process, *, reaped: bool = False) -> float:
    """CPU seconds of the process; with `reaped`, also of its children that exited and were waited for."""
    with contextlib.suppress(psutil.Error):
        times = process.cpu_times()
        total = float(times.user + times.system)
        if reaped:
            total += float(getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0))
        return total
    return 0.0


def _tree_cpu(pid: int | None) -> float:
    """A server and its children; PostgreSQL backends that exited count through the postmaster."""
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        return _cpu(root, reaped=True) + sum(_cpu(p) for p in root.children(recursive=True))
    except psutil.Error:
        return 0.0


def _busy_cpu() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.system + getattr(times, "nice", 0.0) + getattr(times, "softirq", 0.0))


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    """CPU seconds used so far by each party (PostgreSQL: the postmaster and its backends)."""

    at: float
    api: float
    postgres: float
    nats: float
    bench: float
    busy: float

    @classmethod
    def take(cls, servers: Servers, api_pid: int | None = None) -> CpuSnapshot:
        return cls(
            at=time.perf_counter(),
            api=_tree_cpu(api_pid),
            postgres=_tree_cpu(servers.postgres_pid),
            nats=_tree_cpu(servers.nats_pid),
            bench=_cpu(psutil.Process()),
            busy=_busy_cpu(),
        )


@dataclass(frozen=True, slots=True)
class CpuUse:
    """Average cores used by each party over a run; `other` is everything else on the machine."""

    client: float
    api: float
    postgres: float
    nats: float
    busy: float
    client_label: str = "client"

    @property
    def other(self) -> float:
        return max(0.0, self.busy - self.client - self.api - self.postgres - self.nats)

    def describe(self) -> str:
        parts = [f"{self.client_label} {self.client:.2f}"]
        if self.api:
            parts.append(f"API {self.api:.2f}")
        parts.append(f"PostgreSQL {self.postgres:.2f}")
        if self.nats >= 0.05:
            parts.append(f"NATS {self.nats:.2f}")
        parts.append(f"other {self.other:.2f}")
        return ", ".join(parts) + f" (busy {self.busy:.2f} of {os.cpu_count()})"


def cpu_use(
    before: CpuSnapshot, after: CpuSnapshot, client_seconds: float | None = None, label: str = "client"
) -> CpuUse:
    wall = max(after.at - before.at, 1e-9)
    client = client_seconds if client_seconds is not None else after.bench - before.bench
    return CpuUse(
        client=client / wall,
        api=(after.api - before.api) / wall,
        postgres=(after.postgres - before.postgres) / wall,
        nats=(after.nats - before.nats) / wall,
        busy=(after.busy - before.busy) / wall,
        client_label=label,
    )


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    name: str
    count: int
    seconds: float
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    non_2xx: int = 0
    conflicts: int | None = None
    stored_total: int = 0
    cpu: CpuUse | None = None
    plan: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def percentiles(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    if not ordered:
        return 0.0, 0.0, 0.0

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))] * 1000

    return at(0.50), at(0.95), at(0.99)


# --------------------------------------------------------------------------- ceiling: asyncpg direct

# The load query of PostgresEventStore, with asyncpg's placeholders.
LOAD_SQL: Final = """
SELECT stream_id, version, state::text AS state,
       NULL::bytea AS fingerprint, NULL::smallint AS status, NULL::text AS headers, NULL::bytea AS body
  FROM aggregate_states WHERE stream_id = ANY($1::uuid[])
UNION ALL
SELECT NULL, NULL, NULL, request_fingerprint, response_status, response_headers::text, response_body
  FROM idempotency_records
 WHERE principal = $2 AND idempotency_key = $3 AND expires_at > now()
"""
APPEND_SQL: Final = """
SELECT cqrs_append(
    $1::text, $2::text, $3::bytea, $4::timestamptz, $5::smallint, $6::jsonb, $7::bytea,
    $8::uuid[], $9::text[], $10::int[], $11::int[], $12::jsonb[],
    $13::uuid[], $14::uuid[], $15::text[], $16::int[], $17::text[], $18::smallint[],
    $19::jsonb[], $20::jsonb[]
)
"""


@dataclass
class CeilingStats:
    latencies: list[float] = field(default_factory=list)
    successes_total: int = 0
    conflicts: int = 0
    replays: int = 0


def append_arguments(
    principal: str, key: str, account_id: uuid.UUID, version: int, state_json: str
) -> tuple[Any, ...]:
    """What the executor would send for one deposit decided on `state_json` at `version`."""
    account = _account_decoder.decode(state_json)
    entry_id = uuid.UUID(bytes=uuid7().bytes)
    command = Deposit(account_id=account_id, entry_id=entry_id, amount=1, reference="bench")
    events = decider.decide(account, command)
    new_state = decider.fold(events, account)
    new_version = version + 1
    token = encode_token({account_id: new_version})
    answer = _json.encode(
        {"entry_id": entry_id, "account_id": account_id, "version": new_version, "consistency_token": token}
    )
    digest = hashlib.sha256(b"POST\0/v1/accounts/%s/deposits\0%s" % (str(account_id).encode(), BODY))
    metadata = _json.encode({"correlation_id": key, "causation_id": key}).decode()
    return (
        principal,
        key,
        digest.digest(),
        dt.datetime.now(dt.UTC) + IDEMPOTENCY_TTL,
        201,
        _json.encode({"Consistency-Token": token}).decode(),
        answer,
        [account_id],
        ["account"],
        [version],
        [new_version],
        [_json.encode(new_state).decode()],
        [uuid.UUID(bytes=uuid7().bytes)],
        [account_id],
        ["account"],
        [new_version],
        ["MoneyDeposited"],
        [1],
        [_json.encode(events[0]).decode()],
        [metadata],
    )


async def deposit_direct(
    connection: asyncpg.Connection, principal: str, key: str, account_id: uuid.UUID, stats: CeilingStats
) -> bool:
    for _ in range(MAX_ATTEMPTS):
        rows = await connection.fetch(LOAD_SQL, [account_id], principal, key)
        state = next((row for row in rows if row["stream_id"] is not None), None)
        if any(row["stream_id"] is None for row in rows):
            stats.replays += 1
            return True
        if state is None:
            raise RuntimeError(f"account {account_id} has no state row")
        arguments = append_arguments(principal, key, account_id, state["version"], state["state"])
        try:
            await connection.fetchval(APPEND_SQL, *arguments)
        except asyncpg.PostgresError as error:
            if getattr(error, "sqlstate", None) not in (VERSION_CONFLICT, UNIQUE_VIOLATION):
                raise
            stats.conflicts += 1
            continue
        return True
    return False


async def ceiling_run(servers: Servers, data: DataSet, options: Options) -> Result:
    principal = f"user:{data.owner}"
    prefix = uuid.uuid4().hex[:12]
    stats = CeilingStats()
    database_url = servers.urls.database_url
    connections = [await asyncpg.connect(database_url, timeout=10) for _ in range(options.connections)]
    errors_before = servers.postgres_errors()
    start = time.perf_counter()
    warm_until = start + options.warmup
    stop_at = warm_until + options.seconds
    snapshots: list[CpuSnapshot] = []

    async def worker(index: int, connection: asyncpg.Connection) -> None:
        rng = random.Random(index)
        sent = 0
        while time.perf_counter() < stop_at:
            account_id = data.baseline[rng.randrange(len(data.baseline))]
            key = f"{prefix}-{index}-{sent}"
            sent += 1
            began = time.perf_counter()
            ok = await deposit_direct(connection, principal, key, account_id, stats)
            ended = time.perf_counter()
            stats.successes_total += ok
            if ok and began >= warm_until and ended <= stop_at:
                stats.latencies.append(ended - began)

    async def probe() -> None:
        await asyncio.sleep(options.warmup)
        snapshots.append(CpuSnapshot.take(servers))
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        snapshots.append(CpuSnapshot.take(servers))

    try:
        await asyncio.gather(probe(), *(worker(i, c) for i, c in enumerate(connections)))
    finally:
        for connection in connections:
            await connection.close()
    p50, p95, p99 = percentiles(stats.latencies)
    result = Result(
        "ceiling: asyncpg, load + cqrs_append, no HTTP",
        count=len(stats.latencies),
        seconds=options.seconds,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        conflicts=stats.conflicts,
        stored_total=stats.successes_total,
        cpu=cpu_use(snapshots[0], snapshots[1]),
    )
    if stats.replays:
        result.notes.append(f"{stats.replays} unexpected idempotent replays")
    note_postgres_errors(result, servers.postgres_errors() - errors_before)
    return result


# --------------------------------------------------------------------------- HTTP runs


def mint_token(user_id: uuid.UUID, expires_in: int = 3600) -> str:
    """An access token for the bench's owner, signed as the command API's login signs them.

    The bench's accounts are written straight into the store (no registered
    user behind them), so it issues the token itself rather than logging in.
    """
    issuer = AccessTokenIssuer(
        load_key_set("EdDSA", DEV_JWT_PRIVATE_KEY, None),
        issuer="cqrs-platform",
        audience="cqrs-api",
        ttl_seconds=expires_in,
    )
    return issuer.issue(user_id, ["user"]).token


class ApiOptions(Protocol):
    """What `command_api` needs of a bench's options."""

    @property
    def workers(self) -> int: ...
    @property
    def pool_size(self) -> int | None: ...
    @property
    def server(self) -> str: ...


class LoadOptions(Protocol):
    """What `load_segment` needs of a bench's options."""

    @property
    def connections(self) -> int: ...
    @property
    def warmup(self) -> float: ...


def service_environment(urls: StackUrls, pool_size: int | None, server: str = "granian") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CQRS_")}
    env["CQRS_HTTP_SERVER"] = server
    if pool_size is not None:
        env["CQRS_DATABASE_POOL_SIZE"] = str(pool_size)
    return {
        **env,
        "CQRS_PROFILE": "test",
        "CQRS_LOG_LEVEL": "warning",
        "CQRS_LOG_FORMAT": "json",
        "CQRS_DATABASE_URL": urls.database_url,
        "CQRS_NATS_URLS": urls.nats_url,
        "CQRS_REDIS_URL": urls.redis_url,
        # Each benchmark measures its own subject with a few principals sending as fast as they
        # can, which any real quota refuses; bench/ratelimits.py measures what the limits cost.
        "CQRS_RATE_LIMITS_ENABLED": "false",
        # Several projector processes may run at once; their health and metrics are not measured.
        "CQRS_RELAY_OPS_PORT": "0",
        "CQRS_PROJECTOR_OPS_PORT": "0",
    }


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://{LOOPBACK}:{port}/health/ready"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the command API exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the command API was not ready within {timeout:g}s")


@dataclass(frozen=True, slots=True)
class Api:
    port: int
    pid: int
    token: str


@contextlib.contextmanager
def command_api(
    urls: StackUrls,
    options: ApiOptions,
    token: str,
    log_path: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Api]:
    """`cqrs command-api --workers W` on a free port, stopped with SIGTERM at the end.

    `extra_env` adds or overrides `CQRS_*` settings of the API (none by default).
    """
    port = free_port()
    argv = [sys.executable, "-m", "operator_cli", "command-api", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*argv, "--workers", str(options.workers)],
            env={**service_environment(urls, options.pool_size, options.server), **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        try:
            wait_ready(port, process)
            yield Api(port, process.pid, token)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@dataclass
class Segment:
    """One load generator run: its summary, its latencies (ms) and the CPU used meanwhile."""

    summary: dict[str, Any]
    latencies_ms: list[float]
    cpu: CpuUse
    postgres: PostgresErrors


def load_segment(
    api: Api, accounts: list[uuid.UUID], seconds: float, options: LoadOptions, servers: Servers
) -> Segment:
    tag = uuid.uuid4().hex[:8]
    spec = servers.data_dir / f"spec-{tag}.json"
    latencies = servers.data_dir / f"latencies-{tag}.json"
    spec.write_text(json.dumps({"token": api.token, "accounts": [str(a) for a in accounts]}))
    command = [sys.executable, "-m", "bench.http_load", "--port", str(api.port), "--spec", str(spec)]
    command += ["--connections", str(options.connections), "--seconds", str(seconds)]
    command += ["--warmup", str(options.warmup), "--latencies-out", str(latencies)]
    errors_before = servers.postgres_errors()
    before = CpuSnapshot.take(servers, api.pid)
    done = subprocess.run(command, capture_output=True, cwd=ROOT, timeout=seconds + 120, check=False)
    after = CpuSnapshot.take(servers, api.pid)
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{done.stderr.decode(errors='replace')[-2000:]}")
    summary: dict[str, Any] = json.loads(done.stdout)
    return Segment(
        summary,
        json.loads(latencies.read_text()),
        cpu_use(before, after, summary["cpu_seconds"]),
        servers.postgres_errors() - errors_before,
    )


def _add(into: dict[str, int], counts: Mapping[str, int]) -> None:
    for key, value in counts.items():
        into[key] = into.get(key, 0) + value


def combine(name: str, segments: list[Segment]) -> tuple[Result, dict[str, int]]:
    """One result from the segments of a run; also every status answered (warm-up and tail too)."""
    latencies = [ms / 1000 for segment in segments for ms in segment.latencies_ms]
    seconds = sum(float(s.summary["seconds"]) for s in segments)
    statuses: dict[str, int] = {}
    answered: dict[str, int] = {}
    errors: dict[str, int] = {}
    samples: dict[str, str] = {}
    for segment in segments:
        _add(statuses, segment.summary["statuses"])
        _add(answered, segment.summary["all_statuses"])
        _add(errors, segment.summary["errors"])
        samples.update(segment.summary["samples"])
    ok = sum(n for status, n in statuses.items() if status.startswith("2"))
    p50, p95, p99 = percentiles(latencies)
    cpus = [s.cpu for s in segments]
    logged = PostgresErrors(0, 0)
    for segment in segments:
        logged = logged + segment.postgres
    result = Result(
        name,
        count=ok,
        seconds=seconds,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        non_2xx=sum(statuses.values()) - ok,
        conflicts=logged.conflicts,
        cpu=CpuUse(
            client=sum(c.client for c in cpus) / len(cpus),
            api=sum(c.api for c in cpus) / len(cpus),
            postgres=sum(c.postgres for c in cpus) / len(cpus),
            nats=sum(c.nats for c in cpus) / len(cpus),
            busy=sum(c.busy for c in cpus) / len(cpus),
            client_label="load generator",
        ),
    )
    if result.non_2xx or errors:
        result.notes.append(f"statuses {statuses}, client errors {errors}, first bodies {samples}")
    note_postgres_errors(result, logged)
    return result, answered


def note_postgres_errors(result: Result, logged: PostgresErrors) -> None:
    if logged.errors is not None and logged.conflicts is not None and logged.errors > logged.conflicts:
        result.notes.append(
            f"PostgreSQL logged {logged.errors - logged.conflicts} errors other than conflicts"
        )


@dataclass
class HttpOutcome:
    short: Result
    long: Result
    findings: list[str]
    api_log: list[str]
    sessions: int
    requests: int
    pool_size: int


def run_http(servers: Servers, data: DataSet, options: Options) -> HttpOutcome:
    """Short and long streams in the order short, long, long, short (half the time each), so a
    drift of the machine during the runs weighs on both alike."""
    log_path = servers.data_dir / "command-api.log"
    half = options.seconds / 2
    segments: dict[str, list[Segment]] = {"short": [], "long": []}
    sessions_before = asyncio.run(sessions_opened(servers.urls.database_url))
    with command_api(servers.urls, options, mint_token(data.owner), log_path) as api:
        for kind in ("short", "long", "long", "short"):
            print(f"  HTTP {kind} streams, {half:g} s ...", flush=True)
            accounts = data.short if kind == "short" else data.long
            segments[kind].append(load_segment(api, accounts, half, options, servers))
    time.sleep(0.5)  # the API's sessions report their statistics as they end
    sessions = asyncio.run(sessions_opened(servers.urls.database_url)) - sessions_before - 1
    short, short_answered = combine("HTTP POST deposits, short streams", segments["short"])
    long, long_answered = combine(
        f"HTTP POST deposits, {LONG_STREAM_LENGTH:,}-event streams", segments["long"]
    )
    findings: list[str] = []
    for name, ids, base, answered in (
        ("short streams", data.short, 1, short_answered),
        ("long streams", data.long, LONG_STREAM_LENGTH, long_answered),
    ):
        stored = sum(n for status, n in answered.items() if status.startswith("2"))
        problems = asyncio.run(check_state(servers.urls.database_url, ids, base, stored))
        findings += [f"{name}: {p}" for p in problems]
    requests = sum(short_answered.values()) + sum(long_answered.values())
    pool = options.pool_size or default_pool_size()
    short.notes.append(
        f"the API opened {sessions:,} PostgreSQL sessions over both HTTP runs ({requests:,} requests; "
        f"{options.workers} workers with an asyncpg pool of at most {pool} each)"
    )
    return HttpOutcome(short, long, findings, api_log_lines(log_path), sessions, requests, pool)


def default_pool_size() -> int:
    fields = {f.name: f.default for f in msgspec.structs.fields(CommandApiSettings)}
    return int(fields["database_pool_size"])


async def sessions_opened(database_url: str) -> int:
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        value = await connection.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(value)
    finally:
        await connection.close()


def api_log_lines(path: Path) -> list[str]:
    """What the API logged beyond granian's start and stop lines (its level is warning)."""
    if not path.exists():
        return []
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return [line[:400] for line in lines if '"logger":"_granian' not in line]


# --------------------------------------------------------------------------- relay and raw publish


async def outbox_size(database_url: str) -> int:
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM outbox"))
    finally:
        await connection.close()


_TOP_UP: Final = """
WITH inserted AS (
    INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data)
    SELECT gen_random_uuid(), a.id, 'account', v, 'MoneyDeposited', 1,
           jsonb_build_object('account_id', a.id, 'entry_id', gen_random_uuid(), 'amount', 1,
                              'reference', 'top-up ' || v)
      FROM unnest($1::uuid[]) AS a(id) CROSS JOIN generate_series(1, $2::int) AS v
    RETURNING global_position
)
INSERT INTO outbox (global_position) SELECT global_position FROM inserted
"""


async def top_up_outbox(database_url: str, missing: int) -> None:
    """Streams of fresh ids (no state row needed: only the relay reads them)."""
    streams = [uuid.uuid4() for _ in range(256)]
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        await connection.execute(_TOP_UP, streams, -(-missing // len(streams)))
    finally:
        await connection.close()


async def stream_messages(js: JetStreamContext, stream: str) -> int:
    return int((await js.stream_info(stream)).state.messages)


def _join_of(node: Mapping[str, Any]) -> str | None:
    if node.get("Node Type") in ("Merge Join", "Nested Loop", "Hash Join"):
        return str(node["Node Type"])
    for child in node.get("Plans", []):
        found = _join_of(child)
        if found:
            return found
    return None


async def explain_fetch(database_url: str, batch_size: int) -> tuple[str, str]:
    """How the relay's first fetch runs: join method and time (EXPLAIN ANALYZE, outside the timing)."""
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        raw = await connection.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {RELAY_FETCH}", batch_size)
        analyzed = await connection.fetchval(
            "SELECT reltuples >= 0 FROM pg_class WHERE oid = 'outbox'::regclass"
        )
    finally:
        await connection.close()
    plan = json.loads(raw)[0]
    join = _join_of(plan["Plan"]) or "no join"
    took = float(plan["Execution Time"])
    stats = "" if analyzed else "; the outbox had never been analyzed"
    note = (
        f"first fetch of {batch_size:,} outbox rows: {join}, {took:.1f} ms (EXPLAIN ANALYZE, untimed){stats}"
    )
    return join, note


async def wait_published(relay: Relay, task: asyncio.Task[None], target: int, deadline: float) -> None:
    while relay.published_total < target and time.perf_counter() < deadline and not task.done():  # noqa: ASYNC110 - polls the relay's counter
        await asyncio.sleep(0.01)


async def relay_run(servers: Servers, options: Options) -> tuple[Result, int]:
    urls = servers.urls
    initial = await outbox_size(urls.database_url)
    if initial < MIN_RELAY_EVENTS:
        await top_up_outbox(urls.database_url, MIN_RELAY_EVENTS - initial)
        initial = await outbox_size(urls.database_url)
    client = await nats.connect(servers=[urls.nats_url], connect_timeout=5)
    js = client.jetstream(timeout=10)
    messages_before = await stream_messages(js, servers.stream)
    settings = servers.relay_settings()
    fetch_join, fetch_plan = await explain_fetch(urls.database_url, settings.relay_batch_size)
    relay = Relay(settings)
    before = CpuSnapshot.take(servers)
    task = asyncio.create_task(relay.run())
    await wait_published(relay, task, initial, before.at + options.relay_timeout)
    after = CpuSnapshot.take(servers)
    published = relay.published_total
    relay.stop.set()
    await asyncio.wait_for(task, 30)
    left = await outbox_size(urls.database_url)
    delivered = await stream_messages(js, servers.stream) - messages_before
    await client.close()
    result = Result(
        "relay: outbox → JetStream, acked, rows deleted",
        count=published,
        seconds=after.at - before.at,
        cpu=cpu_use(before, after, label="relay (in-process)"),
        plan=fetch_join,
    )
    result.notes.append(
        f"{initial:,} events in the outbox, {left:,} left after, {delivered:,} new in the stream"
    )
    result.notes.append(fetch_plan)
    if published < initial:
        result.notes.append(f"NOT drained within {options.relay_timeout:g} s")
    return result, published


def relay_like_headers(index: int, run_id: str) -> dict[str, str]:
    return {
        "Nats-Msg-Id": f"{run_id}-{index}",
        "Event-Type": "MoneyDeposited",
        "Event-Schema-Version": "1",
        "Stream-Id": str(uuid.UUID(int=index % RAW_IN_FLIGHT)),
        "Stream-Version": str(index // RAW_IN_FLIGHT + 1),
        "Global-Position": str(index + 1),
        "Correlation-Id": run_id,
        "Causation-Id": run_id,
    }


async def raw_publish_run(servers: Servers, count: int, options: Options) -> Result:
    """`js.publish` of `count` event-sized messages with the relay's headers, 256 in flight."""
    client = await nats.connect(servers=[servers.urls.nats_url], connect_timeout=5)
    js = client.jetstream(timeout=10)
    run_id = uuid.uuid4().hex[:10]
    payload = _json.encode(
        {"account_id": uuid.uuid4(), "entry_id": uuid.uuid4(), "amount": 1, "reference": "bench"}
    )
    subject_root = f"{servers.subject_prefix}.bench.raw"
    next_index = 0
    failures = 0
    before = CpuSnapshot.take(servers)
    deadline = before.at + options.relay_timeout

    async def publisher() -> None:
        nonlocal next_index, failures
        while next_index < count and time.perf_counter() < deadline:
            index = next_index
            next_index += 1
            subject = f"{subject_root}.{index % RAW_IN_FLIGHT}"
            try:
                await js.publish(subject, payload, headers=relay_like_headers(index, run_id))
            except (nats.errors.Error, OSError):
                failures += 1

    await asyncio.gather(*(publisher() for _ in range(RAW_IN_FLIGHT)))
    after = CpuSnapshot.take(servers)
    published = next_index - failures
    # The stream carries events; the bench's own messages leave it again.
    await js.purge_stream(servers.stream, subject=f"{subject_root}.>")
    await client.close()
    result = Result(
        f"baseline: raw js.publish, {RAW_IN_FLIGHT} in flight, same stream",
        count=published,
        seconds=after.at - before.at,
        cpu=cpu_use(before, after, label="publisher"),
    )
    if failures:
        result.notes.append(f"{failures} publishes failed")
    if published < count:
        result.notes.append(f"stopped at the {options.relay_timeout:g} s bound")
    return result


async def run_relays(servers: Servers, options: Options) -> tuple[Result, Result]:
    relay, published = await relay_run(servers, options)
    raw = await raw_publish_run(servers, published, options)
    return relay, raw


# --------------------------------------------------------------------------- checks


_STATE_CHECK: Final = """
SELECT count(*) AS accounts,
       coalesce(sum(s.version), 0) AS versions,
       count(*) FILTER (WHERE (s.state->>'balance')::bigint <> s.version - 1) AS wrong_balance,
       count(*) FILTER (
           WHERE s.version <> (SELECT max(e.version) FROM events e WHERE e.stream_id = s.stream_id)
       ) AS wrong_version
  FROM aggregate_states s WHERE s.stream_id = ANY($1::uuid[])
"""


async def check_state(database_url: str, ids: list[uuid.UUID], base_version: int, stored: int) -> list[str]:
    """Every deposit was 1: balance = version - 1, the state row matches the stream, one event per 2xx."""
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        row = await connection.fetchrow(_STATE_CHECK, ids)
    finally:
        await connection.close()
    problems: list[str] = []
    appended = int(row["versions"]) - base_version * int(row["accounts"])
    if appended != stored:
        problems.append(f"{appended} events appended but {stored} successes answered")
    if row["wrong_balance"]:
        problems.append(f"{row['wrong_balance']} accounts with a balance that does not match their version")
    if row["wrong_version"]:
        problems.append(f"{row['wrong_version']} state rows not at their stream's last version")
    return problems


# --------------------------------------------------------------------------- report


@dataclass
class Report:
    options: Options
    servers: Servers
    data: DataSet
    nats_version: str
    ceiling: Result
    short: Result
    long: Result
    relay: Result
    raw: Result
    findings: list[str]
    http: HttpOutcome
    total_seconds: float = 0.0

    @property
    def api_log(self) -> list[str]:
        return self.http.api_log

    def caveats(self) -> list[str]:
        if self.servers.postgres_pid is None or self.servers.nats_pid is None:
            return ["The servers' processes were not found, so their CPU counts as other."]
        busy = [(r.cpu.other, r.name) for r in self.results if r.cpu is not None]
        other, name = max(busy)
        if other < BUSY_MACHINE:
            return []
        return [
            f"Processes outside the benchmark used up to {other:.2f} cores (during {name}): "
            "the machine was not quiet, so these figures understate it."
        ]

    @property
    def results(self) -> tuple[Result, ...]:
        return (self.ceiling, self.short, self.long, self.relay, self.raw)


def ratio_line(name: str, value: float, target: float | None) -> str:
    if target is None:
        return f"| {name} | {value:.0%} | - | - |"
    verdict = "met" if value >= target else "**missed**"
    return f"| {name} | {value:.0%} | ≥ {target:.0%} | {verdict} |"


def figures_table(report: Report) -> list[str]:
    lines = [
        "| run | rate | p50 ms | p95 ms | p99 ms | non-2xx | conflicts | cores used |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    units = ("txn/s", "req/s", "req/s", "events/s", "msg/s")
    for result, unit in zip(report.results, units, strict=True):
        latency = "- | - | -"
        if result.p50_ms:
            latency = f"{result.p50_ms:.1f} | {result.p95_ms:.1f} | {result.p99_ms:.1f}"
        cpu = result.cpu.describe() if result.cpu else ""
        conflicts = "-" if result.conflicts is None else f"{result.conflicts:,}"
        non_2xx = result.non_2xx if result in (report.short, report.long) else "-"
        lines.append(
            f"| {result.name} | {result.rate:,.0f} {unit} | {latency} | {non_2xx} | {conflicts} | {cpu} |"
        )
    return lines


def ratios_table(report: Report) -> list[str]:
    return [
        "| ratio | measured | target | |",
        "| --- | ---: | ---: | --- |",
        ratio_line("HTTP (short streams) / ceiling", report.short.rate / report.ceiling.rate, HTTP_TARGET),
        ratio_line("long streams / short streams (HTTP)", report.long.rate / report.short.rate, LONG_TARGET),
        ratio_line("relay / raw publish", report.relay.rate / report.raw.rate, None),
    ]


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> str:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def filesystem_of(path: Path) -> str:
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for part in psutil.disk_partitions(all=True):
            if str(path).startswith(part.mountpoint) and len(part.mountpoint) > len(best):
                best, kind = part.mountpoint, part.fstype
    return kind


def environment_lines(servers: Servers, postgres_version: str, nats_version: str) -> list[str]:
    """Date, machine and versions: the first lines of a section's description of its run."""
    origin = "external (CQRS_BENCH_*)" if servers.external else "embedded stack in a temp dir"
    return [
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} vCPU ({cpu_model()}), {memory_gib()} RAM, "
        f"data dir on {filesystem_of(servers.data_dir)}",
        f"- Versions: Python {platform.python_version()}, PostgreSQL {postgres_version}, "
        f"NATS {nats_version}; servers: {origin}",
    ]


def machine_lines(report: Report) -> list[str]:
    options = report.options
    settings = (
        f"- Settings: {options.seconds:g} s measured per run (the HTTP runs in halves, ordered short, long, "
        f"long, short), {options.warmup:g} s warm-up before each, C = {options.connections} connections, "
        f"W = {options.workers} {options.server} workers, K = {options.accounts} accounts for the ceiling, "
        f"{options.long_accounts} fresh accounts for the short streams and {options.long_accounts} of "
        f"{LONG_STREAM_LENGTH:,} events each for the long streams (bulk-inserted in "
        f"{report.data.long_setup_seconds:.1f} s), requests spread uniformly at random over a set's "
        "accounts, one owner and one token"
    )
    return [
        *environment_lines(report.servers, report.data.postgres_version, report.nats_version),
        settings + (", `--quick`" if options.quick else ""),
    ]


def limits_paragraph(report: Report) -> list[str]:
    http_ratio = report.short.rate / report.ceiling.rate
    long_ratio = report.long.rate / report.short.rate
    ceiling_cpu = report.ceiling.cpu.describe() if report.ceiling.cpu else ""
    short_cpu = report.short.cpu.describe() if report.short.cpu else ""
    api_us_per_request = (report.short.cpu.api / report.short.rate * 1e6) if report.short.cpu else 0.0
    return [
        "What limits each figure:",
        "",
        f"- **Ceiling** ({report.ceiling.rate:,.0f} txn/s): two round trips per deposit (the load query, "
        "then `cqrs_append`, an autocommit transaction with a synchronous commit) from one Python "
        f"process; the asyncpg client and PostgreSQL share the 2 cores ({ceiling_cpu}); each commit "
        "waits for its WAL flush (fdatasync). The NOTIFY for the relay is not part of this work: "
        "the event store sends one, coalesced, after its appends commit (inside the transaction it "
        "serialised every commit "
        "and halved this ceiling; migration 0003). Conflicts (CQ002, retried) come from "
        f"{report.options.connections} connections on randomly chosen accounts with no lock of their own; "
        "the API's conflicts are between its workers (within one, per-account locks queue requests).",
        f"- **HTTP** ({report.short.rate:,.0f} req/s, {http_ratio:.0%} of the ceiling): the load generator, "
        f"{report.options.workers} API workers and PostgreSQL share 2 cores ({short_cpu}); the API "
        "workers take the largest share. On top of the same two statements each request costs HTTP "
        f"parsing ({report.options.server}), litestar routing and middleware (request context, "
        "Prometheus), token verification (cached), body decoding and the answer's encoding, the "
        "executor's per-stream lock and the event loop around two asyncpg round trips: about "
        f"{api_us_per_request:,.0f} µs of API CPU per request." + pool_sentence(report),
        f"- **Long streams** ({long_ratio:.0%} of short): a command reads the state row, never the stream, "
        "so a stream's length only reaches the `(stream_id, version)` index of `events`, "
        "and what remains of the difference is mostly run-to-run noise.",
        f"- **Relay** ({report.relay.rate:,.0f} events/s against {report.raw.rate:,.0f} msg/s raw): the "
        "embedded JetStream syncs every write to disk (`sync_interval: always`; ceilings.md: ≈ 7,000 "
        "msg/s whatever the concurrency). The relay keeps each stream's events in order, one publish in "
        "flight per stream, so a batch of 1,000 events spread over a few hundred streams runs "
        "below 256 in flight as its streams finish, and each batch adds a fetch and a delete."
        + relay_plan_sentence(report),
        "- **Other** in the cores column is CPU used by processes outside this benchmark (the machine may "
        "be shared); when it is well above 0 the figures of that run are low.",
    ]


def relay_plan_sentence(report: Report) -> str:
    if report.relay.plan != "Merge Join":
        return ""
    return (
        " Above all, PostgreSQL ran the relay's fetch as a merge join that walks the primary key of "
        "`events` from its first position up to the oldest outbox row, in every batch: with "
        f"{report.options.long_accounts * LONG_STREAM_LENGTH:,} bulk-loaded events before the outbox's "
        "first position, each fetch costs time in proportion to the size of the event store (see the "
        "observation above), not to the batch."
    )


def pool_sentence(report: Report) -> str:
    http = report.http
    steady = report.options.workers * http.pool_size
    if http.sessions <= steady:
        return ""
    return (
        f" The API opened {http.sessions:,} PostgreSQL sessions for {http.requests:,} requests: with "
        f"{report.options.connections} connections over {report.options.workers} workers, more requests "
        f"wait on the database at once than a worker's pool keeps ({http.pool_size}), and connections "
        "are being opened and closed again; each new session costs PostgreSQL a "
        "fork and the API a connect, codec set-up and fresh prepared statements "
        "(`--pool-size 32` runs the API with a pool that fits the load, for comparison)."
    )


def section(report: Report) -> str:
    lines = [
        SECTION,
        "",
        "`uv run python -m bench.commands` (bench/commands.py): the deposit command over HTTP against the "
        "same database work issued directly through asyncpg, accounts with 10,000-event streams against "
        "fresh ones, and the outbox relay against raw JetStream publishing, all measured in one run.",
        "",
        *machine_lines(report),
        "",
        *figures_table(report),
        "",
        *ratios_table(report),
        "",
    ]
    notes = [f"- {r.name}: {n}" for r in report.results for n in r.notes]
    notes += [f"- {caveat}" for caveat in report.caveats()]
    if notes:
        lines += ["Observations of this run:", "", *notes, ""]
    if report.findings:
        lines += ["Checks that failed:", "", *(f"- {f}" for f in report.findings), ""]
    if report.api_log:
        lines += [f"The API logged {len(report.api_log)} lines at warning or above; the first:", "", "```"]
        lines += [*report.api_log[:3], "```", ""]
    lines += [*limits_paragraph(report), ""]
    return "\n".join(lines)


def write_docs(text: str, heading: str = SECTION) -> None:
    """Replace the section `heading` of docs/benchmarks.md (to the next `## `), or append it; others stay."""
    if DOCS.exists():
        current = DOCS.read_text()
        pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
        if pattern.search(current):
            updated = pattern.sub(lambda _: text.rstrip() + "\n\n", current, count=1).rstrip() + "\n"
        else:
            updated = current.rstrip() + "\n\n" + text.rstrip() + "\n"
    else:
        updated = (
            "# Benchmarks\n\n"
            "Measured by the scripts in `bench/` (rules in bench/README.md): real servers on 127.0.0.1, "
            "each figure next to a baseline measured in the same run. Each script replaces only its own "
            "section.\n\n" + text.rstrip() + "\n"
        )
    DOCS.write_text(updated)


def print_report(report: Report, *, docs_written: bool) -> None:
    print()
    print("\n".join(figures_table(report)))
    print()
    print("\n".join(ratios_table(report)))
    for result in report.results:
        for note in result.notes:
            print(f"  {result.name}: {note}")
    for caveat in report.caveats():
        print(f"  CAVEAT: {caveat}")
    for finding in report.findings:
        print(f"  CHECK FAILED: {finding}")
    for line in report.api_log[:5]:
        print(f"  API log: {line}")
    where = f"written to {DOCS.relative_to(ROOT)}" if docs_written else "docs left alone (--no-docs)"
    print(f"\ntotal {report.total_seconds:.0f} s; {where}")


# --------------------------------------------------------------------------- main


def run(options: Options) -> Report:
    started = time.perf_counter()
    configure_logging("warning", "console")
    with bench_servers() as servers:
        print("migrating ...", flush=True)
        upgrade(servers.urls.database_url)
        nats_version = asyncio.run(ensure_jetstream(servers))
        print(
            f"creating {options.accounts + options.long_accounts} accounts and {options.long_accounts} "
            f"streams of {LONG_STREAM_LENGTH:,} events ...",
            flush=True,
        )
        data = asyncio.run(prepare_data(servers.urls.database_url, options))
        print(f"  long streams bulk-inserted in {data.long_setup_seconds:.1f} s", flush=True)
        print(f"ceiling run (asyncpg direct), {options.seconds:g} s ...", flush=True)
        ceiling = asyncio.run(ceiling_run(servers, data, options))
        findings = [
            f"ceiling: {problem}"
            for problem in asyncio.run(
                check_state(servers.urls.database_url, data.baseline, 1, ceiling.stored_total)
            )
        ]
        print("HTTP runs ...", flush=True)
        http = run_http(servers, data, options)
        findings += http.findings
        print("relay run, then raw publish ...", flush=True)
        relay, raw = asyncio.run(run_relays(servers, options))
        if servers.external:
            asyncio.run(delete_stream(servers))
        report = Report(
            options, servers, data, nats_version, ceiling, http.short, http.long, relay, raw, findings, http
        )
    report.total_seconds = time.perf_counter() - started
    return report


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    report = run(options)
    if options.write_docs:
        write_docs(section(report))
    print_report(report, docs_written=options.write_docs)


if __name__ == "__main__":
    main()
