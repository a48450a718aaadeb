"""Scenarios: the whole system under load while a process or a server fails; the history must check out.

Each ends with lost = 0, duplicated = 0, unexpected = 0, nothing out of
order, and money conserved in the store and the read model.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.fault.checker import check
from tests.fault.load import LoadGenerator, Operation
from tests.fault.scenario import (
    LOAD_SECONDS,
    crash_dependency,
    cut_off_dependency,
    kill_and_restart,
    pause_dependency,
    run_scenario,
    slow_dependency,
)
from tests.fault.system import PROCESSES, ProcessName, System

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(300)]


async def test_without_a_fault_the_history_checks_out(system: System, tmp_path: Path) -> None:
    """The baseline: if this fails, the checker or the load is wrong, not the fault handling."""
    outcome = await run_scenario(system, None, tmp_path)
    assert outcome.verdict.clean, outcome.verdict
    assert outcome.verdict.operations["ok"] > 0
    assert outcome.verdict.operations["unknown"] == 0


@pytest.mark.parametrize("victim", PROCESSES)
async def test_a_process_killed_with_sigkill_loses_nothing(
    system: System, tmp_path: Path, victim: ProcessName
) -> None:
    outcome = await run_scenario(system, kill_and_restart(victim), tmp_path)
    assert outcome.verdict.clean, outcome.verdict
    if victim == "command-api":
        # The clients saw it go: the scenario tested a fault, not a quiet run.
        assert outcome.verdict.operations["retries"] > 0, outcome.verdict


async def test_nats_crashed_and_restarted_loses_nothing(system: System, tmp_path: Path) -> None:
    outcome = await run_scenario(system, crash_dependency("nats", down_seconds=3), tmp_path)
    assert outcome.verdict.clean, outcome.verdict


async def test_nats_paused_loses_nothing(system: System, tmp_path: Path) -> None:
    outcome = await run_scenario(system, pause_dependency("nats", paused_seconds=4), tmp_path)
    assert outcome.verdict.clean, outcome.verdict


async def test_the_checker_sees_a_lost_and_a_duplicated_write(system: System, tmp_path: Path) -> None:
    """The checker can fail: one deposit's event relabelled with another's key reads as both."""
    outcome = await run_scenario(system, None, tmp_path)
    deposits = [
        key
        for key, (operation, result, _) in outcome.history.outcomes().items()
        if operation.kind == "deposit" and result == "ok"
    ]
    first, second = deposits[:2]
    connection = await asyncpg.connect(system.database_url, timeout=10)
    try:
        await connection.execute(
            "UPDATE events SET data = jsonb_set(data, '{reference}', to_jsonb($1::text))"
            " WHERE data->>'reference' = $2",
            first,
            second,
        )
    finally:
        await connection.close()

    verdict = await check(
        outcome.history,
        database_url=system.database_url,
        nats_url=system.nats_url,
        stream=system.stream,
        accounts=list(outcome.generator.plan.accounts),
    )

    assert not verdict.clean
    assert verdict.lost >= 1, verdict
    assert verdict.duplicated >= 1, verdict


async def test_postgres_stopped_for_10_seconds_answers_503_and_recovers(
    system: System, tmp_path: Path
) -> None:
    """Crashed (immediate shutdown), down 10 s, started again: no restart of any process needed."""
    # Long enough that the load outlasts the outage.
    outcome = await run_scenario(
        system, crash_dependency("postgres", down_seconds=10), tmp_path, seconds=max(15.0, LOAD_SECONDS)
    )
    assert outcome.verdict.clean, outcome.verdict
    statuses = {entry.get("status") for entry in outcome.history.entries}
    assert 503 in statuses, "the outage was never seen"  # and never a 500: server_errors == 0


async def test_redis_down_bypasses_the_cache_and_limits_locally(system: System, tmp_path: Path) -> None:
    outcome = await run_scenario(system, crash_dependency("redis", down_seconds=4), tmp_path)
    assert outcome.verdict.clean, outcome.verdict
    assert outcome.verdict.operations["unknown"] == 0, "commands and queries go on without Redis"


async def test_nats_cut_off_by_the_network_loses_nothing(system: System, tmp_path: Path) -> None:
    """A partition: the processes' connections to NATS hear nothing for 4 s, then the link heals."""
    outcome = await run_scenario(system, cut_off_dependency("nats", "blackhole", 4), tmp_path)
    assert outcome.verdict.clean, outcome.verdict


async def test_postgres_connections_reset_lose_nothing(system: System, tmp_path: Path) -> None:
    """Every connection to PostgreSQL reset, and every new one, for 2 s."""
    outcome = await run_scenario(system, cut_off_dependency("postgres", "reset", 2), tmp_path)
    assert outcome.verdict.clean, outcome.verdict


async def test_latency_on_redis_loses_nothing(system: System, tmp_path: Path) -> None:
    outcome = await run_scenario(system, slow_dependency("redis", 0.3, lasting_seconds=4), tmp_path)
    assert outcome.verdict.clean, outcome.verdict


async def test_twenty_duplicates_of_one_key_during_a_relay_kill_execute_once(
    system: System, tmp_path: Path
) -> None:
    key = f"duplicate-{uuid.uuid4().hex}"

    async def duplicates_while_the_relay_dies(system: System, generator: LoadGenerator) -> None:
        relay_killed = asyncio.create_task(asyncio.to_thread(system.processes["relay"].restart))
        await generator.perform_copies(Operation(key, "deposit", generator.plan.accounts[0], 777), 20)
        await relay_killed

    outcome = await run_scenario(system, duplicates_while_the_relay_dies, tmp_path)

    assert outcome.verdict.clean, outcome.verdict  # among others: the key took effect once
    answers = [entry for entry in outcome.history.entries if entry["key"] == key and entry["event"] == "ok"]
    assert len(answers) == 20
    assert len({entry["answer"]["entry_id"] for entry in answers}) == 1, (
        "every copy got the one execution's answer"
    )
