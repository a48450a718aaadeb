"""`cqrs seed`: demo data through a real command API process, checked in the database it wrote."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from command_api.settings import CommandApiSettings
from devstack.ports import free_port
from operator_cli.seed import ADMIN_EMAIL, ALICE_EMAIL, BOB_EMAIL, report_lines, seed
from shared.settings import load_settings

READY_SECONDS = 20


def _clean_environment(service_environment: dict[str, str]) -> dict[str, str]:
    # Only this test's variables: the developer's own CQRS_* must not leak in.
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("CQRS_")}
    return {**inherited, **service_environment, "CQRS_LOG_FORMAT": "json"}


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health/ready", timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def command_api_url(service_environment: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """The command API as its own process (`cqrs command-api`) on a free port, ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "command-api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "operator_cli", "command-api", "--port", str(port)],
            env=_clean_environment(service_environment),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + READY_SECONDS
        while not _ready(url):
            if process.poll() is not None:
                pytest.fail(
                    f"the command API exited with {process.returncode}: {log_path.read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"the command API was not ready within {READY_SECONDS}s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def _states(database_url: str, stream_type: str) -> list[dict[str, Any]]:
    """The current state of every aggregate of a type, as the command side stored it."""
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        rows = await connection.fetch(
            "SELECT state::text AS state FROM aggregate_states WHERE stream_type = $1", stream_type
        )
    finally:
        await connection.close()
    return [json.loads(row["state"]) for row in rows]


async def _deposited(database_url: str) -> int:
    """The sum of every MoneyDeposited event in the event store."""
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        total = await connection.fetchval(
            "SELECT coalesce(sum((data->>'amount')::bigint), 0) FROM events WHERE event_type = $1",
            "MoneyDeposited",
        )
    finally:
        await connection.close()
    return int(total)


@pytest.mark.slow
async def test_seed_makes_a_working_demo_and_refuses_a_second_time(
    command_api_url: str, service_environment: dict[str, str], database_url: str
) -> None:
    """Three users (one admin), balances that add up to the deposits; a rerun exits 0 and says why."""
    settings = load_settings(CommandApiSettings, service_environment)
    report = await seed(command_api_url, settings, http_timeout=10)

    assert [(user.email, user.role) for user in report.users] == [
        (ADMIN_EMAIL, "admin"),
        (ALICE_EMAIL, "user"),
        (BOB_EMAIL, "user"),
    ]
    assert len({user.password for user in report.users}) == 3
    assert report.deposits == 3
    assert report.transfers >= 2

    users = await _states(database_url, "user")
    assert sorted(user["email"] for user in users) == sorted([ADMIN_EMAIL, ALICE_EMAIL, BOB_EMAIL])
    assert [user["email"] for user in users if "admin" in user["roles"]] == [ADMIN_EMAIL]

    accounts = await _states(database_url, "account")
    balances = {account["account_id"]: account["balance"] for account in accounts}
    assert balances == {str(account.account_id): account.balance for account in report.accounts}
    assert sum(balances.values()) == await _deposited(database_url) > 0
    assert all(balance >= 0 for balance in balances.values())

    # The printed credentials are real: each user logs in with them.
    async with httpx.AsyncClient(base_url=command_api_url, timeout=10) as client:
        for user in report.users:
            response = await client.post(
                "/v1/auth/login", json={"email": user.email, "password": user.password}
            )
            assert response.status_code == 200, response.text
    printed = "\n".join(report_lines(report))
    assert all(user.password in printed and user.email in printed for user in report.users)

    # Again, as an operator would run it: a clear message, exit 0, nothing written.
    rerun = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "operator_cli", "seed", "--command-api", command_api_url],
        env=_clean_environment(service_environment),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        stdout, stderr = await rerun.communicate()
    assert rerun.returncode == 0, stderr.decode()
    assert "already" in stdout.decode()
    assert "--fresh --seed" in stdout.decode()
    assert len(await _states(database_url, "user")) == 3
