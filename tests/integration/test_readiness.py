"""Readiness against the real servers: 200 with a latency per dependency."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from command_api.app import create_app as create_command_app
from command_api.settings import CommandApiSettings
from devstack.ports import free_port
from query_api.app import create_app as create_query_app
from query_api.settings import QueryApiSettings
from shared.settings import load_settings

USED_BY = {"command": {"postgres"}, "query": {"postgres", "nats", "redis"}}


@pytest.mark.parametrize("api", ["command", "query"])
async def test_ready_when_every_dependency_answers(api: str, service_environment: dict[str, str]) -> None:
    """/health/ready is 200 and reports each dependency the process uses ok, with its latency."""
    app: Any
    if api == "command":
        app = create_command_app(load_settings(CommandApiSettings, service_environment))
    else:
        app = create_query_app(load_settings(QueryApiSettings, service_environment))
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert set(checks) == USED_BY[api]
    for check in checks.values():
        assert check["status"] == "ok"
        assert check["latency_ms"] >= 0


async def test_the_command_api_stays_ready_without_nats_and_redis(
    service_environment: dict[str, str],
) -> None:
    """A NATS or Redis outage does not take the command API out of service: it uses neither."""
    environment = {
        **service_environment,
        "CQRS_NATS_URLS": f"nats://127.0.0.1:{free_port()}",
        "CQRS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "CQRS_NATS_CONNECT_TIMEOUT_SECONDS": "0.2",
    }
    app = create_command_app(load_settings(CommandApiSettings, environment))
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
