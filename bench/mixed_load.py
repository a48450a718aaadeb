"""Mixed load at 80 % of the measured capacity: latencies, errors and the cache's hit ratio.

    uv run python -m bench.mixed_load [--seconds 30] [--accounts 64] [--clients 32] [--quick] [--no-docs]

The whole system runs as in production, each part a process of its own on
127.0.0.1: `cqrs command-api`, `cqrs query-api`, `cqrs relay` and `cqrs
projector run`, on the servers of bench/commands.py (an embedded PostgreSQL,
NATS and Redis, or the CQRS_BENCH_* ones), with rate limits off as in the
other benches. One owner's A accounts, each opened and funded through the
API. The mix is a read-heavy API's: 90 % reads (GET /v1/accounts/{id} on the
query API) and 10 % writes (5 % deposits, 2.5 % withdrawals, 2.5 % transfers,
each with an Idempotency-Key), accounts chosen uniformly. The load generator
is tests/fault/load.py's, in this process.

1. Capacity, the baseline: C clients back to back (each sends its next
   operation when its last one is answered) for S seconds; operations/s.
2. The load: open loop at 80 % of that rate for S seconds (each operation
   leaves at its due time whatever the answers, so queueing shows in the
   latencies rather than slowing the load down).

Reported for the load: the rate achieved, p50/p95/p99 per kind and overall,
the error rate (5xx, 503 included, and transport errors, over all attempts;
a refusal such as insufficient funds is an answer, not an error) and the
cache's hit ratio over the load (`cqrs_query_cache_lookups_total` of the
query API: local and Redis hits over all lookups), against the targets
P95 < 200 ms, errors < 0.1 %, hit ratio > 80 %. Written to the section
"## Mixed load (issue 9)" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

from bench.commands import (
    bench_servers,
    ensure_jetstream,
    environment_lines,
    mint_token,
    service_environment,
    write_docs,
)
from bench.logins import postgres_version_of, say
from bench.projections import redis_prefix, verdict
from devstack.ports import free_port
from shared.db.migrate import upgrade
from tests.fault.load import History, LoadGenerator, LoadPlan, Mix, Operation, open_accounts
from tests.support.services import running, system_services

SECTION = "## Mixed load (issue 9)"
MIX = Mix(deposit=0.05, withdraw=0.025, transfer=0.025, read=0.9)
SHARE_OF_CAPACITY = 0.8
TARGET_P95_SECONDS = 0.2
TARGET_ERROR_RATE = 0.001
TARGET_HIT_RATIO = 0.8
OPENING_BALANCE = 1_000_000
# A Python load generator is saturated near one core: past this it, not the system, set the pace.
CLIENT_BOUND_CORES = 0.85


@dataclass(frozen=True)
class Options:
    seconds: float
    accounts: int
    clients: int
    write_docs: bool


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="each of the two runs (default 30)")
    parser.add_argument("--accounts", type=int, default=64)
    parser.add_argument("--clients", type=int, default=32, help="clients of the capacity run (default 32)")
    parser.add_argument("--quick", action="store_true", help="5 s runs: a smoke test, figures not kept")
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    seconds = 5.0 if args.quick else args.seconds
    return Options(seconds, args.accounts, args.clients, write_docs=not (args.no_docs or args.quick))


@dataclass(frozen=True)
class Run:
    name: str
    seconds: float
    operations: int
    attempts: int
    errors: int
    latencies: dict[str, list[float]]
    hit_ratio: float | None = None
    # Cores this process (the load generator) used, and the whole machine, over the run.
    client_cores: float = 0.0
    machine_cores: float = 0.0

    @property
    def rate(self) -> float:
        return self.operations / self.seconds

    @property
    def error_rate(self) -> float:
        return self.errors / self.attempts if self.attempts else 0.0

    def all_latencies(self) -> list[float]:
        return [value for values in self.latencies.values() for value in values]


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def cache_lookups(query_url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{query_url}/metrics", timeout=5) as response:  # noqa: S310 - our own 127.0.0.1 API
        text = response.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "cqrs_query_cache_lookups":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["result"]] = sample.value
    return counts


def hit_ratio(before: dict[str, float], after: dict[str, float]) -> float:
    delta = {result: after.get(result, 0.0) - before.get(result, 0.0) for result in after}
    lookups = sum(delta.values())
    return (delta.get("hit", 0.0) + delta.get("local_hit", 0.0)) / lookups if lookups else 0.0


def summarise(name: str, seconds: float, history: History, generator: LoadGenerator) -> Run:
    attempts = [entry for entry in history.entries if entry["event"] in ("ok", "fail", "unknown", "retry")]
    errors = [entry for entry in attempts if "error" in entry or entry.get("status", 0) >= 500]
    operations = sum(1 for entry in history.entries if entry["event"] == "invoke")
    latencies: dict[str, list[float]] = {str(kind): values for kind, values in generator.latencies.items()}
    return Run(name, seconds, operations, len(attempts), len(errors), latencies)


@contextmanager
def the_system(environment: dict[str, str], log_dir: Path) -> Iterator[tuple[str, str]]:
    command_port, query_port = free_port(), free_port()
    with running(*system_services(environment, log_dir, command_port, query_port).values()):
        yield f"http://127.0.0.1:{command_port}", f"http://127.0.0.1:{query_port}"


async def measure(options: Options, command_url: str, query_url: str, log_dir: Path) -> tuple[Run, Run]:
    headers = {"Authorization": f"Bearer {mint_token(uuid.uuid4())}"}
    accounts = await open_accounts(command_url, headers, options.accounts)
    funding = History(log_dir / "funding.jsonl")
    funder = LoadGenerator(command_url, query_url, headers, LoadPlan(1, 1, accounts), funding)
    await funder.perform_all(
        [Operation(f"fund-{uuid.uuid4().hex}", "deposit", account, OPENING_BALANCE) for account in accounts]
    )
    # Every account read once, so that the runs measure a warm cache, as a running service has.
    await funder.perform_all([Operation(f"warm-{uuid.uuid4().hex}", "read", account) for account in accounts])
    funding.close()

    say(f"capacity: {options.clients} clients back to back, {options.seconds:g} s ...")
    history = History(log_dir / "capacity.jsonl")
    plan = LoadPlan(rate_per_second=1, seconds=options.seconds, accounts=accounts, mix=MIX)
    generator = LoadGenerator(command_url, query_url, headers, plan, history)
    before = cache_lookups(query_url)
    with cores_used() as cores:
        await generator.run_closed(options.clients)
    capacity = summarise("capacity (closed loop)", options.seconds, history, generator)
    capacity = dataclasses.replace(
        capacity,
        hit_ratio=hit_ratio(before, cache_lookups(query_url)),
        client_cores=cores[0],
        machine_cores=cores[1],
    )
    history.close()

    rate = SHARE_OF_CAPACITY * capacity.rate
    say(f"load: {rate:,.0f} operations/s (80 % of {capacity.rate:,.0f}), {options.seconds:g} s ...")
    history = History(log_dir / "load.jsonl")
    plan = LoadPlan(
        rate_per_second=rate, seconds=options.seconds, accounts=accounts, mix=MIX, concurrency=256, seed=1
    )
    generator = LoadGenerator(command_url, query_url, headers, plan, history)
    before = cache_lookups(query_url)
    started = time.monotonic()
    with cores_used() as cores:
        await generator.run()
    elapsed = time.monotonic() - started
    load = summarise("load at 80 %", elapsed, history, generator)
    load = dataclasses.replace(
        load,
        hit_ratio=hit_ratio(before, cache_lookups(query_url)),
        client_cores=cores[0],
        machine_cores=cores[1],
    )
    history.close()
    return capacity, load


@contextmanager
def cores_used() -> Iterator[list[float]]:
    """[this process's cores, the machine's busy cores] over the block, filled in when it ends."""
    own = psutil.Process()
    own_before, machine_before, started = own.cpu_times(), psutil.cpu_times(), time.monotonic()
    result = [0.0, 0.0]
    yield result
    wall = time.monotonic() - started
    own_after, machine_after = own.cpu_times(), psutil.cpu_times()
    result[0] = (own_after.user + own_after.system - own_before.user - own_before.system) / wall
    idle = machine_after.idle - machine_before.idle
    total = sum(machine_after) - sum(machine_before)
    result[1] = (psutil.cpu_count() or 1) * (1 - idle / total) if total else 0.0


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def limits_of(capacity: Run) -> list[str]:
    """What bounded the capacity run, from the cores each side used."""
    cores = psutil.cpu_count() or 1
    if capacity.client_cores >= CLIENT_BOUND_CORES:
        return [
            f"What limits it: the capacity measured is the load generator's. It is one Python process "
            f"(httpx, asyncio) and used {capacity.client_cores:.2f} of a core, while the whole machine was "
            f"busy {capacity.machine_cores:.2f} of {cores} cores: the system had room left. So the load at "
            "80 % of it runs below the system's own 80 %, and its latencies are those of a system with "
            "headroom. bench/queries.py measures one API alone with a faster client (raw HTTP/1.1 in a "
            "process of its own).",
            "",
        ]
    return [
        f"What limits it: the machine ({capacity.machine_cores:.2f} of {cores} cores busy in the capacity "
        f"run, {capacity.client_cores:.2f} of them the load generator's), shared by every process and "
        "server.",
        "",
    ]


def section(options: Options, capacity: Run, load: Run, lines: list[str], total_seconds: float) -> str:
    rows = [
        "| run | operations/s | p50 ms | p95 ms | p99 ms | errors | cache hit ratio | cores: client, all |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in (capacity, load):
        every = run.all_latencies()
        rows.append(
            f"| {run.name} | {run.rate:,.0f} | {milliseconds(percentile(every, 0.5))} | "
            f"{milliseconds(percentile(every, 0.95))} | {milliseconds(percentile(every, 0.99))} | "
            f"{run.error_rate:.3%} | {run.hit_ratio or 0:.1%} | "
            f"{run.client_cores:.2f}, {run.machine_cores:.2f} |"
        )
    kinds = [
        "| kind (load at 80 %) | answered | p50 ms | p95 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for kind, values in load.latencies.items():
        kinds.append(
            f"| {kind} | {len(values):,} | {milliseconds(percentile(values, 0.5))} | "
            f"{milliseconds(percentile(values, 0.95))} | {milliseconds(percentile(values, 0.99))} |"
        )
    p95 = percentile(load.all_latencies(), 0.95)
    hits = load.hit_ratio or 0.0
    targets = [
        "| target (load at 80 %) | measured | |",
        "| --- | ---: | --- |",
        f"| P95 < 200 ms | {milliseconds(p95)} ms | {verdict(p95 < TARGET_P95_SECONDS)} |",
        f"| errors < 0.1 % | {load.error_rate:.3%} | {verdict(load.error_rate < TARGET_ERROR_RATE)} |",
        f"| cache hit ratio > 80 % | {hits:.1%} | {verdict(hits > TARGET_HIT_RATIO)} |",
        f"| rate achieved / asked | {load.rate / (SHARE_OF_CAPACITY * capacity.rate):.0%} | |",
    ]
    return "\n".join(
        [
            SECTION,
            "",
            "`uv run python -m bench.mixed_load` (method in its docstring): the whole system as processes, "
            f"a 90 % read / 10 % write mix over {options.accounts} accounts, {options.seconds:g} s per run; "
            "the load runs at 80 % of the capacity measured just before it, in the same run.",
            "",
            *lines,
            f"- Whole run: {total_seconds:.0f} s",
            "",
            *rows,
            "",
            *kinds,
            "",
            *targets,
            "",
            *limits_of(capacity),
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    started = time.perf_counter()
    with bench_servers() as servers, tempfile.TemporaryDirectory(prefix="cqrs-mixed-") as tmp:
        say("migrating ...")
        upgrade(servers.urls.database_url)
        nats_version = asyncio.run(ensure_jetstream(servers))
        postgres_version = asyncio.run(postgres_version_of(servers.urls.database_url))
        environment = {
            **service_environment(servers.urls, None),
            "CQRS_NATS_STREAM": servers.stream,
            "CQRS_NATS_SUBJECT_PREFIX": servers.subject_prefix,
            "CQRS_REDIS_KEY_PREFIX": redis_prefix(servers),
        }
        with the_system(environment, Path(tmp)) as (command_url, query_url):
            capacity, load = asyncio.run(measure(options, command_url, query_url, Path(tmp)))
        lines = environment_lines(servers, postgres_version, nats_version)
    text = section(options, capacity, load, lines, time.perf_counter() - started)
    if options.write_docs:
        write_docs(text, SECTION)
    print()
    print(text)
    print("written to docs/benchmarks.md" if options.write_docs else "docs left alone (--no-docs/--quick)")


if __name__ == "__main__":
    main()
