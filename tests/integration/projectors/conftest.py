"""Fixtures of the projector tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.infrastructure.event_store import PostgresEventStore
from tests.integration.projectors.faults import ProjectorLauncher
from tests.support.isolation import event_store_for


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresEventStore]:
    async with event_store_for(database_url) as event_store:
        yield event_store


@pytest.fixture
def launcher(service_environment: dict[str, str], tmp_path: Path) -> Iterator[ProjectorLauncher]:
    projectors = ProjectorLauncher(service_environment, tmp_path)
    yield projectors
    projectors.close()
