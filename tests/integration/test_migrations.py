"""Migrations: they round-trip, match the metadata, and a second run changes nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from migrations.target import TARGET_METADATA, include_name
from shared.db import migrate
from shared.infrastructure.postgres import asyncpg_url


def _drift(database_url: str) -> list[object]:
    def compare(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": include_name,
                "compare_type": True,
                "compare_server_default": True,
                "target_metadata": TARGET_METADATA,
            },
        )
        return list(compare_metadata(context, TARGET_METADATA))  # type: ignore[arg-type]

    async def run() -> list[object]:
        engine = create_async_engine(asyncpg_url(database_url), poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def _tables(database_url: str) -> set[str]:
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        rows = await connection.fetch(
            "SELECT table_schema || '.' || table_name AS name FROM information_schema.tables "
            "WHERE table_schema IN ('public', 'read')"
        )
        schemas = await connection.fetch("SELECT nspname FROM pg_namespace WHERE nspname = 'read'")
    finally:
        await connection.close()
    return {row["name"] for row in rows} | {f"schema:{row['nspname']}" for row in schemas}


def test_upgrade_downgrade_upgrade_round_trips(empty_database_url: str) -> None:
    """Head, then base, then head again works and ends with the same tables."""
    migrate.upgrade(empty_database_url)
    after_first = asyncio.run(_tables(empty_database_url))
    migrate.downgrade(empty_database_url, "base")
    assert asyncio.run(_tables(empty_database_url)) == {"public.alembic_version"}
    migrate.upgrade(empty_database_url)
    assert asyncio.run(_tables(empty_database_url)) == after_first
    assert {"public.events", "public.outbox", "public.idempotency_records"} <= after_first
    assert {"public.projection_checkpoints", "public.dead_letters", "schema:read"} <= after_first


def test_migrations_match_the_metadata(empty_database_url: str) -> None:
    """Autogenerate finds no difference between the migrated database and the metadata (both sides)."""
    migrate.upgrade(empty_database_url)
    assert _drift(empty_database_url) == []


@pytest.mark.slow
def test_cqrs_migrate_is_a_no_op_the_second_time(empty_database_url: str) -> None:
    """`cqrs migrate` migrates an empty database, then says there is nothing to do."""
    env = {**os.environ, "CQRS_DATABASE_URL": empty_database_url, "CQRS_LOG_FORMAT": "json"}
    command = [sys.executable, "-m", "operator_cli", "migrate"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stderr
    assert f"to {migrate.head_revision()}" in first.stdout
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout


async def test_a_stream_version_is_taken_only_once(database_url: str) -> None:
    """The event store refuses a second event with the same (stream_id, version)."""
    connection = await asyncpg.connect(database_url, timeout=10)
    insert = (
        "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data) "
        "VALUES ($1, $2, 'account', 1, 'AccountOpened', 1, '{}')"
    )
    try:
        stream_id = uuid.uuid4()
        await connection.execute(insert, uuid.uuid4(), stream_id)
        with pytest.raises(asyncpg.UniqueViolationError):
            await connection.execute(insert, uuid.uuid4(), stream_id)
    finally:
        await connection.close()


@pytest.mark.slow
def test_cqrs_migrate_to_goes_either_way(empty_database_url: str) -> None:
    """`cqrs migrate --to REV` upgrades to a newer revision and downgrades to an older one."""
    env = {**os.environ, "CQRS_DATABASE_URL": empty_database_url, "CQRS_LOG_FORMAT": "json"}

    def migrate_to(revision: str) -> str | None:
        command = [sys.executable, "-m", "operator_cli", "migrate", "--to", revision]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        return asyncio.run(migrate.current_revision(empty_database_url))

    assert migrate_to("0001_foundation") == "0001_foundation"
    assert migrate_to("0002_append_function") == "0002_append_function"
    assert migrate_to("0001_foundation") == "0001_foundation"
    assert migrate_to("head") == migrate.head_revision()
