"""The relay's and a projector's own health and metrics endpoints, on real servers, as processes."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.ports import free_port
from shared.infrastructure.event_store import PostgresEventStore
from tests.integration.projectors.faults import ProjectorLauncher
from tests.integration.relay.helpers import append_accounts, start_relay, wait_until
from tests.support.isolation import event_store_for


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresEventStore]:
    async with event_store_for(database_url) as event_store:
        yield event_store


async def get(url: str) -> httpx.Response | None:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return await client.get(url)
    except httpx.HTTPError:
        return None


async def ready_report(base: str, condition: Any) -> dict[str, Any]:
    """Poll /health/ready until its report satisfies `condition`; the last report."""
    seen: dict[str, Any] = {}

    async def satisfied() -> bool:
        nonlocal seen
        answer = await get(base + "/health/ready")
        seen = answer.json() if answer is not None and answer.status_code == 200 else {}
        return bool(seen) and bool(condition(seen))

    await wait_until(satisfied, 30, f"{base}/health/ready reports what is expected (last: {seen})")
    return seen


@pytest.mark.slow
async def test_the_relay_reports_its_dependencies_its_outbox_and_what_it_published(
    store: PostgresEventStore, service_environment: dict[str, str]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    relay = start_relay({**service_environment, "CQRS_RELAY_OPS_PORT": str(port)})
    try:
        idle = await ready_report(base, lambda report: report["lag"]["active"])
        assert set(idle["checks"]) == {"postgres", "nats"}
        assert all(check["status"] == "ok" and check["latency_ms"] >= 0 for check in idle["checks"].values())
        total = await append_accounts(store, accounts=2, deposits=3)
        drained = await ready_report(base, lambda report: report["lag"]["outbox_backlog"] == 0)
        assert drained["lag"]["outbox_oldest_age_seconds"] == 0
        metrics = await get(base + "/metrics")
        assert metrics is not None
        assert f"cqrs_relay_published_total {float(total)}" in metrics.text
        assert "cqrs_outbox_backlog " in metrics.text
        assert "cqrs_relay_active 1.0" in metrics.text
        live = await get(base + "/health/live")
        assert live is not None
        assert live.status_code == 200
    finally:
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(30) == 0


@pytest.mark.slow
async def test_a_projector_reports_each_projection_s_lag(
    store: PostgresEventStore, service_environment: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    launcher = ProjectorLauncher({**service_environment, "CQRS_PROJECTOR_OPS_PORT": str(port)}, tmp_path)
    relay = start_relay(service_environment)
    try:
        projector = launcher.start("accounts")
        await append_accounts(store, accounts=2, deposits=3)
        report = await ready_report(
            base, lambda report: report["lag"]["projections"]["accounts"].get("lag_events") == 0
        )
        assert set(report["checks"]) == {"postgres", "nats", "redis"}
        accounts = report["lag"]["projections"]["accounts"]
        assert accounts["state"] == "running"
        assert accounts["dead_letters"] == 0
        assert accounts["checkpoint"] > 0
        metrics = await get(base + "/metrics")
        assert metrics is not None
        assert 'cqrs_projection_lag_events{projection="accounts"} 0.0' in metrics.text
        assert 'cqrs_projection_events_applied_total{projection="accounts"} 8.0' in metrics.text
        assert await projector.stop() == 0
    finally:
        launcher.close()
        relay.send_signal(signal.SIGTERM)
        relay.wait(30)
