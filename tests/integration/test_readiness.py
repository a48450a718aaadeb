"""Readiness against the real servers: 200 with a latency per dependency."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from command_api.app import create_app as create_command_app
from command_api.settings import CommandApiSettings
from query_api.app import create_app as create_query_app
from query_api.settings import QueryApiSettings
from shared.settings import load_settings


@pytest.mark.parametrize("api", ["command", "query"])
async def test_ready_when_every_dependency_answers(api: str, service_environment: dict[str, str]) -> None:
    """/health/ready is 200 and reports each dependency ok, with its latency."""
    app: Any
    if api == "command":
        app = create_command_app(load_settings(CommandApiSettings, service_environment))
    else:
        app = create_query_app(load_settings(QueryApiSettings, service_environment))
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert set(checks) == {"postgres", "nats", "redis"}
    for check in checks.values():
        assert check["status"] == "ok"
        assert check["latency_ms"] >= 0
