"""Scenarios: the whole system under load while a process or a server fails; the history must check out.

Each ends with lost = 0, duplicated = 0, unexpected = 0, nothing out of
order, and money conserved in the store and the read model.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests.fault.checker import check
from tests.fault.scenario import crash_dependency, kill_and_restart, pause_dependency, run_scenario
from tests.fault.system import PROCESSES, System

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(300)]


async def test_without_a_fault_the_history_checks_out(system: System, tmp_path: Path) -> None:
    """The baseline: if this fails, the checker or the load is wrong, not the fault handling."""
    outcome = await run_scenario(system, None, tmp_path)
    assert outcome.verdict.clean, outcome.verdict
    assert outcome.verdict.operations["ok"] > 0
    assert outcome.verdict.operations["unknown"] == 0


@pytest.mark.parametrize("victim", PROCESSES)
async def test_a_process_killed_with_sigkill_loses_nothing(
    system: System, tmp_path: Path, victim: str
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
        accounts=outcome.generator.plan.accounts,
    )

    assert not verdict.clean
    assert verdict.lost >= 1, verdict
    assert verdict.duplicated >= 1, verdict
