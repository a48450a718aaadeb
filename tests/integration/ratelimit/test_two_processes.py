"""Two query API processes share one limit: exact under concurrent load, with an accurate Retry-After."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from devstack.ports import free_port
from tests.support.services import http_service, running
from tests.support.tokens import bearer, mint

QUOTA = 20
WINDOW_SECONDS = 60.0  # a token every 3 s
SECONDS_PER_TOKEN = WINDOW_SECONDS / QUOTA


@pytest.mark.slow
async def test_two_processes_under_twice_the_capacity_allow_exactly_the_capacity(
    service_environment: dict[str, str], tmp_path: Path
) -> None:
    policies = {"tiers": {"free": {"quota": QUOTA, "window_seconds": WINDOW_SECONDS}}}
    environment = {**service_environment, "CQRS_RATE_LIMIT_QUERIES": json.dumps(policies)}
    headers = bearer(mint())
    ports = [free_port(), free_port()]
    services = [
        http_service("query-api", environment, tmp_path, port, name=f"query-api-{port}") for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    with running(*services):
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
