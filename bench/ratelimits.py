"""Benchmark of the rate limits: what they cost a cached GET, and how a flood is refused.

    uv run python -m bench.ratelimits [--seconds 10] [--principals 32] [--quick] [--no-docs]

Everything runs on 127.0.0.1, on the servers of bench/commands.py (an embedded
PostgreSQL, NATS and Redis in a temporary folder, or the servers named by
CQRS_BENCH_*). P principals own K/P accounts each, inserted straight into
`read.accounts` as bench/queries.py does, and each asks only for its own.

1. Cost, side by side in the same run: three `cqrs query-api` servers (W = 2
   granian workers each), their caches warmed, under the load generator of
   bench/queries.py (C keep-alive connections, GET /v1/accounts/{id}, ids
   Zipf-distributed, each request with its account owner's token), in segments
   ordered off, leased, per-request, per-request, leased, off:
   - off: `CQRS_RATE_LIMITS_ENABLED=false`, the baseline;
   - leased: limits on as shipped (tokens leased to each process, up to 256 at
     once), with a quota no principal reaches, so every request is counted and
     none refused;
   - per-request: the same with `CQRS_RATE_LIMIT_LEASE_MAX=1`, one Redis round
     trip per request: the design the leases replace.
   Redis's own count of script calls (INFO commandstats) gives the round
   trips per request.
2. Flood: a fourth server whose query policy is 10 requests a second (a
   token bucket of 10) with abuse blocking (4 times the quota refused within
   a window blocks for 300 s); one principal sends 20 times its quota
   (200 req/s, paced over 8 connections) while another sends half its quota
   (5 req/s) for the same time. Counted: the flood's refused share, when its
   block began, and any 429 the well-behaved principal got.

Figures, ratios and the targets of issue 7 are printed and written to the
section "## Rate limits (issue 7)" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Final

from redis.asyncio import Redis

from bench.commands import (
    Servers,
    api_log_lines,
    bench_servers,
    ensure_jetstream,
    environment_lines,
    mint_token,
    service_environment,
    write_docs,
)
from bench.http_load import read_response
from bench.logins import postgres_version_of, say
from bench.projections import ratio, verdict
from bench.queries import (
    Load,
    Run,
    Server,
    Target,
    delete_accounts,
    delete_keys,
    insert_accounts,
    measure,
    one_pass,
    query_api,
    server_us,
    uvloop_run,
)
from devstack.ports import LOOPBACK
from devstack.stack import StackUrls
from shared.auth.principal import Principal
from shared.db.migrate import upgrade
from shared.http.client_address import ClientAddresses
from shared.infrastructure.redis import create_redis
from shared.observability.logging import configure_logging
from shared.ratelimit.buckets import RedisBuckets
from shared.ratelimit.setup import abuse_of, open_rate_limiter, route_limits
from shared.settings import HttpApiSettings, load_settings

SECTION: Final = "## Rate limits (issue 7)"
COST_TARGET: Final = 0.90  # "query throughput with the limiter < 10 % lower"
REFUSED_TARGET: Final = 0.99  # "a flood at 20x its quota: the share refused >= 99 %"
ORDER: Final = ("off", "leased", "per-request", "per-request", "leased", "off")

# A quota no principal of the cost runs reaches: every request counted, none refused.
UNREACHED: Final = json.dumps({"tiers": {"free": {"quota": 10_000_000, "window_seconds": 60}}})
FLOOD_QUOTA: Final = 10  # per second
FLOOD_POLICY: Final = json.dumps({"tiers": {"free": {"quota": FLOOD_QUOTA, "window_seconds": 1}}})
FLOOD_FACTOR: Final = 20
FLOOD_CONNECTIONS: Final = 8
CALM_SHARE: Final = 0.5  # the well-behaved principal sends half its quota
SERVERS: Final = {
    "off": {"CQRS_RATE_LIMITS_ENABLED": "false"},
    "leased": {"CQRS_RATE_LIMITS_ENABLED": "true", "CQRS_RATE_LIMIT_QUERIES": UNREACHED},
    "per-request": {
        "CQRS_RATE_LIMITS_ENABLED": "true",
        "CQRS_RATE_LIMIT_QUERIES": UNREACHED,
        "CQRS_RATE_LIMIT_LEASE_MAX": "1",
    },
    "flood": {
        "CQRS_RATE_LIMITS_ENABLED": "true",
        "CQRS_RATE_LIMIT_QUERIES": FLOOD_POLICY,
        "CQRS_RATE_LIMIT_ABUSE_FACTOR": "4",
        "CQRS_RATE_LIMIT_ABUSE_BLOCK_SECONDS": "300",
    },
}


@dataclass(frozen=True, slots=True)
class Options:
    seconds: float
    warmup: float
    flood_seconds: float
    connections: int
    accounts: int
    principals: int
    quick: bool
    workers: int = 2
    write_docs: bool = True


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.ratelimits", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=None, help="measured seconds per target (10; 3 quick)"
    )
    parser.add_argument("--flood-seconds", type=float, default=None, help="length of the flood (10; 3 quick)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections C (32)")
    parser.add_argument("--accounts", type=int, default=None, help="accounts K (1,000; 256 quick)")
    parser.add_argument("--principals", type=int, default=32, help="principals P owning them (32)")
    parser.add_argument("--workers", type=int, default=2, help="granian workers of each server (2)")
    parser.add_argument("--quick", action="store_true", help="short runs, for smoke use")
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    quick: bool = args.quick
    return Options(
        seconds=args.seconds or (3.0 if quick else 10.0),
        warmup=0.5 if quick else 1.0,
        flood_seconds=args.flood_seconds or (3.0 if quick else 10.0),
        connections=args.connections,
        accounts=args.accounts or (256 if quick else 1_000),
        principals=args.principals,
        quick=quick,
        workers=args.workers,
        write_docs=not args.no_docs,
    )


# --------------------------------------------------------------------------- Redis's count of script calls


async def script_calls(redis_url: str) -> int:
    """EVALSHA and EVAL calls Redis answered so far: one per rate-limit round trip."""
    redis = Redis.from_url(redis_url)
    try:
        commands = await redis.info("commandstats")
    finally:
        await redis.aclose()
    return sum(int(commands.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


# --------------------------------------------------------------------------- the flood


@dataclass
class Sender:
    """One principal's paced requests and what came back."""

    name: str
    rate: float
    statuses: dict[int, int] = field(default_factory=dict)
    blocked_at: float | None = None  # seconds into the flood of the first 429 that said "blocked"
    retry_afters: list[int] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def refused(self) -> int:
        return self.statuses.get(429, 0)

    @property
    def allowed(self) -> int:
        return self.sent - self.refused


