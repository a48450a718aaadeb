"""Benchmark of login work: HTTP logins against raw argon2id, and deposits during a login flood.

    uv run python -m bench.logins [--seconds 10] [--login-clients 4] [--connections 8] [--flood 64]
                                  [--workers 2] [--accounts 32] [--quick] [--no-docs]

Everything runs on 127.0.0.1, on the servers of bench/commands.py (an embedded
PostgreSQL, NATS and Redis in a temporary folder, or CQRS_BENCH_*), with
`cqrs command-api --workers W` as a subprocess. Each figure has its baseline
measured in the same run:

1. raw argon2id: `PasswordHasher.verify` with the command API's default
   parameters (t=3, 64 MiB, p=4), in 2 threads (the API's default
   CQRS_PASSWORD_MAX_CONCURRENT_HASHES), no HTTP, no database.
2. HTTP logins: `POST /v1/auth/login` with the right password, from L
   concurrent clients (httpx), each logging in as its own registered user,
   against the API with its default settings. A correct login leaves no
   failure counted by the login throttle, so its limits play no part here.
3. deposits alone: `POST /v1/accounts/{id}/deposits` by bench.http_load over C
   keep-alive connections, with a bearer token from a real login, on accounts
   opened through the API; run in two halves, before and after 4.
4. deposits under a login flood: the same while F clients send wrong-password
   logins for the registered users as fast as they are answered, starting
   2.5 s before the deposits (the API's hash queue is full by then). For 3 and 4
   the API runs with CQRS_LOGIN_MAX_FAILURES_PER_ACCOUNT=1000 and
   CQRS_LOGIN_MAX_FAILURES_PER_IP=100000 (the maxima), so the flood is not
   stopped by the throttle (429) but reaches argon2id. Every other setting is
   the default.

Figures, ratios and what limits them are printed and written to the section
"## Logins (issue 4)" of docs/benchmarks.md (only that section is replaced).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import asyncpg
import httpx
import msgspec
import psutil
from argon2 import PasswordHasher

from bench.commands import (
    BUSY_MACHINE,
    Api,
    CpuSnapshot,
    CpuUse,
    Result,
    Segment,
    Servers,
    api_log_lines,
    bench_servers,
    check_state,
    combine,
    command_api,
    cpu_use,
    delete_stream,
    ensure_jetstream,
    environment_lines,
    load_segment,
    percentiles,
    write_docs,
)
from command_api.settings import CommandApiSettings
from devstack.ports import LOOPBACK
from shared.db.migrate import upgrade
from shared.observability.logging import configure_logging

SECTION: Final = "## Logins (issue 4)"
RAW_THREADS: Final = 2
REQUEST_TIMEOUT: Final = 10.0  # seconds, httpx's connect, read, write and pool timeouts
FLOOD_LEAD: Final = 2.5  # the flood runs this long before the deposits start: the API's queue is full
FLOOD_GRACE: Final = 6.0  # after the end, the flood's answers in flight are awaited this long
# The throttle's maxima, so that a flood from one IP over a few accounts reaches argon2id.
FLOOD_ENV: Final = {
    "CQRS_LOGIN_MAX_FAILURES_PER_ACCOUNT": "1000",
    "CQRS_LOGIN_MAX_FAILURES_PER_IP": "100000",
}
DEPOSITS_KEPT_CLAIM: Final = 0.50  # "deposits keep most of their throughput"


_STARTED = time.perf_counter()


def say(message: str) -> None:
    """A progress line, with the seconds since the bench started."""
    print(f"[{time.perf_counter() - _STARTED:5.1f} s] {message}", flush=True)


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class Options:
    seconds: float
    warmup: float
    login_clients: int
    connections: int
    flood: int
    workers: int
    accounts: int
    quick: bool
    write_docs: bool = True
    pool_size: int | None = None
    server: str = "granian"


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.logins",
        description="Login benchmark: HTTP logins vs raw argon2id, deposits alone vs under a login flood.",
    )
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per run (10; 3 quick)")
    parser.add_argument("--login-clients", type=int, default=4, help="concurrent correct logins L (4)")
    parser.add_argument("--connections", type=int, default=8, help="deposit connections C (8)")
    parser.add_argument("--flood", type=int, default=64, help="concurrent wrong-password logins F (64)")
    parser.add_argument("--workers", type=int, default=2, help="command API worker processes (2)")
    parser.add_argument("--accounts", type=int, default=32, help="accounts the deposits go to (32)")
    parser.add_argument("--quick", action="store_true", help="short runs, for smoke use")
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    quick: bool = args.quick
    return Options(
        seconds=args.seconds or (3.0 if quick else 10.0),
        warmup=0.5 if quick else 1.0,
        login_clients=args.login_clients,
        connections=args.connections,
        flood=args.flood,
        workers=args.workers,
        accounts=args.accounts,
        quick=quick,
        write_docs=not args.no_docs,
    )


def setting_defaults() -> dict[str, object]:
    return {f.name: f.default for f in msgspec.structs.fields(CommandApiSettings)}


def default_hasher() -> PasswordHasher:
    """The hasher of the command API with its default settings (command_api.app.password_service)."""
    defaults = setting_defaults()
    return PasswordHasher(
        time_cost=int(str(defaults["password_hash_time_cost"])),
        memory_cost=int(str(defaults["password_hash_memory_kib"])),
        parallelism=int(str(defaults["password_hash_parallelism"])),
    )


# --------------------------------------------------------------------------- raw argon2id


def raw_verify_run(servers: Servers, options: Options) -> Result:
    """RAW_THREADS threads verifying a correct password back to back; answers finished in the window count."""
    hasher = default_hasher()
    password = "raw argon2id baseline " + uuid.uuid4().hex
    stored = hasher.hash(password)
    start = time.perf_counter()
    warm_until = start + options.warmup
    stop_at = warm_until + options.seconds
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            try:
                hasher.verify(stored, password)
            except Exception as error:  # noqa: BLE001 - reported, not raised, from a thread
                failures.append(repr(error))
                return
            ended = time.perf_counter()
            if warm_until <= ended <= stop_at:
                with lock:
                    latencies.append(ended - began)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(RAW_THREADS)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, warm_until - time.perf_counter()))
    before = CpuSnapshot.take(servers)
    time.sleep(max(0.0, stop_at - time.perf_counter()))
    after = CpuSnapshot.take(servers)
    for thread in threads:
        thread.join(30)
    p50, p95, p99 = percentiles(latencies)
    result = Result(
        f"raw argon2id verify, {RAW_THREADS} threads, no HTTP",
        count=len(latencies),
        seconds=options.seconds,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        cpu=cpu_use(before, after, label="bench (hashing)"),
    )
    if failures:
        result.notes.append(f"verify failed: {failures[0]}")
    return result


# --------------------------------------------------------------------------- HTTP clients


@dataclass
class Answers:
    """Answers of a group of HTTP clients: (finished at, seconds taken, status; 0 = client error)."""

    records: list[tuple[float, float, int]] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    samples: dict[int, str] = field(default_factory=dict)

    def add(self, started: float, finished: float, status: int, body: str) -> None:
        self.records.append((finished, finished - started, status))
        if status >= 300 and status not in self.samples:
            self.samples[status] = body[:200]

    def error(self, started: float, finished: float, error: Exception) -> None:
        name = type(error).__name__
        self.errors[name] = self.errors.get(name, 0) + 1
        self.records.append((finished, finished - started, 0))

    def within(self, start: float, end: float) -> list[tuple[float, float, int]]:
        return [record for record in self.records if start <= record[0] <= end]


def statuses_of(records: list[tuple[float, float, int]]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for _, _, status in records:
        counts[status] = counts.get(status, 0) + 1
    return dict(sorted(counts.items()))


def http_client(concurrency: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(REQUEST_TIMEOUT),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )


async def login_loop(
    client: httpx.AsyncClient, url: str, login: tuple[str, str], *, stop: asyncio.Event, answers: Answers
) -> None:
    """Log in as `email` with `password` again and again until `stop`: each answer is recorded."""
    body = {"email": login[0], "password": login[1]}
    while not stop.is_set():
        started = time.perf_counter()
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as error:
            answers.error(started, time.perf_counter(), error)
            await asyncio.sleep(0.05)
            continue
        answers.add(started, time.perf_counter(), response.status_code, response.text)


@contextlib.asynccontextmanager
async def login_clients(
    port: int, logins: Sequence[tuple[str, str]], answers: Answers
) -> AsyncIterator[None]:
    """One task per (email, password), logging in until the block ends; then their last answers."""
    url = f"http://{LOOPBACK}:{port}/v1/auth/login"
    stop = asyncio.Event()
    async with http_client(len(logins)) as client:
        tasks = [
            asyncio.create_task(login_loop(client, url, login, stop=stop, answers=answers))
            for login in logins
        ]
        try:
            yield
        finally:
            stop.set()
            _, pending = await asyncio.wait(tasks, timeout=FLOOD_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


# --------------------------------------------------------------------------- users and accounts


@dataclass(frozen=True, slots=True)
class Users:
    password: str
    logins: list[str]  # one per login client
    depositor: str


async def register_users(port: int, options: Options) -> Users:
    """Register L + 1 users through POST /v1/auth/register, two at a time (each hashes a password)."""
    run_id = uuid.uuid4().hex[:10]
    password = f"bench {run_id} staple horse"
    emails = [f"bench-{run_id}-{i}@example.com" for i in range(options.login_clients + 1)]
    slots = asyncio.Semaphore(2)
    base = f"http://{LOOPBACK}:{port}"

    async def register(client: httpx.AsyncClient, email: str) -> None:
        body = {"email": email, "password": password, "display_name": "Bench"}
        async with slots:
            for _ in range(10):
                response = await client.post(f"{base}/v1/auth/register", json=body)
                if response.status_code != 503:
                    break
                await asyncio.sleep(1)
        if response.status_code != 201:
            raise RuntimeError(f"register {email}: {response.status_code} {response.text[:300]}")

    async with http_client(4) as client:
        await asyncio.gather(*(register(client, email) for email in emails))
    return Users(password, emails[:-1], emails[-1])


async def log_in(client: httpx.AsyncClient, port: int, email: str, password: str) -> str:
    response = await client.post(
        f"http://{LOOPBACK}:{port}/v1/auth/login", json={"email": email, "password": password}
    )
    if response.status_code != 200:
        raise RuntimeError(f"login {email}: {response.status_code} {response.text[:300]}")
    return str(response.json()["access_token"])


async def depositor_accounts(port: int, users: Users, count: int) -> tuple[str, list[uuid.UUID]]:
    """A real login's access token, and `count` accounts opened with it through POST /v1/accounts."""
    async with http_client(4) as client:
        token = await log_in(client, port, users.depositor, users.password)
        headers = {"Authorization": f"Bearer {token}"}
        accounts: list[uuid.UUID] = []
        for _ in range(count):
            response = await client.post(
                f"http://{LOOPBACK}:{port}/v1/accounts",
                json={"currency": "EUR", "name": "bench logins"},
                headers=headers,
            )
            if response.status_code != 201:
                raise RuntimeError(f"open account: {response.status_code} {response.text[:300]}")
            accounts.append(uuid.UUID(response.json()["account_id"]))
    return token, accounts


