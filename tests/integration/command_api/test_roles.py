"""POST /v1/users/{id}/roles and DELETE /v1/users/{id}/roles/{role}: only admins change roles."""

from __future__ import annotations

import json
import uuid

import asyncpg

from tests.integration.command_api.conftest import (
    CommandClient,
    User,
    assert_problem,
    log_in,
    open_account,
    table_counts,
)
from tests.integration.command_api.identity_helpers import event_types, roles_of


def _roles_of(user: User) -> list[str]:
    return roles_of(user.headers["Authorization"].removeprefix("Bearer "))


async def test_an_admin_grants_a_role_that_the_next_login_carries(
    client: CommandClient, db: asyncpg.Connection, alice: User, admin: User
) -> None:
    """An admin's grant is a 200 with the user's roles; a UserRoleGranted event names the admin;
    alice's existing token keeps its roles, a fresh login's token carries the new one."""
    response = await client.post(
        f"/v1/users/{alice.user_id}/roles", json={"role": "admin"}, headers=admin.headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == str(alice.user_id)
    assert body["roles"] == ["admin", "user"]
    assert body["version"] == 2
    assert response.headers["consistency-token"] == body["consistency_token"]
    assert await event_types(db, alice.user_id) == ["UserRegistered", "UserRoleGranted"]
    data = json.loads(
        await db.fetchval(
            "SELECT data::text FROM events WHERE stream_id = $1 AND event_type = 'UserRoleGranted'",
            alice.user_id,
        )
    )
    assert (data["role"], data["granted_by"]) == ("admin", str(admin.user_id))
    assert _roles_of(alice) == ["user"]
    assert _roles_of(await log_in(client, alice.email)) == ["admin", "user"]


async def test_an_admin_revokes_a_role_and_the_next_login_lacks_it(
    client: CommandClient, db: asyncpg.Connection, alice: User, admin: User
) -> None:
    """Granting and then revoking (DELETE) a role is a 200 each; the revoke answers the remaining
    roles, records UserRoleRevoked, and alice's next token no longer carries the role."""
    granted = await client.post(
        f"/v1/users/{alice.user_id}/roles", json={"role": "admin"}, headers=admin.headers
    )
    assert granted.status_code == 200, granted.text

    response = await client.delete(f"/v1/users/{alice.user_id}/roles/admin", headers=admin.headers)

    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["user"]
    assert await event_types(db, alice.user_id) == ["UserRegistered", "UserRoleGranted", "UserRoleRevoked"]
    assert _roles_of(await log_in(client, alice.email)) == ["user"]


async def test_a_plain_user_may_not_change_roles(
    client: CommandClient, db: asyncpg.Connection, alice: User, bob: User
) -> None:
    """Alice granting herself or bob admin, or revoking bob's role, is a 403; nothing is written and
    her next login still carries only `user`."""
    before = await table_counts(db)

    responses = [
        await client.post(f"/v1/users/{alice.user_id}/roles", json={"role": "admin"}, headers=alice.headers),
        await client.post(f"/v1/users/{bob.user_id}/roles", json={"role": "admin"}, headers=alice.headers),
        await client.delete(f"/v1/users/{bob.user_id}/roles/user", headers=alice.headers),
    ]

    for response in responses:
        assert_problem(response, 403)
    assert await table_counts(db) == before
    assert _roles_of(await log_in(client, alice.email)) == ["user"]


async def test_granting_to_an_unknown_user_is_404(
    client: CommandClient, db: asyncpg.Connection, alice: User, admin: User
) -> None:
    """A grant to an id that is no user (a random id, or an account's id) is a 404; nothing written."""
    account_id = await open_account(client, alice.headers)
    before = await table_counts(db)

    for target in (str(uuid.uuid4()), account_id):
        response = await client.post(
            f"/v1/users/{target}/roles", json={"role": "admin"}, headers=admin.headers
        )
        assert_problem(response, 404)
    revoke = await client.delete(f"/v1/users/{uuid.uuid4()}/roles/admin", headers=admin.headers)
    assert_problem(revoke, 404)
    assert await table_counts(db) == before


async def test_an_unknown_role_is_422(
    client: CommandClient, db: asyncpg.Connection, alice: User, admin: User
) -> None:
    """Granting or revoking a role outside the known ones ("superuser") is a 422; nothing written."""
    before = await table_counts(db)

    grant = await client.post(
        f"/v1/users/{alice.user_id}/roles", json={"role": "superuser"}, headers=admin.headers
    )
    revoke = await client.delete(f"/v1/users/{alice.user_id}/roles/superuser", headers=admin.headers)

    assert_problem(grant, 422, "/problems/unknown-role")
    assert_problem(revoke, 422, "/problems/unknown-role")
    assert await table_counts(db) == before
