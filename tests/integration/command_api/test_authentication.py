"""Who may send commands: access tokens are verified strictly, and accounts belong to their owners."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.integration.command_api.conftest import (
    User,
    assert_problem,
    balance_of,
    deposit,
    open_account,
    stream_events,
    table_counts,
    transfer,
    withdraw,
)
from tests.support.tokens import bearer, mint

DEPOSIT_BODY = {"amount": 10, "reference": "x"}


def _other_ed25519_key() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


def _unsigned(user_id: uuid.UUID) -> str:
    """A token with `alg: none` and no signature, claims otherwise valid."""
    signed = mint(user_id)
    _, payload, _ = signed.split(".")
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "at+jwt"}).encode()).rstrip(b"=")
    return f"{header.decode()}.{payload}."


# Each forgery differs from a good token in one respect; all are made for a registered user's id,
# so a 401 is never owed to an unknown subject.
BAD_TOKENS: dict[str, Callable[[uuid.UUID], str]] = {
    "expired": lambda user_id: mint(user_id, expires_in=-3600),
    "wrong-audience": lambda user_id: mint(user_id, overrides={"aud": "someone-else"}),
    "wrong-issuer": lambda user_id: mint(user_id, overrides={"iss": "https://evil.example"}),
    "hs256": lambda user_id: mint(user_id, key="a-shared-secret-of-thirty-two-bytes!", algorithm="HS256"),
    "no-typ": lambda user_id: mint(user_id, headers={"typ": None}),
    "plain-jwt-typ": lambda user_id: mint(user_id, headers={"typ": "JWT"}),
    "other-ed25519-key": lambda user_id: mint(user_id, key=_other_ed25519_key()),
    "no-subject": lambda user_id: mint(user_id, overrides={"sub": None}),
    "alg-none": _unsigned,
    "not-yet-valid": lambda user_id: mint(user_id, overrides={"nbf": int(time.time()) + 3600}),
    "garbage": lambda _: "not.a.jwt",
}


async def test_no_authorization_is_401_with_a_challenge(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A command without credentials is a 401 problem with a WWW-Authenticate challenge; nothing stored."""
    before = await table_counts(db)

    response = await client.post("/v1/accounts", json={"currency": "EUR", "name": "anon"})

    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert await table_counts(db) == before


async def test_a_non_bearer_scheme_is_401(client: httpx.AsyncClient) -> None:
    """Basic credentials instead of a bearer token are a 401 with a challenge."""
    response = await client.post(
        "/v1/accounts", json={"currency": "EUR", "name": "x"}, headers={"Authorization": "Basic dXNlcjpwYXNz"}
    )

    assert_problem(response, 401)
    assert "www-authenticate" in response.headers


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_a_bad_token_is_401(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, case: str
) -> None:
    """An expired, foreign (audience, issuer, key), HS256 or non-access token is a 401, storing nothing."""
    token = BAD_TOKENS[case](alice.user_id)
    before = await table_counts(db)

    response = await client.post("/v1/accounts", json={"currency": "EUR", "name": "x"}, headers=bearer(token))

    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert await table_counts(db) == before


async def test_a_well_formed_token_is_accepted(client: httpx.AsyncClient, alice: User) -> None:
    """The control for the cases above: the token from login, and the same minting with nothing wrong."""
    from_login = await client.post(
        "/v1/accounts", json={"currency": "EUR", "name": "x"}, headers=alice.headers
    )
    minted = await client.post(
        "/v1/accounts", json={"currency": "EUR", "name": "y"}, headers=bearer(mint(alice.user_id))
    )

    assert from_login.status_code == 201, from_login.text
    assert minted.status_code == 201, minted.text


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(("deposits", DEPOSIT_BODY), id="deposit"),
        pytest.param(("withdrawals", DEPOSIT_BODY), id="withdraw"),
        pytest.param(("close", None), id="close"),
    ],
)
async def test_acting_on_another_users_account_is_404(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    alice: User,
    bob: User,
    command: tuple[str, dict[str, object] | None],
) -> None:
    """Bob depositing into, withdrawing from or closing alice's account gets a missing account's 404."""
    path, body = command
    account_id = await open_account(client, alice.headers)
    await deposit(client, alice.headers, account_id, 100)
    before = await table_counts(db)

    response = await client.post(f"/v1/accounts/{account_id}/{path}", json=body, headers=bob.headers)
    missing = await client.post(f"/v1/accounts/{uuid.uuid4()}/{path}", json=body, headers=bob.headers)

    problem = assert_problem(response, 404)
    assert account_id not in problem["detail"]
    assert (problem["type"], problem["title"]) == (missing.json()["type"], missing.json()["title"])
    assert await table_counts(db) == before
    assert await balance_of(db, account_id) == 100


async def test_transferring_from_another_users_account_is_404(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, bob: User
) -> None:
    """Bob cannot transfer out of alice's account into his own: 404 and no money moves."""
    alices = await open_account(client, alice.headers)
    bobs = await open_account(client, bob.headers)
    await deposit(client, alice.headers, alices, 100)
    before = await table_counts(db)

    response = await transfer(client, bob.headers, alices, bobs, 50)

    assert_problem(response, 404)
    assert await table_counts(db) == before
    assert (await balance_of(db, alices), await balance_of(db, bobs)) == (100, 0)


async def test_transferring_to_another_users_account_is_allowed(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, bob: User
) -> None:
    """Alice may pay into bob's account: the transfer is a 201 and bob's balance grows."""
    alices = await open_account(client, alice.headers)
    bobs = await open_account(client, bob.headers)
    await deposit(client, alice.headers, alices, 100)

    response = await transfer(client, alice.headers, alices, bobs, 40)

    assert response.status_code == 201, response.text
    assert (await balance_of(db, alices), await balance_of(db, bobs)) == (60, 40)


async def test_an_admin_may_deposit_into_any_account(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, admin: User
) -> None:
    """A logged-in admin deposits into alice's account: 201, and the event lands on her stream."""
    account_id = await open_account(client, alice.headers)

    response = await client.post(
        f"/v1/accounts/{account_id}/deposits", json=DEPOSIT_BODY, headers=admin.headers
    )

    assert response.status_code == 201, response.text
    assert await balance_of(db, account_id) == 10
    assert [row["event_type"] for row in await stream_events(db, account_id)] == [
        "AccountOpened",
        "MoneyDeposited",
    ]


async def test_a_plain_user_role_is_not_admin(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, bob: User
) -> None:
    """A role merely named like a privilege ("admins") grants nothing: 404 on alice's account."""
    account_id = await open_account(client, alice.headers)
    await deposit(client, alice.headers, account_id, 100)
    # Forged with the signing key for bob: no real user can be given a role outside ROLES.
    impostor = bearer(mint(bob.user_id, roles=("user", "admins")))
    before = await table_counts(db)

    response = await withdraw(client, impostor, account_id, 1)

    assert_problem(response, 404)
    assert await table_counts(db) == before
    assert await balance_of(db, account_id) == 100
