"""The embedded stack keeps its data across restarts and cleans up after a killed run."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import psutil
import pytest

from devstack.processes import ManagedProcess, reap_stale
from devstack.stack import EmbeddedStack

pytestmark = pytest.mark.slow


async def _query(url: str, sql: str) -> object:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


def test_a_second_start_reuses_the_data(tmp_path: Path) -> None:
    """Rows written before a stop are there after the next start, on the same ports."""
    first = EmbeddedStack(tmp_path / "data")
    with first:
        asyncio.run(_query(first.postgres.url, "CREATE TABLE kept AS SELECT 42 AS answer"))
        urls = first.urls
    second = EmbeddedStack(tmp_path / "data")
    with second:
        assert asyncio.run(_query(second.postgres.url, "SELECT answer FROM kept")) == 42
        assert second.urls == urls


def _sleeper(tmp_path: Path) -> ManagedProcess:
    return ManagedProcess(
        name="sleeper",
        argv=[sys.executable, "-c", "import time; time.sleep(120)"],
        pid_path=tmp_path / "sleeper.pid",
    )


def test_a_process_left_behind_is_stopped_on_the_next_start(tmp_path: Path) -> None:
    """A pidfile naming a live process of ours makes the next start stop that process first."""
    orphan = _sleeper(tmp_path)
    orphan.start()
    assert orphan.pid is not None
    left_behind = psutil.Process(orphan.pid)
    successor = _sleeper(tmp_path)
    successor.start()
    try:
        left_behind.wait(10)  # raises TimeoutExpired if nobody stopped it
        assert not left_behind.is_running()
        assert successor.exit_code() is None
    finally:
        successor.stop()
        orphan.stop()


def test_a_recycled_pid_is_not_killed(tmp_path: Path) -> None:
    """A pidfile whose pid now belongs to another process (other start time) leaves that process alone."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        pid_file = tmp_path / "stale.pid"
        pid_file.write_text(json.dumps({"pid": bystander.pid, "create_time": 1.0}))
        assert reap_stale(pid_file) is False
        assert bystander.poll() is None
        assert not pid_file.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    """When the process that started a child is SIGKILLed, the child is stopped too (Linux)."""
    script = (
        "import sys, time; from pathlib import Path; from devstack.processes import ManagedProcess\n"
        f"p = ManagedProcess(name='c', argv=[sys.executable, '-c', 'import time; time.sleep(120)'],"
        f" pid_path=Path({str(tmp_path / 'c.pid')!r}))\n"
        "p.start(); print(p.pid, flush=True); time.sleep(120)\n"
    )
    supervisor = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert supervisor.stdout is not None
    child = psutil.Process(int(supervisor.stdout.readline()))
    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.05)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
