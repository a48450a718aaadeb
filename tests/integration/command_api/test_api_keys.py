"""API keys: shown once, stored hashed, scoped, revocable at once, and bound to their owner's accounts."""

from __future__ import annotations

import hashlib
import json
import uuid

import asyncpg

from tests.integration.command_api.conftest import (
    CommandClient,
    User,
    assert_problem,
    balance_of,
    deposit,
    open_account,
    table_counts,
)
from tests.integration.command_api.identity_helpers import (
    api_key_headers,
    assert_no_secret_stored,
    create_api_key,
)


async def test_a_new_key_is_shown_once_and_stored_only_as_its_hash(
    client: CommandClient, db: asyncpg.Connection, alice: User
) -> None:
    """Creating a key is a 201 with api_key_id and the key (no-store); the row keeps the SHA-256 of the
    key, never the key; ApiKeyIssued carries no secret; a keyed retry replays without the key."""
    headers = {**alice.headers, "Idempotency-Key": "key-1"}
    body = {"name": "ci", "scopes": ["ledger:write"]}

    response = await client.post("/v1/api-keys", json=body, headers=headers)
    replay = await client.post("/v1/api-keys", json=body, headers=headers)

    assert response.status_code == 201, response.text
    assert "no-store" in response.headers["cache-control"]
    created = response.json()
    key = created["key"]
    assert key.startswith("cqrs_")
    assert (created["name"], created["scopes"]) == ("ci", ["ledger:write"])
    row = await db.fetchrow("SELECT * FROM api_keys WHERE api_key_id = $1", uuid.UUID(created["api_key_id"]))
    assert row is not None
    assert row["user_id"] == alice.user_id
    assert bytes(row["key_hash"]) == hashlib.sha256(key.encode()).digest()
    assert key.split("_")[1] == row["lookup_prefix"]
    assert row["scopes"] == ["ledger:write"]
    assert replay.status_code == 201, replay.text
    assert replay.headers.get("idempotent-replayed") == "true"
    replayed = replay.json()
    assert "key" not in replayed
    assert replayed == {name: value for name, value in created.items() if name != "key"}
    assert await db.fetchval("SELECT count(*) FROM api_keys") == 1
    issued = await db.fetchval("SELECT data::text FROM events WHERE event_type = 'ApiKeyIssued'")
    assert set(json.loads(issued)) == {"user_id", "api_key_id", "name", "scopes", "tier"}
    # The secret part after the lookup prefix is nowhere (api_keys holds only its hash).
    # The secret is all after "cqrs_<prefix>_"; it may hold "_" itself (urlsafe base64),
    # so a split from the right could leave a fragment short enough to match by chance.
    await assert_no_secret_stored(db, key, key.split("_", 2)[2], skip=())


async def test_a_write_key_sends_ledger_commands_for_its_owner(
    client: CommandClient, db: asyncpg.Connection, alice: User
) -> None:
    """A key with ledger:write opens an account owned by its user and deposits into it, and into an
    account the user opened with a session."""
    _, key = await create_api_key(client, alice.headers, ("ledger:write",))
    by_session = await open_account(client, alice.headers)

    by_key = await open_account(client, api_key_headers(key))
    await deposit(client, api_key_headers(key), by_key, 30)
    await deposit(client, api_key_headers(key), by_session, 20)

    owner = await db.fetchval(
        "SELECT data->>'owner_id' FROM events WHERE stream_id = $1 AND version = 1", uuid.UUID(by_key)
    )
    assert owner == str(alice.user_id)
    assert (await balance_of(db, by_key), await balance_of(db, by_session)) == (30, 20)


async def test_a_read_only_key_may_not_send_commands(
    client: CommandClient, db: asyncpg.Connection, alice: User
) -> None:
    """A key with only ledger:read is a 403 insufficient-scope on open and deposit; nothing written."""
    _, key = await create_api_key(client, alice.headers, ("ledger:read",))
    account_id = await open_account(client, alice.headers)
    before = await table_counts(db)

    opened = await client.post(
        "/v1/accounts", json={"currency": "EUR", "name": "x"}, headers=api_key_headers(key)
    )
    deposited = await client.post(
        f"/v1/accounts/{account_id}/deposits",
        json={"amount": 5, "reference": "x"},
        headers=api_key_headers(key),
    )

    assert_problem(opened, 403, "/problems/insufficient-scope")
    assert_problem(deposited, 403, "/problems/insufficient-scope")
    assert await table_counts(db) == before