def _head(port: int, token: str, account: uuid.UUID) -> bytes:
    return (
        f"GET /v1/accounts/{account} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode("ascii")


async def paced(
    sender: Sender, port: int, head: bytes, *, connections: int, started: float, seconds: float
) -> None:
    """`sender.rate` requests a second over `connections`, each sent on schedule (or at once when late)."""
    interval = connections / sender.rate

    async def connection(index: int) -> None:
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        due = started + index * interval / connections
        try:
            while due < started + seconds:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))  # pacing the load
                writer.write(head)
                status, body, _ = await read_response(reader)
                sender.statuses[status] = sender.statuses.get(status, 0) + 1
                if status == 429 and b"blocked" in body and sender.blocked_at is None:
                    sender.blocked_at = time.perf_counter() - started
                due += interval
        finally:
            writer.close()

    await asyncio.gather(*(connection(i) for i in range(connections)))


async def flood(
    port: int, flooder: tuple[str, uuid.UUID], calm: tuple[str, uuid.UUID], seconds: float
) -> list[Sender]:
    senders = [
        Sender("flooding (20x quota)", FLOOD_QUOTA * FLOOD_FACTOR),
        Sender("well-behaved (half its quota)", FLOOD_QUOTA * CALM_SHARE),
    ]
    started = time.perf_counter() + 0.2
    await asyncio.gather(
        paced(
            senders[0],
            port,
            _head(port, *flooder),
            connections=FLOOD_CONNECTIONS,
            started=started,
            seconds=seconds,
        ),
        paced(senders[1], port, _head(port, *calm), connections=1, started=started, seconds=seconds),
    )
    return senders


