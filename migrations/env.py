"""Alembic environment: async engine over asyncpg, metadata from shared.db.schema.

The database URL comes from `config.attributes["database_url"]` (set by
`cqrs migrate` and the tests) or else from CQRS_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from migrations.target import TARGET_METADATA, include_name
from shared.infrastructure.postgres import asyncpg_url

config = context.config


def _database_url() -> str:
    url = config.attributes.get("database_url") or os.environ.get("CQRS_DATABASE_URL")
    if not url:
        raise SystemExit("CQRS_DATABASE_URL is required to run migrations")
    return asyncpg_url(str(url))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=TARGET_METADATA,
        include_schemas=True,
        include_name=include_name,
        compare_type=True,
        compare_server_default=True,
        # One transaction for the whole upgrade: a failed migration leaves nothing half done.
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        # Two replicas migrating at once would race on DDL; the second waits here.
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('cqrs-migrate'))"))
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_database_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_configure)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=TARGET_METADATA, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    existing = config.attributes.get("connection")
    if existing is not None:
        _configure(existing)
    else:
        asyncio.run(_run_online())
