"""GET /v1/admin/projections: admins see each projection's progress; nobody else does."""

from __future__ import annotations

import asyncpg
import httpx

from tests.integration.command_api.conftest import (
    CommandClient,
    open_account,
    register,
    register_admin,
)


async def test_an_admin_sees_checkpoints_lag_and_dead_letters(
    commands: CommandClient,
    queries: httpx.AsyncClient,
    service_environment: dict[str, str],
    database_url: str,
) -> None:
    """The answer comes from the checkpoint rows: lag counts the store's events beyond the checkpoint."""
    admin = await register_admin(commands, service_environment)
    user = await register(commands)
    await open_account(commands, user.headers)
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        # A projection that applied nothing yet, and one parked event of it.
        await connection.execute(
            "INSERT INTO projection_checkpoints (projection, stream_types, state, halted_reason) "
            "VALUES ('accounts', '{account}', 'halted', 'AccountOpened x v1: boom')"
        )
        await connection.execute(
            "INSERT INTO dead_letters (projection, global_position, event_id, stream_id, stream_type, "
            "version, event_type, error, attempts, first_failed_at) "
            "SELECT 'accounts', global_position, event_id, stream_id, stream_type, version, event_type, "
            "'boom', 3, now() FROM events WHERE stream_type = 'account'"
        )
    finally:
        await connection.close()

    response = await queries.get("/v1/admin/projections", headers=admin.headers)

    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    assert item["name"] == "accounts"
    assert item["checkpoint"] == 0
    assert item["pending"] == 1
    assert item["lag_seconds"] >= 0
    assert item["status"] == "halted"
    assert item["halted_reason"] == "AccountOpened x v1: boom"
    assert item["dead_letters"] == 1
    assert response.headers["cache-control"] == "no-store"


async def test_others_are_refused(commands: CommandClient, queries: httpx.AsyncClient) -> None:
    user = await register(commands)
    assert (await queries.get("/v1/admin/projections", headers=user.headers)).status_code == 403
    assert (await queries.get("/v1/admin/projections")).status_code == 401
