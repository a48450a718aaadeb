"""Fixtures for every suite: servers (real, never mocked) and per-test isolation."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.support")

from tests.support.isolation import StreamNames  # noqa: E402 - after the rewrite registration

pytest_plugins = ["tests.support.servers", "tests.support.isolation"]

GENEROUS_TIERS = '{"tiers": {"free": {"quota": 1000000, "window_seconds": 60}}}'
GENEROUS_ANONYMOUS = '{"anonymous": {"quota": 1000000, "window_seconds": 60}, "on_redis_failure": "closed"}'


@pytest.fixture
def service_environment(
    database_url: str, nats_url: str, redis_url: str, stream_names: StreamNames, redis_key_prefix: str
) -> dict[str, str]:
    """CQRS_* variables that point a process at this test's own resources."""
    return {
        "CQRS_PROFILE": "test",
        "CQRS_DATABASE_URL": database_url,
        "CQRS_NATS_URLS": nats_url,
        "CQRS_NATS_STREAM": stream_names.stream,
        "CQRS_NATS_SUBJECT_PREFIX": stream_names.subject_prefix,
        "CQRS_REDIS_URL": redis_url,
        "CQRS_REDIS_KEY_PREFIX": redis_key_prefix,
        # OWASP's argon2id floor, the lowest the settings accept: tests log in often.
        "CQRS_PASSWORD_HASH_TIME_COST": "2",
        "CQRS_PASSWORD_HASH_MEMORY_KIB": "19456",
        "CQRS_PASSWORD_HASH_PARALLELISM": "1",
        # Rate limits stay on, so every test runs through them, with quotas no test reaches
        # by accident; the rate-limit tests set their own.
        "CQRS_RATE_LIMIT_QUERIES": GENEROUS_TIERS,
        "CQRS_RATE_LIMIT_COMMANDS": GENEROUS_TIERS,
        "CQRS_RATE_LIMIT_AUTH": GENEROUS_ANONYMOUS,
        # Many relays and projectors run at once in a test session: the ops tests pick free ports.
        "CQRS_RELAY_OPS_PORT": "0",
        "CQRS_PROJECTOR_OPS_PORT": "0",
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder, so `-m unit` or `-m integration` selects a whole suite."""
    for item in items:
        for suite in ("unit", "integration", "e2e", "fault"):
            if f"/tests/{suite}/" in str(item.path):
                item.add_marker(suite)
