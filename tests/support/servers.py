"""The servers a test session talks to: named by CQRS_TEST_* variables, or embedded.

Each server starts only when a test first needs it, so `pytest -m unit`
starts nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.ports import free_port
from devstack.servers import EmbeddedNats, EmbeddedPostgres, EmbeddedRedis, EmbeddedServer

TEST_DATABASE_URL = "CQRS_TEST_DATABASE_URL"
TEST_NATS_URL = "CQRS_TEST_NATS_URL"
TEST_REDIS_URL = "CQRS_TEST_REDIS_URL"


def _run_embedded(server: EmbeddedServer) -> Iterator[EmbeddedServer]:
    server.start()
    try:
        server.wait_ready(90)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def embedded_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture(scope="session")
def postgres_admin_url(embedded_root: Path) -> Iterator[str]:
    """A URL to a database from which the tests create their own databases."""
    if url := os.environ.get(TEST_DATABASE_URL):
        yield url
        return
    for server in _run_embedded(EmbeddedPostgres(embedded_root / "postgres", free_port())):
        assert isinstance(server, EmbeddedPostgres)
        yield server.admin_url


@pytest.fixture(scope="session")
def nats_url(embedded_root: Path) -> Iterator[str]:
    if url := os.environ.get(TEST_NATS_URL):
        yield url
        return
    for server in _run_embedded(EmbeddedNats(embedded_root / "nats", free_port(), free_port())):
        yield server.url


@pytest.fixture(scope="session")
def redis_url(embedded_root: Path) -> Iterator[str]:
    if url := os.environ.get(TEST_REDIS_URL):
        yield url
        return
    for server in _run_embedded(EmbeddedRedis(embedded_root / "redis", free_port())):
        yield server.url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of the test's own, which it may stop and start again."""
    server = EmbeddedRedis(tmp_path / "redis", free_port())
    server.start()
    server.wait_ready(30)
    try:
        yield server
    finally:
        server.stop()
