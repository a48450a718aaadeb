"""`cqrs dev`, the README's first command: the whole system up, then down cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from devstack.ports import free_port
from devstack.processes import find_pidfiles
from tests.integration.command_api.conftest import PASSWORD

pytestmark = pytest.mark.slow

READY_SECONDS = 60


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _wait_until_ready(process: subprocess.Popen[str], ports: tuple[int, int]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"cqrs dev exited early with {process.returncode}"
        if all(_ready(port) for port in ports):
            return
        time.sleep(0.2)
    pytest.fail(f"cqrs dev was not ready within {READY_SECONDS}s")


def _recorded_pids(data_dir: Path) -> list[int]:
    return [json.loads(path.read_text())["pid"] for path in find_pidfiles(data_dir)]


def _start(
    data_dir: Path, ports: tuple[int, int], *flags: str, environment: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    # Only the variables a test gives: the developer's own CQRS_* must not leak in.
    env = {key: value for key, value in os.environ.items() if not key.startswith("CQRS_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "operator_cli",
            "dev",
            *flags,
            "--data-dir",
            str(data_dir),
            "--command-api-port",
            str(ports[0]),
            "--query-api-port",
            str(ports[1]),
        ],
        env={**env, **(environment or {}), "CQRS_LOG_FORMAT": "json"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def ports() -> tuple[int, int]:
    return free_port(), free_port()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "cqrs-data"
    # Whatever a failed test left running must not outlive it.
    for pid in _recorded_pids(tmp_path / "cqrs-data"):
        if psutil.pid_exists(pid):
            psutil.Process(pid).kill()


def test_dev_starts_everything_and_stops_cleanly(data_dir: Path, ports: tuple[int, int]) -> None:
    """Both APIs answer ready; SIGTERM stops every process and exits 0."""
    process = _start(data_dir, ports)
    try:
        _wait_until_ready(process, ports)
        children = _recorded_pids(data_dir)
        assert len(children) >= 5  # postgres, nats, redis, command API, query API, and the workers
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "command API" in output
    assert "http://127.0.0.1" in output
    assert not [
        pid for pid in children if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    ]


def test_dev_recovers_after_a_killed_run(data_dir: Path, ports: tuple[int, int]) -> None:
    """After `cqrs dev` is SIGKILLed, the next start on the same data comes up ready again."""
    first = _start(data_dir, ports)
    try:
        _wait_until_ready(first, ports)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    second = _start(data_dir, ports)
    try:
        _wait_until_ready(second, ports)
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0


def test_dev_external_uses_the_configured_servers(
    tmp_path: Path, ports: tuple[int, int], service_environment: dict[str, str]
) -> None:
    """`cqrs dev --external` starts no server of its own and runs the APIs on the named ones."""
    data_dir = tmp_path / "external-data"
    process = _start(data_dir, ports, "--external", environment=service_environment)
    try:
        _wait_until_ready(process, ports)
        names = {path.name for path in find_pidfiles(data_dir)}
        _a_deposit_reaches_the_read_model(
            f"http://127.0.0.1:{ports[0]}", service_environment["CQRS_DATABASE_URL"]
        )
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert names == {"command-api.pid.json", "query-api.pid.json", "relay.pid.json", "projector.pid.json"}
    assert service_environment["CQRS_DATABASE_URL"] in output


def _a_deposit_reaches_the_read_model(command_api: str, database_url: str) -> None:
    """Through every process: command API, store, relay, JetStream, projector, read tables."""
    email = f"e2e-{uuid.uuid4().hex[:12]}@example.com"
    with httpx.Client(base_url=command_api, timeout=10) as client:
        registered = client.post(
            "/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": "E2E"}
        )
        assert registered.status_code == 201, registered.text
        login = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        opened = client.post("/v1/accounts", json={"currency": "EUR", "name": "e2e"}, headers=headers)
        account_id = opened.json()["account_id"]
        deposit = client.post(
            f"/v1/accounts/{account_id}/deposits", json={"amount": 250, "reference": "e2e"}, headers=headers
        )
        assert deposit.status_code == 201, deposit.text

    async def projected() -> tuple[object, ...] | None:
        connection = await asyncpg.connect(database_url, timeout=10)
        try:
            row = await connection.fetchrow(
                "SELECT a.balance, a.version, (SELECT count(*) FROM read.account_entries e "
                "WHERE e.account_id = a.account_id) AS entries, "
                "(SELECT roles FROM read.users WHERE email = $2) AS roles "
                "FROM read.accounts a WHERE a.account_id = $1",
                uuid.UUID(account_id),
                email,
            )
        finally:
            await connection.close()
        return tuple(row.values()) if row is not None else None

    deadline = time.monotonic() + 30
    while (seen := asyncio.run(projected())) != (250, 2, 1, ["user"]):
        assert time.monotonic() < deadline, f"read model never showed the deposit: {seen}"
        time.sleep(0.1)
