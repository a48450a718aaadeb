"""One scenario: accounts, a steady load, a fault a third of the way in, then the checker's verdict."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.fault.checker import Verdict, check
from tests.fault.load import History, LoadGenerator, LoadPlan, Operation, open_accounts
from tests.fault.system import DependencyName, ProcessName, System
from tests.support.tokens import bearer, mint

# CI runs each scenario briefly; `FAULT_SECONDS=90` is the long run (docs/operations.md).
LOAD_SECONDS = float(os.environ.get("FAULT_SECONDS", "7"))
LOAD_RATE = float(os.environ.get("FAULT_RATE", "30"))
ACCOUNTS = 8
OPENING_BALANCE = 5_000

Fault = Callable[[System, LoadGenerator], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    history: History
    generator: LoadGenerator


async def run_scenario(
    system: System, fault: Fault | None, log_dir: Path, *, seconds: float = LOAD_SECONDS
) -> Outcome:
    headers = bearer(mint(uuid.uuid4(), expires_in=3600))
    accounts = await open_accounts(system.command_url, headers, ACCOUNTS)
    history = History(log_dir / "history.jsonl")
    plan = LoadPlan(rate_per_second=LOAD_RATE, seconds=seconds, accounts=accounts)
    generator = LoadGenerator(system.command_url, system.query_url, headers, plan, history)
    try:
        # Opening balances go through the same recorded path, so the checker accounts for them.
        await generator.perform_all(
            [
                Operation(f"fund-{uuid.uuid4().hex}", "deposit", account, OPENING_BALANCE)
                for account in accounts
            ]
        )
        load = asyncio.create_task(generator.run())
        if fault is not None:
            # The fault lands a third of the way into the load, while requests are in flight.
            await asyncio.sleep(seconds / 3)
            await fault(system, generator)
        await load
        verdict = await check(
            history,
            database_url=system.database_url,
            nats_url=system.nats_url,
            stream=system.stream,
            accounts=accounts,
        )
    finally:
        history.close()
    print(verdict)  # the scenario's report: shown with -s, and with the failure
    return Outcome(verdict, history, generator)


def kill_and_restart(name: ProcessName) -> Fault:
    """SIGKILL a process, then start it again (as a supervisor would)."""

    async def fault(system: System, _: LoadGenerator) -> None:
        await asyncio.to_thread(system.processes[name].restart)

    return fault


def crash_dependency(name: DependencyName, down_seconds: float) -> Fault:
    """Stop a server dead, keep it down a while, then start it on its own data."""

    async def fault(system: System, _: LoadGenerator) -> None:
        dependency = system.dependencies[name]
        await asyncio.to_thread(dependency.crash)
        await asyncio.sleep(down_seconds)  # the outage itself
        dependency.launch()  # on this thread: see Dependency.launch
        await asyncio.to_thread(dependency.wait_ready)

    return fault


def cut_off_dependency(
    name: DependencyName, mode: Literal["blackhole", "reset"], lasting_seconds: float
) -> Fault:
    """The network to a server fails: nothing gets through (blackhole), or every connection is reset."""

    async def fault(system: System, _: LoadGenerator) -> None:
        with system.proxies[name].fault(mode):
            await asyncio.sleep(lasting_seconds)  # the cut itself

    return fault


def slow_dependency(name: DependencyName, latency_seconds: float, lasting_seconds: float) -> Fault:
    """Every byte to and from a server delayed, for a while."""

    async def fault(system: System, _: LoadGenerator) -> None:
        with system.proxies[name].fault("latency", latency_seconds):
            await asyncio.sleep(lasting_seconds)  # the slow spell itself

    return fault


def pause_dependency(name: DependencyName, paused_seconds: float) -> Fault:
    """SIGSTOP a server (it holds every connection and answers nothing), then SIGCONT."""

    async def fault(system: System, _: LoadGenerator) -> None:
        dependency = system.dependencies[name]
        dependency.pause()
        try:
            await asyncio.sleep(paused_seconds)  # the pause itself
        finally:
            dependency.resume()

    return fault