# --------------------------------------------------------------------------- the run


@dataclass
class Report:
    options: Options
    servers: Servers
    postgres_version: str
    nats_version: str
    runs: dict[str, Run]
    calls: dict[str, int]
    senders: list[Sender]
    logs: list[str]
    parts: Parts
    total_seconds: float = 0.0

    def rate(self, name: str) -> float:
        return self.runs[name].measured.rate

    def calls_per_request(self, name: str) -> float:
        return ratio(self.calls[name], self.runs[name].measured.count)


@dataclass(frozen=True, slots=True)
class Parts:
    """The limiter's own costs, timed in this process (CPU µs): what the HTTP figures are made of."""

    leased_us: float  # one request decided from a leased token, headers included
    call_us: float  # one Redis round trip of the script


async def time_limiter_parts(redis_url: str, key_prefix: str, calls: int = 20_000) -> Parts:
    """The limiter as the API builds it: a request of a busy principal (its leases at their largest,
    the Redis calls they need included), and one Redis call alone."""
    environment = {
        **service_environment(StackUrls("postgresql://unused", "nats://unused", redis_url), None),
        **SERVERS["leased"],
        "CQRS_REDIS_KEY_PREFIX": key_prefix,
    }
    settings = load_settings(HttpApiSettings, environment)
    principal = Principal(user_id=uuid.uuid4(), roles=frozenset({"user"}))
    request: Any = SimpleNamespace(scope={"state": {}})
    policy = settings.rate_limit_queries.tiers["free"]
    async with open_rate_limiter(settings, name="bench") as limiter:
        limits = route_limits(settings, limiter, "queries", ClientAddresses())
        assert limits is not None
        for _ in range(1_000):  # the lease grows to its largest
            await limits.admit_principal(request, principal)
        started = time.process_time()
        for _ in range(calls):
            await limits.admit_principal(request, principal)
        leased = (time.process_time() - started) / calls * 1e6
    redis = create_redis(redis_url, timeout_seconds=1.0, retries=0)
    try:
        buckets = RedisBuckets(redis, key_prefix=key_prefix, abuse=abuse_of(settings))
        started = time.process_time()
        for _ in range(calls // 10):
            await buckets.take("user:bench-parts", "queries", policy, want=1)
        call = (time.process_time() - started) / (calls // 10) * 1e6
    finally:
        await redis.aclose()
    return Parts(leased, call)


def interleaved(ids_by_owner: list[list[uuid.UUID]]) -> list[uuid.UUID]:
    """Account j owned by owner j % P, as the load generator's `tokens` expect."""
    return [ids[k] for k in range(len(ids_by_owner[0])) for ids in ids_by_owner]


def run(options: Options) -> Report:
    started = time.perf_counter()
    configure_logging("warning", "console")
    key_prefix = f"cqrs-bench-limits-{uuid.uuid4().hex[:8]}:"
    order = ORDER[:3] if options.quick else ORDER
    load = Load(options.seconds * 2 / len(order), options.warmup, options.connections)
    runs = {name: Run(name) for name in SERVERS if name != "flood"}
    calls = dict.fromkeys(runs, 0)
    with bench_servers() as servers:
        say("migrating ...")
        upgrade(servers.urls.database_url)
        nats_version = asyncio.run(ensure_jetstream(servers))
        postgres_version = asyncio.run(postgres_version_of(servers.urls.database_url))
        owners = [uuid.uuid4() for _ in range(options.principals + 2)]
        per_owner = max(1, options.accounts // options.principals)
        say(f"{per_owner * len(owners):,} accounts of {len(owners)} owners into read.accounts ...")
        ids_by_owner = [
            asyncio.run(insert_accounts(servers, owner, per_owner, key_prefix)) for owner in owners
        ]
        tokens = [mint_token(owner) for owner in owners]
        cost_tokens, accounts = tokens[: options.principals], interleaved(ids_by_owner[: options.principals])
        with (
            query_api(servers, key_prefix, options.workers, SERVERS["off"], "api-off") as off,
            query_api(servers, key_prefix, options.workers, SERVERS["leased"], "api-leased") as leased,
            query_api(
                servers, key_prefix, options.workers, SERVERS["per-request"], "api-per-request"
            ) as each,
        ):
            apis: dict[str, Server] = {"off": off, "leased": leased, "per-request": each}
            say("warming the caches: one GET of every account on each server ...")
            for api in apis.values():
                for token, ids in zip(cost_tokens, ids_by_owner, strict=False):
                    asyncio.run(one_pass(api.port, token, ids))
            for name in order:
                say(f"  {name}, {load.seconds:g} s (+ {load.warmup:g} s warm-up) ...")
                before = asyncio.run(script_calls(servers.urls.redis_url))
                target = Target(
                    apis[name], cost_tokens[0], [str(a) for a in accounts], tokens=tuple(cost_tokens)
                )
                measure(servers, runs[name], target, load)
                calls[name] += asyncio.run(script_calls(servers.urls.redis_url)) - before
            logs = [line for api in apis.values() for line in api_log_lines(api.log)]
        say(f"flood, {options.flood_seconds:g} s ...")
        with query_api(servers, key_prefix, options.workers, SERVERS["flood"], "api-flood") as api:
            flooder = (tokens[-2], ids_by_owner[-2][0])
            calm = (tokens[-1], ids_by_owner[-1][0])
            senders = uvloop_run(flood(api.port, flooder, calm, options.flood_seconds))
            logs += api_log_lines(api.log)
        say("the limiter's parts, timed in this process ...")
        parts = uvloop_run(time_limiter_parts(servers.urls.redis_url, key_prefix))
        if servers.external:
            asyncio.run(delete_accounts(servers.urls.database_url, [i for ids in ids_by_owner for i in ids]))
            asyncio.run(delete_keys(servers.urls.redis_url, f"{key_prefix}*"))
        report = Report(options, servers, postgres_version, nats_version, runs, calls, senders, logs, parts)
    report.total_seconds = time.perf_counter() - started
    return report


# --------------------------------------------------------------------------- report


def cost_table(report: Report) -> list[str]:
    base = report.rate("off")
    lines = [
        "| limits | req/s | ratio to off | p50 ms | p99 ms | non-2xx | µs server CPU / request "
        "| rate-limit round trips / request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, run_ in report.runs.items():
        result = run_.measured
        lines.append(
            f"| {name} | {result.rate:,.0f} | {ratio(result.rate, base):.2f} | {result.p50_ms:.2f} "
            f"| {result.p99_ms:.2f} | {result.non_2xx} | {server_us(run_):.0f} "
            f"| {report.calls_per_request(name):.3f} |"
        )
    return lines


def flood_table(report: Report) -> list[str]:
    lines = [
        "| principal | req/s sent | sent | allowed | refused (429) | refused share | blocked after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for sender in report.senders:
        blocked = f"{sender.blocked_at:.2f} s" if sender.blocked_at is not None else "-"
        lines.append(
            f"| {sender.name} | {sender.rate:g} | {sender.sent} | {sender.allowed} | {sender.refused} "
            f"| {ratio(sender.refused, sender.sent):.2%} | {blocked} |"
        )
    return lines


def targets_table(report: Report) -> list[str]:
    cost = ratio(report.rate("leased"), report.rate("off"))
    flooder, calm = report.senders
    share = ratio(flooder.refused, flooder.sent)
    return [
        "| target (issue 7) | measured | verdict |",
        "| --- | --- | --- |",
        f"| query throughput with the limits < 10 % lower | {1 - cost:.1%} lower "
        f"| {verdict(cost >= COST_TARGET)} |",
        f"| a flood at 20x its quota refused ≥ 99 % | {share:.2%} | {verdict(share >= REFUSED_TARGET)} |",
        f"| the well-behaved principal sees no 429 | {calm.refused} | {verdict(calm.refused == 0)} |",
    ]


def explanation(report: Report) -> list[str]:
    flooder = report.senders[0]
    per_request = ratio(report.rate("per-request"), report.rate("off"))
    parts = report.parts
    extra_us = server_us(report.runs["leased"]) - server_us(report.runs["off"])
    return [
        f"- One Redis round trip per request (per-request) keeps {per_request:.0%} of the baseline's "
        f"throughput: a call of the script costs the API {parts.call_us:.0f} µs of CPU (redis-py), "
        "more than the rest of a cached GET. Leases bring the round trips down to the last column. "
        f"A request decided from a lease costs {parts.leased_us:.1f} µs of CPU in process (the "
        "lookup, the count, the two header values, the Redis calls of the leases shared out), "
        f"against the {extra_us:.0f} µs more server CPU per request measured over HTTP; the rest is "
        "mostly the two headers going out through granian (measured once by hand on 2026-11-24: "
        "without them the leased run was 8 % below the baseline). The ratio moves by several per "
        "cent from run to run: full runs on 2026-11-24 gave 7 % to 12 % lower.",
        "- Exactness: every token is taken from the bucket in Redis before it is spent and spent at "
        "most `CQRS_RATE_LIMIT_LEASE_SECONDS` (1 s) later, so within any interval a principal gets at most "
        "one second of its refill rate more than its policy, however many processes serve it; and a "
        "process may refuse while another holds spare tokens of the same principal. Leases shrink as "
        "the bucket runs low (a quarter of what is left, at least one), so at the limit the count is "
        "exact (the two-process test: the capacity ±1).",
        f"- The flood's refused share is 1 - (bucket + refill until the block) / sent: the bucket of "
        f"{FLOOD_QUOTA} lets a burst through, the refill lets {FLOOD_QUOTA}/s through until the refusals "
        "reach "
        f"4 times the quota ({flooder.blocked_at or 0:.2f} s here), then the block refuses everything. "
        "With a policy window of a minute the same rule takes a minute's fraction to block and the "
        "bucket is a minute's quota, so the share over a short flood is lower; over a long one it "
        "approaches the same figure.",
    ]


def section(report: Report) -> str:
    options = report.options
    lines = [
        SECTION,
        "",
        "Command: `uv run python -m bench.ratelimits"
        + (" --quick" if options.quick else "")
        + "` (bench/ratelimits.py; its docstring describes the method).",
        "",
        *environment_lines(report.servers, report.postgres_version, report.nats_version),
        f"- Load: {options.connections} connections, {options.principals} principals, "
        f"{options.accounts:,} accounts, {options.workers} granian workers per server, "
        f"{options.seconds:g} s per target in segments {' / '.join(ORDER[:3] if options.quick else ORDER)}; "
        f"flood {options.flood_seconds:g} s. Total {report.total_seconds:.0f} s.",
        "",
        "What the limits cost a cached GET (the same requests, caches warm, side by side):",
        "",
        *cost_table(report),
        "",
        "A flood from one principal while another behaves:",
        "",
        *flood_table(report),
        "",
        *targets_table(report),
        "",
        *explanation(report),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    report = run(options)
    text = section(report)
    if options.write_docs:
        write_docs(text, SECTION)
    print()
    print(text)
    for line in report.logs[:5]:
        print(f"  server log: {line}")
    print("written to docs/benchmarks.md" if options.write_docs else "docs left alone (--no-docs)")


if __name__ == "__main__":
    main()