async def test_a_revoked_key_is_refused_at_once(
    client: CommandClient, db: asyncpg.Connection, alice: User
) -> None:
    """Revoking a key is a 204 with an ApiKeyRevoked event; the very next request with it is a 401 with
    a challenge, and revoking it again is still a 204."""
    api_key_id, key = await create_api_key(client, alice.headers)
    await open_account(client, api_key_headers(key))

    response = await client.delete(f"/v1/api-keys/{api_key_id}", headers=alice.headers)

    assert response.status_code == 204, response.text
    refused = await client.post(
        "/v1/accounts", json={"currency": "EUR", "name": "x"}, headers=api_key_headers(key)
    )
    assert_problem(refused, 401)
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert await db.fetchval("SELECT count(*) FROM events WHERE event_type = 'ApiKeyRevoked'") == 1
    again = await client.delete(f"/v1/api-keys/{api_key_id}", headers=alice.headers)
    assert again.status_code == 204, again.text


async def test_revoking_another_users_key_is_404(
    client: CommandClient, db: asyncpg.Connection, alice: User, bob: User
) -> None:
    """Bob deleting alice's key id gets the same 404 as for an id nobody has; her key still works."""
    api_key_id, key = await create_api_key(client, alice.headers)
    before = await table_counts(db)

    others = await client.delete(f"/v1/api-keys/{api_key_id}", headers=bob.headers)
    unknown = await client.delete(f"/v1/api-keys/{uuid.uuid4()}", headers=bob.headers)

    assert_problem(others, 404)
    assert_problem(unknown, 404)
    assert others.json() == unknown.json()
    assert await table_counts(db) == before
    await open_account(client, api_key_headers(key))


async def test_an_api_key_may_not_manage_keys_or_roles(
    client: CommandClient, db: asyncpg.Connection, alice: User, admin: User
) -> None:
    """Even an admin's key (ledger:write) is a 403 on creating a key, revoking one and granting a role:
    identity work needs a login session."""
    api_key_id, key = await create_api_key(client, admin.headers)
    before = await table_counts(db)
    headers = api_key_headers(key)

    responses = [
        await client.post("/v1/api-keys", json={"name": "more", "scopes": ["ledger:write"]}, headers=headers),
        await client.delete(f"/v1/api-keys/{api_key_id}", headers=headers),
        await client.post(f"/v1/users/{alice.user_id}/roles", json={"role": "admin"}, headers=headers),
        await client.delete(f"/v1/users/{alice.user_id}/roles/user", headers=headers),
    ]

    for response in responses:
        assert_problem(response, 403)
    assert await table_counts(db) == before


async def test_a_bad_key_or_scope_is_refused(
    client: CommandClient, db: asyncpg.Connection, alice: User
) -> None:
    """A malformed key and a well-formed key nobody issued are 401s; asking for an unknown scope is a
    422; nothing is written."""
    before = await table_counts(db)
    forged = "cqrs_0123456789ab_" + "A" * 43

    for key in ("not-a-key", forged):
        response = await client.post(
            "/v1/accounts", json={"currency": "EUR", "name": "x"}, headers=api_key_headers(key)
        )
        assert_problem(response, 401)
    scoped = await client.post("/v1/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=alice.headers)

    assert_problem(scoped, 422, "/problems/unknown-scope")
    assert await table_counts(db) == before


async def test_a_key_cannot_act_on_another_users_account(
    client: CommandClient, db: asyncpg.Connection, alice: User, bob: User
) -> None:
    """Bob's ledger:write key depositing into, withdrawing from or closing alice's account gets the 404
    of a missing account each time; nothing changes."""
    account_id = await open_account(client, alice.headers)
    await deposit(client, alice.headers, account_id, 100)
    _, key = await create_api_key(client, bob.headers)
    before = await table_counts(db)
    commands: list[tuple[str, dict[str, object] | None]] = [
        ("deposits", {"amount": 10, "reference": "x"}),
        ("withdrawals", {"amount": 10, "reference": "x"}),
        ("close", None),
    ]

    for path, body in commands:
        response = await client.post(
            f"/v1/accounts/{account_id}/{path}", json=body, headers=api_key_headers(key)
        )
        problem = assert_problem(response, 404)
        assert account_id not in problem["detail"]

    assert await table_counts(db) == before
    assert await balance_of(db, account_id) == 100
