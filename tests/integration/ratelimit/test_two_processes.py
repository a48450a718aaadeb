"""Two query API processes share one limit: exact under concurrent load, with an accurate Retry-After."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from devstack.ports import free_port
from tests.support.tokens import bearer, mint

QUOTA = 20
WINDOW_SECONDS = 60.0  # a token every 3 s
SECONDS_PER_TOKEN = WINDOW_SECONDS / QUOTA


@contextlib.contextmanager
def query_api_processes(environment: Mapping[str, str], count: int, log_dir: Path) -> Iterator[list[str]]:
    """`cqrs query-api` in `count` processes of their own, each on its own port; their base URLs."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("CQRS_")}
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for n in range(count):
            port = free_port()
            with (log_dir / f"query-api-{n}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "operator_cli", "query-api", "--port", str(port)],
                        env={**inherited, **environment},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        for url, process in zip(urls, processes, strict=True):
            while not _live(url):
                assert process.poll() is None, f"the query API at {url} exited; see {log_dir}"
                assert time.monotonic() < deadline, f"the query API at {url} did not start; see {log_dir}"
                time.sleep(0.1)  # a server starting: polled with a deadline
        yield urls
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _live(url: str) -> bool:
    try:
        return httpx.get(url + "/health/live", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def test_two_processes_under_twice_the_capacity_allow_exactly_the_capacity(
    service_environment: dict[str, str], tmp_path: Path
) -> None:
    policies = {"tiers": {"free": {"quota": QUOTA, "window_seconds": WINDOW_SECONDS}}}
    environment = {**service_environment, "CQRS_RATE_LIMIT_QUERIES": json.dumps(policies)}
    headers = bearer(mint())
    with query_api_processes(environment, 2, tmp_path) as urls:
        async with httpx.AsyncClient(timeout=10, headers=headers) as client:

            async def ask(n: int) -> httpx.Response:
                return await client.get(f"{urls[n % 2]}/v1/accounts/{uuid.uuid4()}")

            started = time.monotonic()
            answers = await asyncio.gather(*(ask(n) for n in range(2 * QUOTA)))
            elapsed = time.monotonic() - started
            refused = [answer for answer in answers if answer.status_code == 429]
            allowed = [answer for answer in answers if answer.status_code != 429]
            assert {answer.status_code for answer in allowed} == {404}  # unknown accounts, past the limit
            # Exactly the capacity, plus what refilled while the burst ran (±1).
            assert abs(len(allowed) - (QUOTA + elapsed / SECONDS_PER_TOKEN)) <= 1, (len(allowed), elapsed)
            retry_afters = {int(answer.headers["retry-after"]) for answer in refused}
            assert retry_afters <= {1, 2, 3}, retry_afters

            # Retry-After is accurate: asking again and again, the first success comes
            # within a second of what the last refusal said.
            told = refused[-1]
            told_at = time.monotonic()
            wait = int(told.headers["retry-after"])
            n = 0
            while (answer := await ask(n)).status_code == 429:
                n += 1
                assert time.monotonic() - told_at < wait + 1, "no token came back within Retry-After + 1 s"
                await asyncio.sleep(0.05)  # pacing the client, not waiting for a condition
            assert time.monotonic() - told_at >= wait - 1
            assert answer.status_code == 404
