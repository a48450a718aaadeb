"""Fixtures for every suite: servers (real, never mocked) and per-test isolation."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.support")

from tests.support.environment import service_environment_for  # noqa: E402 - after the rewrite registration
from tests.support.isolation import StreamNames  # noqa: E402

pytest_plugins = ["tests.support.servers", "tests.support.isolation"]


@pytest.fixture
def service_environment(
    database_url: str, nats_url: str, redis_url: str, stream_names: StreamNames, redis_key_prefix: str
) -> dict[str, str]:
    """CQRS_* variables that point a process at this test's own resources."""
    return service_environment_for(
        database_url=database_url,
        nats_url=nats_url,
        redis_url=redis_url,
        stream_names=stream_names,
        redis_key_prefix=redis_key_prefix,
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder, so `-m unit` or `-m integration` selects a whole suite."""
    for item in items:
        for suite in ("unit", "integration", "e2e", "fault"):
            if f"/tests/{suite}/" in str(item.path):
                item.add_marker(suite)
