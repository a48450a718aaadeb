"""A minimal HTTP/1.1 keep-alive load generator for the deposit command, run as its own process.

    python -m bench.http_load --port 8000 --spec spec.json --connections 32 --seconds 10

`spec.json` holds `{"token": "...", "accounts": ["<uuid>", ...]}`. Each of the
C connections sends `POST /v1/accounts/{id}/deposits` to a random account with
a fresh `Idempotency-Key`, waits for the answer, and sends the next one. The
client is plain asyncio streams: it writes the request bytes, reads the status
line and headers, then Content-Length bytes (or chunks). httpx would be the
bottleneck at these rates.

Only requests sent after the warm-up and answered before the end count toward
the rate and the percentiles; every answer counts toward `all_statuses`, so
the caller can check each 201 against the events stored. A JSON summary goes
to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BODY = b'{"amount":1,"reference":"bench"}'


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 as this client reads it."""


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    all_statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    samples: dict[int, str] = field(default_factory=dict)
    reconnects: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    host: str
    port: int
    token: str
    accounts: list[str]
    warm_until: float
    stop_at: float
    key_prefix: str


def request_heads(plan: Plan) -> list[bytes]:
    """The fixed part of each account's request, up to the Idempotency-Key value."""
    common = (
        f"Host: {plan.host}:{plan.port}\r\n"
        f"Authorization: Bearer {plan.token}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n"
        "Idempotency-Key: "
    )
    return [
        f"POST /v1/accounts/{account}/deposits HTTP/1.1\r\n{common}".encode("ascii")
        for account in plan.accounts
    ]


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body, and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise ProtocolError(head[:40].decode("latin-1"))
    status = int(head[9:12])
    length = -1
    chunked = False
    keep_alive = True
    for line in head.lower().split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif name == b"connection" and b"close" in value:
            keep_alive = False
    if chunked:
        return status, await _read_chunked(reader), keep_alive
    if length < 0:
        raise ProtocolError("no Content-Length and not chunked")
    return status, await reader.readexactly(length), keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def connect(plan: Plan, stats: Stats) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A connection, retried until the end of the run; None when the run ended first."""
    while time.perf_counter() < plan.stop_at:
        try:
            return await asyncio.open_connection(plan.host, plan.port)
        except OSError as error:
            name = f"connect: {type(error).__name__}"
            stats.errors[name] = stats.errors.get(name, 0) + 1
            await asyncio.sleep(0.05)
    return None


async def connection_loop(plan: Plan, heads: list[bytes], index: int, stats: Stats) -> None:
    rng = random.Random(index)
    connection = await connect(plan, stats)
    if connection is None:
        return
    reader, writer = connection
    sent = 0
    try:
        while time.perf_counter() < plan.stop_at:
            head = heads[rng.randrange(len(heads))]
            key = f"{plan.key_prefix}-{index}-{sent}".encode("ascii")
            sent += 1
            started = time.perf_counter()
            try:
                writer.write(b"%s%s\r\n\r\n%s" % (head, key, BODY))
                status, body, keep_alive = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ProtocolError) as error:
                name = type(error).__name__
                stats.errors[name] = stats.errors.get(name, 0) + 1
                keep_alive = False
                status = 0
                body = b""
            finished = time.perf_counter()
            if status:
                stats.all_statuses[status] = stats.all_statuses.get(status, 0) + 1
                if status >= 300 and status not in stats.samples:
                    stats.samples[status] = body[:300].decode("utf-8", "replace")
            if status and started >= plan.warm_until and finished <= plan.stop_at:
                stats.latencies.append(finished - started)
                stats.statuses[status] = stats.statuses.get(status, 0) + 1
            if not keep_alive:
                writer.close()
                stats.reconnects += 1
                connection = await connect(plan, stats)
                if connection is None:
                    return
                reader, writer = connection
    finally:
        writer.close()


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def summary(stats: Stats, window: float, cpu_seconds: float, connections: int) -> dict[str, Any]:
    latencies = sorted(stats.latencies)
    count = len(latencies)
    ok = sum(n for status, n in stats.statuses.items() if 200 <= status < 300)
    return {
        "count": count,
        "ok": ok,
        "non_2xx": count - ok,
        "seconds": round(window, 3),
        "rps": round(count / window, 1) if window > 0 else 0.0,
        "ok_rps": round(ok / window, 1) if window > 0 else 0.0,
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round((latencies[-1] if latencies else 0.0) * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
        "all_statuses": {str(k): v for k, v in sorted(stats.all_statuses.items())},
        "errors": stats.errors,
        "samples": {str(k): v for k, v in stats.samples.items()},
        "reconnects": stats.reconnects,
        "connections": connections,
        "cpu_seconds": round(cpu_seconds, 3),
    }


async def run(args: argparse.Namespace, spec: dict[str, Any]) -> tuple[dict[str, Any], list[float]]:
    now = time.perf_counter()
    plan = Plan(
        host=args.host,
        port=args.port,
        token=spec["token"],
        accounts=list(spec["accounts"]),
        warm_until=now + args.warmup,
        stop_at=now + args.warmup + args.seconds,
        key_prefix=args.key_prefix or uuid.uuid4().hex[:12],
    )
    heads = request_heads(plan)
    stats = Stats()
    cpu_before = time.process_time()
    await asyncio.gather(*(connection_loop(plan, heads, i, stats) for i in range(args.connections)))
    cpu = time.process_time() - cpu_before
    window = plan.stop_at - plan.warm_until
    return summary(stats, window, cpu, args.connections), stats.latencies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spec", required=True, help="JSON file with the token and the account ids")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--key-prefix", default="", help="Idempotency-Key prefix (default: random)")
    parser.add_argument("--latencies-out", default="", help="write the counted latencies (ms) here as JSON")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost"):
        parser.error("benchmarks run on 127.0.0.1 only")
    spec = json.loads(Path(args.spec).read_text())
    result, latencies = asyncio.run(run(args, spec))
    if args.latencies_out:
        Path(args.latencies_out).write_text(json.dumps([round(s * 1000, 3) for s in latencies]))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
