"""GET /v1/users/me from the `users` projection; the query API authenticates like the command API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.command_api.conftest import CommandClient, register
from tests.integration.query_api.ledger_helpers import projected, projecting
from tests.support.tokens import bearer, mint


@pytest.fixture
async def users_projected(service_environment: dict[str, str]) -> AsyncIterator[None]:
    async with projecting(service_environment, "users"):
        yield


@pytest.mark.usefixtures("users_projected")
async def test_me_with_an_access_token(
    commands: CommandClient, queries: httpx.AsyncClient, database_url: str
) -> None:
    """A token from the command API's login reads the caller's own user, as the projection holds it."""
    user = await register(commands, email="Carol@Example.com", display_name="Carol")
    await projected(database_url, "users", {str(user.user_id): 1})

    response = await queries.get("/v1/users/me", headers=user.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == str(user.user_id)
    assert body["email"] == "carol@example.com"
    assert body["display_name"] == "Carol"
    assert body["roles"] == ["user"]
    assert body["created_at"]
    assert response.headers["cache-control"] == "private, no-cache"
    assert response.headers["etag"]


async def test_me_is_404_until_the_projection_holds_the_user(
    commands: CommandClient, queries: httpx.AsyncClient
) -> None:
    """Without the users projection running, a fresh user is not in the read model yet."""
    user = await register(commands)

    response = await queries.get("/v1/users/me", headers=user.headers)

    assert response.status_code == 404, response.text


@pytest.mark.usefixtures("users_projected")
async def test_me_with_an_api_key_until_it_is_revoked(
    commands: CommandClient, queries: httpx.AsyncClient, database_url: str
) -> None:
    """X-API-Key is accepted by the query API, and refused there at once after its revocation."""
    user = await register(commands)
    await projected(database_url, "users", {str(user.user_id): 1})
    created = await commands.post(
        "/v1/api-keys", json={"name": "reader", "scopes": ["ledger:read"]}, headers=user.headers
    )
    assert created.status_code == 201, created.text
    key = {"X-API-Key": created.json()["key"]}

    before = await queries.get("/v1/users/me", headers=key)
    revoked = await commands.delete(f"/v1/api-keys/{created.json()['api_key_id']}", headers=user.headers)
    after = await queries.get("/v1/users/me", headers=key)

    assert before.status_code == 200, before.text
    assert before.json()["user_id"] == str(user.user_id)
    assert revoked.status_code == 204, revoked.text
    assert after.status_code == 401
    assert "www-authenticate" in after.headers


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer(mint(expires_in=-3600)),
        {"X-API-Key": "cqrs_0123456789ab_" + "A" * 43},
        {"X-API-Key": "nope"},
    ],
    ids=["none", "expired-token", "unknown-key", "malformed-key"],
)
async def test_me_without_valid_credentials_is_401(
    queries: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """Missing, expired or unknown credentials get 401 with a WWW-Authenticate challenge."""
    response = await queries.get("/v1/users/me", headers=headers)

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"].startswith("application/problem+json")