# --------------------------------------------------------------------------- HTTP runs


def answers_result(
    name: str, answers: Answers, window: tuple[float, float], *, ok: int, cpu: CpuUse
) -> Result:
    """Rate and latencies of the answers with status `ok` that finished within [start, end]."""
    start, end = window
    answered = answers.within(start, end)
    latencies = [seconds for _, seconds, status in answered if status == ok]
    p50, p95, p99 = percentiles(latencies)
    return Result(
        name,
        count=len(latencies),
        seconds=end - start,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        non_2xx=len(answered) - len(latencies),
        cpu=cpu,
    )


async def http_logins_run(
    api: Api, servers: Servers, users: Users, options: Options
) -> tuple[Result, Answers]:
    answers = Answers()
    logins = [(email, users.password) for email in users.logins]
    async with login_clients(api.port, logins, answers):
        await asyncio.sleep(options.warmup)
        before = CpuSnapshot.take(servers, api.pid)
        await asyncio.sleep(options.seconds)
        after = CpuSnapshot.take(servers, api.pid)
    result = answers_result(
        f"HTTP login, right password, {options.login_clients} clients",
        answers,
        (before.at, after.at),
        ok=200,
        cpu=cpu_use(before, after, label="bench (httpx)"),
    )
    window = answers.within(before.at, after.at)
    if result.non_2xx or answers.errors:
        result.notes.append(
            f"statuses {statuses_of(window)}, client errors {answers.errors}, first bodies {answers.samples}"
        )
    return result, answers


