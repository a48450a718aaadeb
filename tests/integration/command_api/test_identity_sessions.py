"""Login, refresh-token rotation and its families, logout, password change and the JWKS."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import jwt
from argon2 import PasswordHasher

from command_api.settings import CommandApiSettings
from shared.settings import load_settings
from tests.integration.command_api.conftest import (
    PASSWORD,
    CommandClient,
    User,
    assert_problem,
    log_in,
    open_account,
    register,
    table_counts,
)
from tests.integration.command_api.identity_helpers import claims_of, login_response, refresh_response
from tests.support.tokens import bearer

NEW_PASSWORD = "a quieter ocean of violet lanterns 9"  # noqa: S105 - a test password


async def _assert_refused(client: CommandClient, refresh_token: str) -> None:
    response = await refresh_response(client, refresh_token)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_login_answers_a_bearer_pair_that_is_never_cached(client: CommandClient, alice: User) -> None:
    """Login is a 200 with access and refresh tokens, token_type Bearer, expires_in 900 and
    Cache-Control no-store; the access token is an at+jwt with a kid and every required claim."""
    response = await login_response(client, alice.email)

    assert response.status_code == 200, response.text
    assert "no-store" in response.headers["cache-control"]
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 900)
    assert body["refresh_token"] != alice.refresh_token
    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "EdDSA"
    assert isinstance(header["kid"], str)
    assert header["kid"]
    claims = claims_of(body["access_token"])
    assert {"iss", "aud", "sub", "exp", "iat", "jti", "roles", "tier"} <= set(claims)
    assert (claims["iss"], claims["aud"]) == ("cqrs-platform", "cqrs-api")
    assert claims["sub"] == str(alice.user_id)
    assert claims["exp"] - claims["iat"] == 900
    assert (claims["roles"], claims["tier"]) == (["user"], "free")
    # The token is good for a command.
    await open_account(client, bearer(body["access_token"]))


async def test_a_wrong_password_and_an_unknown_email_get_the_same_401(
    client: CommandClient, alice: User
) -> None:
    """A wrong password and an email nobody registered both get a 401 with a Bearer challenge and
    byte-identical problem bodies: the answer does not reveal which addresses exist."""
    wrong = await login_response(client, alice.email, "not the password at all 123")
    unknown = await login_response(client, f"nobody-{uuid.uuid4().hex}@example.com")

    for response in (wrong, unknown):
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert wrong.json() == unknown.json()


async def test_login_rehashes_a_hash_made_with_other_parameters(
    client: CommandClient, db: asyncpg.Connection, alice: User
) -> None:
    """A stored argon2 hash with older (weaker) parameters is replaced at the next successful login
    by one with the configured parameters, and the password keeps working."""
    old_hash = PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1).hash(PASSWORD)
    await db.execute(
        "UPDATE user_credentials SET password_hash = $2 WHERE user_id = $1", alice.user_id, old_hash
    )

    first = await login_response(client, alice.email)

    assert first.status_code == 200, first.text
    new_hash = await db.fetchval(
        "SELECT password_hash FROM user_credentials WHERE user_id = $1", alice.user_id
    )
    assert new_hash != old_hash
    assert "$m=19456,t=2,p=1$" in new_hash
    assert PasswordHasher().verify(new_hash, PASSWORD)
    again = await login_response(client, alice.email)
    assert again.status_code == 200, again.text
    assert (
        await db.fetchval("SELECT password_hash FROM user_credentials WHERE user_id = $1", alice.user_id)
        == new_hash
    )


async def test_refresh_rotates_the_pair_and_spends_the_old_token(client: CommandClient, alice: User) -> None:
    """A refresh is a 200 with a new access and refresh token (no-store); the new access token works,
    the old refresh token is spent, and the new one refreshes again."""
    response = await refresh_response(client, alice.refresh_token)

    assert response.status_code == 200, response.text
    assert "no-store" in response.headers["cache-control"]
    pair = response.json()
    assert pair["refresh_token"] != alice.refresh_token
    assert (pair["token_type"], pair["expires_in"]) == ("Bearer", 900)
    assert claims_of(pair["access_token"])["sub"] == str(alice.user_id)
    await open_account(client, bearer(pair["access_token"]))
    following = await refresh_response(client, pair["refresh_token"])
    assert following.status_code == 200, following.text


async def test_reusing_a_spent_token_revokes_its_whole_family(
    client: CommandClient, db: asyncpg.Connection, alice: User
) -> None:
    """Presenting a spent refresh token again is a 401 and revokes the family: the newer token of
    the same login fails afterwards too, while another login's family keeps working."""
    other_session = await log_in(client, alice.email)
    rotated = await refresh_response(client, alice.refresh_token)
    assert rotated.status_code == 200, rotated.text
    newer = rotated.json()["refresh_token"]

    await _assert_refused(client, alice.refresh_token)

    await _assert_refused(client, newer)
    reasons = await db.fetch("SELECT revoked_reason FROM refresh_families WHERE user_id = $1", alice.user_id)
    assert sorted(str(row["revoked_reason"]) for row in reasons) == ["None", "reuse"]
    assert (await refresh_response(client, other_session.refresh_token)).status_code == 200


