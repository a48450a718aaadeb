"""Fixtures of the reliability suite: its own servers (it kills them), and the whole system per scenario."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.db import migrate
from tests.fault.system import Dependencies, System, embedded_dependencies
from tests.support.environment import service_environment_for
from tests.support.isolation import create_database, drop_database, own_database, own_key_prefix, own_stream


@pytest.fixture(scope="session")
def fault_dependencies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dependencies]:
    """PostgreSQL, NATS and Redis of this suite's own, whatever CQRS_TEST_* name: scenarios crash them."""
    with embedded_dependencies(tmp_path_factory.mktemp("fault-servers")) as dependencies:
        yield dependencies


def _admin_url(dependencies: Dependencies) -> str:
    return f"postgresql://postgres@127.0.0.1:{dependencies.postgres.port}/postgres"


@pytest.fixture(scope="session")
def fault_template(fault_dependencies: Dependencies) -> Iterator[str]:
    url = create_database(_admin_url(fault_dependencies))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(migrate.upgrade, url).result()
    yield url.rpartition("/")[2]
    drop_database(_admin_url(fault_dependencies), url)


@pytest.fixture(scope="module")
def running_system(
    fault_dependencies: Dependencies, fault_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    """Every process up, on a database, stream and key prefix of this module's own.

    One per module, since starting it costs ~10 s; each scenario uses accounts of its own, and the
    checker looks at those only.
    """
    log_dir: Path = tmp_path_factory.mktemp("system")
    nats_url = f"nats://127.0.0.1:{fault_dependencies.nats.port}"
    redis_url = f"redis://127.0.0.1:{fault_dependencies.redis.port}/0"
    with (
        own_database(_admin_url(fault_dependencies), fault_template) as database_url,
        own_stream(nats_url) as stream_names,
        own_key_prefix(redis_url) as redis_key_prefix,
    ):
        environment = service_environment_for(
            database_url=database_url,
            nats_url=nats_url,
            redis_url=redis_url,
            stream_names=stream_names,
            redis_key_prefix=redis_key_prefix,
        )
        with System(fault_dependencies, environment, log_dir) as started:
            yield started


@pytest.fixture
def system(running_system: System) -> System:
    """The module's system, with whatever a scenario before left down started again."""
    running_system.heal()
    return running_system