def api_threads(pid: int) -> int:
    """Threads of the API's processes (granian's main process and its workers)."""
    try:
        root = psutil.Process(pid)
        return sum(p.num_threads() for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


async def sample_threads(pid: int, into: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        into.append(await asyncio.to_thread(api_threads, pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


@dataclass
class FloodOutcome:
    deposits: Segment
    cpu: CpuUse
    flood: Result
    statuses: dict[int, int]  # every answer of the flood, from its start to its end
    window_statuses: dict[int, int]  # the answers finished while the deposits were measured
    errors: dict[str, int]
    samples: dict[int, str]
    flood_seconds: float
    threads_alone: int
    threads_flood: int  # the most seen while the deposits were measured


async def flood_run(
    api: Api, servers: Servers, users: Users, accounts: list[uuid.UUID], options: Options
) -> FloodOutcome:
    """F wrong-password logins, as fast as answered, spread over the login users; deposits meanwhile."""
    answers = Answers()
    wrong = "wrong " + users.password
    logins = [(users.logins[i % len(users.logins)], wrong) for i in range(options.flood)]
    threads_alone = api_threads(api.pid)
    threads: list[int] = []
    flood_started = time.perf_counter()
    async with login_clients(api.port, logins, answers):
        await asyncio.sleep(FLOOD_LEAD)
        before = CpuSnapshot.take(servers, api.pid)
        stop_sampling = asyncio.Event()
        sampler = asyncio.create_task(sample_threads(api.pid, threads, stop_sampling))
        segment = await asyncio.to_thread(load_segment, api, accounts, options.seconds, options, servers)
        after = CpuSnapshot.take(servers, api.pid)
        stop_sampling.set()
        await sampler
        flood_stopped = time.perf_counter()
    # The load generator measures after its warm-up, up to its end; its process starts in ~0.3 s.
    measured_end = after.at
    measured_start = measured_end - float(segment.summary["seconds"])
    clients = float(segment.summary["cpu_seconds"]) + (after.bench - before.bench)
    cpu = cpu_use(before, after, client_seconds=clients, label="clients (deposits + flood)")
    flood = answers_result(
        f"login flood, wrong password, {options.flood} clients",
        answers,
        (measured_start, measured_end),
        ok=401,
        cpu=cpu,
    )
    return FloodOutcome(
        segment,
        cpu,
        flood,
        statuses_of(answers.records),
        statuses_of(answers.within(measured_start, measured_end)),
        answers.errors,
        answers.samples,
        flood_stopped - flood_started,
        threads_alone,
        max(threads, default=0),
    )


@dataclass
class IsolationOutcome:
    alone: Result
    flooded: Result
    flood: FloodOutcome
    findings: list[str]


def isolation_runs(
    api: Api, servers: Servers, users: Users, accounts: list[uuid.UUID], options: Options
) -> IsolationOutcome:
    """Deposits alone (half), under the flood (whole), alone (half): a drift weighs on both alike."""
    half = options.seconds / 2
    alone: list[Segment] = []
    say(f"  deposits alone, {half:g} s ...")
    alone.append(load_segment(api, accounts, half, options, servers))
    say(
        f"  deposits under a flood of {options.flood} wrong-password logins, {options.seconds:g} s "
        f"(+ {FLOOD_LEAD:g} s lead) ..."
    )
    flood = asyncio.run(flood_run(api, servers, users, accounts, options))
    time.sleep(0.5)
    say(f"  deposits alone, {half:g} s ...")
    alone.append(load_segment(api, accounts, half, options, servers))
    alone_result, alone_answered = combine(f"HTTP deposits alone, {options.connections} connections", alone)
    flooded, flooded_answered = combine(
        f"HTTP deposits under the login flood, {options.connections} connections", [flood.deposits]
    )
    flooded.cpu = flood.cpu
    stored = sum(
        n for answered in (alone_answered, flooded_answered) for s, n in answered.items() if s.startswith("2")
    )
    problems = asyncio.run(check_state(servers.urls.database_url, accounts, 1, stored))
    return IsolationOutcome(alone_result, flooded, flood, [f"deposits: {p}" for p in problems])


# --------------------------------------------------------------------------- report


@dataclass
class Report:
    options: Options
    servers: Servers
    postgres_version: str
    nats_version: str
    raw: Result
    logins: Result
    isolation: IsolationOutcome
    api_log: list[str]
    registration_seconds: float
    total_seconds: float = 0.0

    @property
    def results(self) -> tuple[Result, ...]:
        return (
            self.raw,
            self.logins,
            self.isolation.alone,
            self.isolation.flooded,
            self.isolation.flood.flood,
        )

    def caveats(self) -> list[str]:
        if self.servers.postgres_pid is None:
            return ["PostgreSQL's process was not found, so its CPU counts as other."]
        busy = [(r.cpu.other, r.name) for r in self.results if r.cpu is not None]
        other, name = max(busy)
        if other < BUSY_MACHINE:
            return []
        return [
            f"Processes outside the benchmark used up to {other:.2f} cores (during {name}): "
            "the machine was not quiet, so these figures understate it."
        ]


def describe_statuses(statuses: dict[int, int]) -> str:
    names = {0: "client error", 200: "200", 401: "401", 429: "429 throttled", 503: "503 busy"}
    return ", ".join(f"{names.get(s, str(s))}: {n:,}" for s, n in statuses.items()) or "0"


def without(statuses: dict[int, int], status: int) -> dict[int, int]:
    return {s: n for s, n in statuses.items() if s != status}


def figures_table(report: Report) -> list[str]:
    lines = [
        "| run | rate | p50 ms | p95 ms | p99 ms | other answers | cores used |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    iso = report.isolation
    rows = (
        (report.raw, "verifies/s", "-"),
        (report.logins, "logins/s", f"{report.logins.non_2xx:,}"),
        (iso.alone, "req/s", f"{iso.alone.non_2xx:,}"),
        (iso.flooded, "req/s", f"{iso.flooded.non_2xx:,}"),
        (iso.flood.flood, "401/s", describe_statuses(without(iso.flood.window_statuses, 401))),
    )
    for result, unit, others in rows:
        latency = f"{result.p50_ms:,.1f} | {result.p95_ms:,.1f} | {result.p99_ms:,.1f}"
        cpu = result.cpu.describe() if result.cpu and result is not iso.flood.flood else "as above"
        lines.append(f"| {result.name} | {result.rate:,.1f} {unit} | {latency} | {others} | {cpu} |")
    return lines


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else 0.0


def cpu_per_login(report: Report) -> tuple[float, float]:
    """CPU seconds per raw verify (the bench's threads) and per HTTP login (the API's processes)."""
    raw = ratio(report.raw.cpu.client, report.raw.rate) if report.raw.cpu else 0.0
    http = ratio(report.logins.cpu.api, report.logins.rate) if report.logins.cpu else 0.0
    return raw, http


def ratios_table(report: Report) -> list[str]:
    iso = report.isolation
    raw_cpu, http_cpu = cpu_per_login(report)
    kept = ratio(iso.flooded.rate, iso.alone.rate)
    checks = ratio(iso.flood.flood.rate, report.raw.rate)
    p99 = ratio(iso.flooded.p99_ms, iso.alone.p99_ms)
    verdict = "held" if kept >= DEPOSITS_KEPT_CLAIM else "**not held**"
    return [
        "| ratio | measured | claim | |",
        "| --- | ---: | ---: | --- |",
        f"| HTTP logins / raw argon2id verifies | {ratio(report.logins.rate, report.raw.rate):.0%} | - | - |",
        f"| deposits under the flood / alone | {kept:.0%} | most (≥ {DEPOSITS_KEPT_CLAIM:.0%}) | {verdict} |",
        f"| CPU per HTTP login ({http_cpu * 1000:,.0f} ms, API) / per raw verify ({raw_cpu * 1000:,.0f} ms) "
        f"| {ratio(http_cpu, raw_cpu):.0%} | - | - |",
        f"| deposit p99 under the flood / alone | {p99:.1f}x | - | - |",
        f"| flood's password checks (401/s) / raw verifies | {checks:.0%} | - | - |",
    ]


def settings_line(report: Report) -> str:
    options = report.options
    defaults = setting_defaults()
    text = (
        f"- Settings: {options.seconds:g} s measured per run ({options.warmup:g} s warm-up before each; the "
        f"deposits alone in two halves, before and after the flood), W = {options.workers} granian "
        f"workers, argon2id t={defaults['password_hash_time_cost']}, "
        f"{int(str(defaults['password_hash_memory_kib'])) // 1024} MiB, "
        f"p={defaults['password_hash_parallelism']} (the defaults), at most "
        f"{defaults['password_max_concurrent_hashes']} hashes at once per API process, so "
        f"{int(str(defaults['password_max_concurrent_hashes'])) * options.workers} on the machine; "
        f"L = {options.login_clients} login clients, each its own user ({report.registration_seconds:.1f} s "
        f"to register {options.login_clients + 1} users); C = {options.connections} deposit connections over "
        f"{options.accounts} accounts opened through the API, one token from a real login; "
        f"F = {options.flood} flood clients, wrong passwords for the L users, the flood running "
        f"{FLOOD_LEAD:g} s before the deposits start. Logins: every setting the default. Deposits and "
        "flood: login throttle raised to its maxima (1,000 failures per account, 100,000 per IP) so the "
        "flood reaches argon2id instead of 429; everything else the default. The logins (httpx) have "
        f"{REQUEST_TIMEOUT:g} s timeouts to connect, to write and for each read; the deposit load generator "
        "is bounded by its run's time limit"
    )
    return text + (", `--quick`" if options.quick else "")


def observations(report: Report) -> list[str]:
    iso = report.isolation
    flood = iso.flood
    notes = [f"{r.name}: {n}" for r in report.results for n in r.notes]
    notes.append(
        f"the flood answered, over its {flood.flood_seconds:.1f} s: {describe_statuses(flood.statuses)}"
        + (f"; client errors {flood.errors}" if flood.errors else "")
    )
    notes.append(
        f"threads of the API's processes: {flood.threads_alone} before the flood, up to "
        f"{flood.threads_flood} while the deposits were measured under it (sampled every 0.25 s)"
    )
    if 503 in flood.samples:
        notes.append(f"a 503 of the flood: `{flood.samples[503][:160]}`")
    if 429 in flood.samples:
        notes.append(f"a 429 of the flood: `{flood.samples[429][:160]}`")
    notes += [caveat for caveat in report.caveats()]
    return notes


def shared_machine_sentence(report: Report) -> str:
    if ratio(report.logins.rate, report.raw.rate) <= 1.0:
        return ""
    return (
        " On a shared machine more threads also win a larger share of the cores from other processes, "
        "which is how the API's rate can exceed the baseline's; the CPU per login is the steadier comparison."
    )


def limits_paragraph(report: Report) -> list[str]:
    iso = report.isolation
    options = report.options
    raw_cpu = report.raw.cpu.describe() if report.raw.cpu else ""
    alone_cpu = iso.alone.cpu.describe() if iso.alone.cpu else ""
    flooded_cpu = iso.flooded.cpu.describe() if iso.flooded.cpu else ""
    kept = ratio(iso.flooded.rate, iso.alone.rate)
    per_process = int(str(setting_defaults()["password_max_concurrent_hashes"]))
    lanes = int(str(setting_defaults()["password_hash_parallelism"]))
    hashes = per_process * options.workers
    raw_per_verify, http_per_login = cpu_per_login(report)
    busy_503 = iso.flood.window_statuses.get(503, 0)
    flood = iso.flood.flood
    return [
        "What limits each figure:",
        "",
        f"- **Raw argon2id** ({report.raw.rate:,.1f} verifies/s, p50 {report.raw.p50_ms:,.0f} ms, "
        f"{raw_per_verify * 1000:,.0f} ms of CPU per verify): each verify fills 64 MiB three times over in "
        f"{lanes} lanes, which argon2-cffi runs as {lanes} threads, so {RAW_THREADS} verifies at once keep "
        f"both cores busy ({raw_cpu}). The rate is the cores' work divided by that CPU per verify.",
        f"- **HTTP logins** ({report.logins.rate:,.1f} logins/s, "
        f"{ratio(report.logins.rate, report.raw.rate):.0%} of raw; {http_per_login * 1000:,.0f} ms of API "
        "CPU per login): the hash is almost all of a login's work; around it the API reads the credentials "
        "row, checks the throttle in Redis, starts a refresh-token family (a write) and signs an access "
        f"token. The API runs up to {hashes} hashes at once ({options.workers} workers, {per_process} per "
        f"process), against {RAW_THREADS} in the baseline: on the same 2 cores that adds latency, not rate, "
        "and more hashes at once share the caches and the memory bandwidth, which can raise the CPU per "
        "hash." + shared_machine_sentence(report),
        f"- **Deposits under the flood** ({kept:.0%} of their rate alone): the hashes run at the lowest "
        "CPU priority (nice 19, inherited by argon2's lane threads), so the scheduler gives the "
        f"{options.workers} event loops and PostgreSQL the cores first; {hashes} hashes of {lanes} threads "
        f"each still run beside them (the API's processes went from {iso.flood.threads_alone} threads to up "
        f"to {iso.flood.threads_flood}). What priority cannot share out is what argon2id is built to "
        "consume: memory bandwidth and the caches (each hash fills 64 MiB three times over), and on a "
        "virtual machine the hyperthread siblings of the cores; the flood's own requests (decoding, a "
        "Redis script, a credentials read, the answers) also cost event-loop time. Deposits get what is "
        f"left (under the flood: {flooded_cpu}; alone: {alone_cpu}). Before the hashing ran at nice 19, "
        "a run of this bench kept 14% of the deposits (on a busier machine). The bound holds the flood's "
        "own queue: a check that waits more than 2 s for a slot is answered 503 "
        f"({busy_503:,} while the deposits were measured) instead of queueing without end. Its 401s took "
        f"{flood.p50_ms:,.0f} ms at the median and {flood.p99_ms:,.0f} ms at p99: the hashing now waits "
        "behind every other request. Levers not measured here: `CQRS_PASSWORD_MAX_CONCURRENT_HASHES=1`, "
        "or fewer argon2 lanes (`CQRS_PASSWORD_HASH_PARALLELISM`), both at the cost of login capacity.",
        "- **Throttle**: with its default limits (5 failures per account, 50 per IP, in 15 minutes) a "
        "flood from one IP is answered 429 from its 51st failure on, before any hashing; this run raised "
        "them to measure the worse case, a flood that the throttle does not stop (many IPs, many "
        "accounts).",
        "- **Other** in the cores column is CPU used outside the benchmark (Redis counts there too); when "
        "it is well above 0 the figures of that run are low.",
    ]


def section(report: Report) -> str:
    lines = [
        SECTION,
        "",
        "`uv run python -m bench.logins` (bench/logins.py): HTTP logins against argon2id verification "
        "alone, and deposits alone against deposits during a flood of wrong-password logins, all measured "
        "in one run.",
        "",
        *environment_lines(report.servers, report.postgres_version, report.nats_version),
        settings_line(report),
        f"- Run time: {report.total_seconds:.0f} s in all, the servers' start-up included",
        "",
        *figures_table(report),
        "",
        *ratios_table(report),
        "",
    ]
    notes = observations(report)
    if notes:
        lines += ["Observations of this run:", "", *(f"- {n}" for n in notes), ""]
    if report.isolation.findings:
        lines += ["Checks that failed:", "", *(f"- {f}" for f in report.isolation.findings), ""]
    if report.api_log:
        lines += [f"The API logged {len(report.api_log)} lines at warning or above; the first:", "", "```"]
        lines += [*report.api_log[:3], "```", ""]
    lines += [*limits_paragraph(report), ""]
    return "\n".join(lines)


def print_report(report: Report, *, docs_written: bool) -> None:
    print()
    print("\n".join(figures_table(report)))
    print()
    print("\n".join(ratios_table(report)))
    for note in observations(report):
        print(f"  {note}")
    for finding in report.isolation.findings:
        print(f"  CHECK FAILED: {finding}")
    for line in report.api_log[:5]:
        print(f"  API log: {line}")
    where = "written to docs/benchmarks.md" if docs_written else "docs left alone (--no-docs)"
    print(f"\ntotal {report.total_seconds:.0f} s; {where}")


# --------------------------------------------------------------------------- main


async def postgres_version_of(database_url: str) -> str:
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


def run(options: Options) -> Report:
    started = time.perf_counter()
    configure_logging("warning", "console")
    with bench_servers() as servers:
        say("migrating ...")
        upgrade(servers.urls.database_url)
        nats_version = asyncio.run(ensure_jetstream(servers))
        postgres_version = asyncio.run(postgres_version_of(servers.urls.database_url))
        say(f"raw argon2id verify, {RAW_THREADS} threads, {options.seconds:g} s ...")
        raw = raw_verify_run(servers, options)
        log_defaults = servers.data_dir / "command-api-defaults.log"
        say(f"starting the command API ({options.workers} workers, default settings) ...")
        with command_api(servers.urls, options, "", log_defaults) as api:
            say(f"registering {options.login_clients + 1} users ...")
            registering = time.perf_counter()
            users = asyncio.run(register_users(api.port, options))
            registration_seconds = time.perf_counter() - registering
            say(f"HTTP logins, {options.login_clients} clients, {options.seconds:g} s ...")
            logins, _ = asyncio.run(http_logins_run(api, servers, users, options))
        log_flood = servers.data_dir / "command-api-flood.log"
        say("starting the command API (login throttle at its maxima) ...")
        with command_api(servers.urls, options, "", log_flood, FLOOD_ENV) as api:
            say(f"logging in, opening {options.accounts} accounts ...")
            token, accounts = asyncio.run(depositor_accounts(api.port, users, options.accounts))
            isolation = isolation_runs(
                dataclasses.replace(api, token=token), servers, users, accounts, options
            )
        if servers.external:
            asyncio.run(delete_stream(servers))
        report = Report(
            options,
            servers,
            postgres_version,
            nats_version,
            raw,
            logins,
            isolation,
            api_log_lines(log_defaults) + api_log_lines(log_flood),
            registration_seconds,
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