async def test_two_concurrent_refreshes_with_one_token_succeed_once(
    client: CommandClient, alice: User
) -> None:
    """Two refreshes with the same token sent at once: exactly one 200, the other a 401."""
    responses = await asyncio.gather(*(refresh_response(client, alice.refresh_token) for _ in range(2)))

    assert client.in_flight.peak > 1, "the refreshes did not overlap"
    assert sorted(response.status_code for response in responses) == [200, 401], [r.text for r in responses]


async def test_logout_ends_the_family(client: CommandClient, alice: User) -> None:
    """Logout is a 204; the logged-out refresh token and any rotated from the same login then fail,
    and logging out with an unknown token is a 204 as well (nothing to reveal)."""
    rotated = await refresh_response(client, alice.refresh_token)
    assert rotated.status_code == 200, rotated.text
    current = rotated.json()["refresh_token"]

    response = await client.post("/v1/auth/logout", json={"refresh_token": current})

    assert response.status_code == 204, response.text
    await _assert_refused(client, current)
    unknown = await client.post("/v1/auth/logout", json={"refresh_token": "rt_" + uuid.uuid4().hex})
    assert unknown.status_code == 204, unknown.text


async def test_a_password_change_ends_every_session_of_the_user(
    client: CommandClient, db: asyncpg.Connection, alice: User, bob: User
) -> None:
    """Changing the password (bearer auth, current and new password) is a 204: both of alice's login
    families are revoked, the old password no longer logs in and the new one does; bob is untouched."""
    second = await log_in(client, alice.email)

    response = await client.post(
        "/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=alice.headers,
    )

    assert response.status_code == 204, response.text
    await _assert_refused(client, alice.refresh_token)
    await _assert_refused(client, second.refresh_token)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM refresh_families WHERE user_id = $1 AND revoked_reason = 'password-change'",
            alice.user_id,
        )
        == 2
    )
    assert_problem(await login_response(client, alice.email), 401)
    assert (await login_response(client, alice.email, NEW_PASSWORD)).status_code == 200
    assert (await refresh_response(client, bob.refresh_token)).status_code == 200


async def test_a_password_change_needs_the_current_password_and_a_strong_new_one(
    client: CommandClient, db: asyncpg.Connection, alice: User
) -> None:
    """A wrong current password is a 401 and a weak new one a 422 naming `new_password`, without
    credentials: a 401; none of them changes the hash or ends a session."""
    before = await table_counts(db)
    stored = await db.fetchval("SELECT password_hash FROM user_credentials WHERE user_id = $1", alice.user_id)

    wrong = await client.post(
        "/v1/auth/password",
        json={"current_password": "not my password at all 5", "new_password": NEW_PASSWORD},
        headers=alice.headers,
    )
    weak = await client.post(
        "/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "password1234"},
        headers=alice.headers,
    )
    anonymous = await client.post(
        "/v1/auth/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )

    assert_problem(wrong, 401)
    problem = assert_problem(weak, 422, "/problems/weak-password")
    assert [error["field"] for error in problem["errors"]] == ["new_password"]
    assert_problem(anonymous, 401)
    assert await table_counts(db) == before
    assert (
        await db.fetchval("SELECT password_hash FROM user_credentials WHERE user_id = $1", alice.user_id)
        == stored
    )
    assert (await refresh_response(client, alice.refresh_token)).status_code == 200


async def test_a_family_unused_or_older_than_allowed_expires(
    client: CommandClient, db: asyncpg.Connection, service_environment: dict[str, str]
) -> None:
    """A family last used longer ago than the idle setting, or created longer ago than the lifetime,
    refuses its token with a 401; one just inside both limits still refreshes (the control)."""
    settings = load_settings(CommandApiSettings, service_environment)
    idle = timedelta(seconds=settings.refresh_token_idle_seconds)
    lifetime = timedelta(seconds=settings.refresh_token_lifetime_seconds)
    inside, idle_too_long, too_old = await register(client), await register(client), await register(client)
    set_back = (
        "UPDATE refresh_families SET last_used_at = now() - $2::interval, created_at = now() - $3::interval"
    )
    minute = timedelta(minutes=1)
    await db.execute(set_back + " WHERE user_id = $1", inside.user_id, idle - minute, lifetime - minute)
    await db.execute(set_back + " WHERE user_id = $1", idle_too_long.user_id, idle + minute, idle + minute)
    await db.execute(set_back + " WHERE user_id = $1", too_old.user_id, minute, lifetime + minute)

    await _assert_refused(client, idle_too_long.refresh_token)
    await _assert_refused(client, too_old.refresh_token)

    assert (await refresh_response(client, inside.refresh_token)).status_code == 200


async def test_the_jwks_publishes_the_public_key_of_the_access_tokens(
    client: CommandClient, alice: User
) -> None:
    """GET /.well-known/jwks.json lists an Ed25519 OKP key whose kid is the access token's, without
    the private member `d`, and that key verifies the token."""
    response = await client.get("/.well-known/jwks.json")

    assert response.status_code == 200, response.text
    keys = response.json()["keys"]
    token = alice.headers["Authorization"].removeprefix("Bearer ")
    kid = jwt.get_unverified_header(token)["kid"]
    matching = [key for key in keys if key["kid"] == kid]
    assert len(matching) == 1, keys
    for key in keys:
        assert (key["kty"], key["crv"]) == ("OKP", "Ed25519")
        assert "d" not in key
    public = jwt.PyJWK.from_dict(matching[0])
    claims = jwt.decode(token, public.key, algorithms=["EdDSA"], audience="cqrs-api")
    assert claims["sub"] == str(alice.user_id)
