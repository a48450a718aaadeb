"""Signing-key rotation as docs/operations.md describes it, and HS256 only as an explicit setting.

Phases, each a freshly built app on the same database (as a rolling restart would give):

0. key A signs;
1. A signs, and every API also has B in CQRS_JWT_PUBLIC_KEYS (B verifies before it signs);
2. B signs, and A stays in CQRS_JWT_PUBLIC_KEYS until the longest token A signed has expired;
3. A is gone: its tokens are refused.

Tokens come from real logins wherever the API can issue them; only "a token B signed while A
still signs" (phase 1) has to be forged, since no API signs with B yet.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import Litestar

from command_api.settings import CommandApiSettings
from query_api.app import create_app as create_query_app
from query_api.settings import QueryApiSettings
from shared.auth.keys import thumbprint
from shared.auth.tokens import InvalidToken
from shared.http.app_factory import token_verifier
from shared.http.jwks import JWKS_CACHE_SECONDS, JWKS_PATH
from shared.settings import SettingsError, load_settings
from tests.integration.command_api.conftest import (
    User,
    assert_problem,
    command_client,
    log_in,
    register,
)
from tests.support.tokens import bearer, mint

OPEN_ACCOUNT = {"currency": "EUR", "name": "rotation"}
HS256_SECRET = "0123456789abcdef0123456789abcdef"  # noqa: S105 - exactly 32 bytes, a test value


@dataclass(frozen=True, slots=True)
class Key:
    private_pem: str
    public_pem: str
    kid: str


def _new_key() -> Key:
    """A fresh Ed25519 key, as `openssl genpkey -algorithm ed25519` would make."""
    private = Ed25519PrivateKey.generate()
    return Key(
        private_pem=private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        public_pem=private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        kid=thumbprint(private.public_key()),
    )


def _phase(base: Mapping[str, str], *, signs: Key, verifies: tuple[Key, ...] = ()) -> dict[str, str]:
    """The environment of one phase: the key that signs, and the public keys that only verify."""
    environment = {**base, "CQRS_JWT_PRIVATE_KEY": signs.private_pem}
    if verifies:
        environment["CQRS_JWT_PUBLIC_KEYS"] = "".join(key.public_pem for key in verifies)
    return environment


def _kid(token: str) -> str:
    kid = jwt.get_unverified_header(token)["kid"]
    assert isinstance(kid, str)
    return kid


async def _opens_account(client: httpx.AsyncClient, token: str) -> int:
    """The status of `POST /v1/accounts` with this token: 201 when it verifies."""
    response = await client.post("/v1/accounts", json=OPEN_ACCOUNT, headers=bearer(token))
    return response.status_code


async def _jwks(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get(JWKS_PATH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    assert response.headers["cache-control"] == f"public, max-age={JWKS_CACHE_SECONDS}"
    keys: list[dict[str, Any]] = response.json()["keys"]
    for jwk in keys:
        assert "d" not in jwk, "a private member was published"
    return keys


def _token(user: User) -> str:
    return user.headers["Authorization"].removeprefix("Bearer ")


async def test_a_new_key_verifies_before_it_signs(service_environment: dict[str, str]) -> None:
    """Phase 1: B published, A still signing: logins still get A tokens, and A and B tokens both verify.

    In phase 0 a token B signed is refused: B is not known before it is published.
    """
    a, b = _new_key(), _new_key()
    async with command_client(_phase(service_environment, signs=a)) as phase0:
        alice = await register(phase0, display_name="Alice")
        by_b = mint(alice.user_id, key=b.private_pem, headers={"kid": b.kid})
        assert _kid(_token(alice)) == a.kid
        assert [jwk["kid"] for jwk in await _jwks(phase0)] == [a.kid]
        refused = await phase0.post("/v1/accounts", json=OPEN_ACCOUNT, headers=bearer(by_b))
        assert_problem(refused, 401)

    async with command_client(_phase(service_environment, signs=a, verifies=(b,))) as phase1:
        again = await log_in(phase1, alice.email)
        assert [jwk["kid"] for jwk in await _jwks(phase1)] == [a.kid, b.kid]
        assert _kid(_token(again)) == a.kid
        assert await _opens_account(phase1, _token(alice)) == 201
        assert await _opens_account(phase1, by_b) == 201


async def test_the_old_key_verifies_until_it_is_dropped(service_environment: dict[str, str]) -> None:
    """Phase 2: B signs, a phase-0 login token still works and the JWKS lists both; phase 3 refuses it.

    The phase-0 refresh token also survives the rotation: refreshing in phase 2 yields a B token.
    """
    a, b = _new_key(), _new_key()
    async with command_client(_phase(service_environment, signs=a)) as phase0:
        alice = await register(phase0, display_name="Alice")
        published_a = await _jwks(phase0)

    async with command_client(_phase(service_environment, signs=b, verifies=(a,))) as phase2:
        jwks = await _jwks(phase2)
        assert {jwk["kid"] for jwk in jwks} == {a.kid, b.kid}
        assert [jwk for jwk in jwks if jwk["kid"] == a.kid] == published_a
        assert await _opens_account(phase2, _token(alice)) == 201
        again = await log_in(phase2, alice.email)
        assert _kid(_token(again)) == b.kid
        assert await _opens_account(phase2, _token(again)) == 201
        refreshed = await phase2.post("/v1/auth/refresh", json={"refresh_token": alice.refresh_token})
        assert refreshed.status_code == 200, refreshed.text
        assert _kid(refreshed.json()["access_token"]) == b.kid

    async with command_client(_phase(service_environment, signs=b)) as phase3:
        assert [jwk["kid"] for jwk in await _jwks(phase3)] == [b.kid]
        response = await phase3.post("/v1/accounts", json=OPEN_ACCOUNT, headers=alice.headers)
        assert_problem(response, 401)
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        assert await _opens_account(phase3, _token(again)) == 201


@contextlib.asynccontextmanager
async def _query_client(environment: Mapping[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """The query API built from this environment, its lifespan run, behind an in-process client."""
    app = create_query_app(load_settings(QueryApiSettings, environment))
    litestar_app = app.app
    assert isinstance(litestar_app, Litestar)
    asgi: Any = app  # litestar's narrower ASGI types do not unify with httpx's
    async with (
        litestar_app.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://testserver") as client,
    ):
        yield client


async def test_a_query_api_with_public_keys_only_serves_and_verifies_them(
    service_environment: dict[str, str],
) -> None:
    """A query API given only CQRS_JWT_PUBLIC_KEYS (A and B) serves the command API's phase-2 JWKS.

    It verifies the tokens of both keys, from real logins, and knows no other key: not the
    development key its test profile would otherwise fall back to.
    """
    a, b = _new_key(), _new_key()
    async with command_client(_phase(service_environment, signs=a)) as phase0:
        alice = await register(phase0, display_name="Alice")
    async with command_client(_phase(service_environment, signs=b, verifies=(a,))) as phase2:
        command_jwks = await _jwks(phase2)
        by_b = await log_in(phase2, alice.email)
    query_environment = {**service_environment, "CQRS_JWT_PUBLIC_KEYS": a.public_pem + b.public_pem}
    settings = load_settings(QueryApiSettings, query_environment)

    async with _query_client(query_environment) as query:
        query_jwks = await _jwks(query)

    def by_kid(jwk: dict[str, Any]) -> str:
        return str(jwk["kid"])

    assert sorted(query_jwks, key=by_kid) == sorted(command_jwks, key=by_kid)
    assert settings.signing_key is None
    verifier = token_verifier(settings, settings.key_set)
    assert verifier.verify(_token(alice)).user_id == alice.user_id
    assert verifier.verify(_token(by_b)).user_id == alice.user_id
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(mint(alice.user_id))


async def test_hs256_is_an_explicit_setting_with_an_empty_jwks(
    client: httpx.AsyncClient, service_environment: dict[str, str]
) -> None:
    """With CQRS_JWT_ALGORITHM=HS256 and a 32-byte secret, logins get HS256 tokens that work there.

    That API publishes no key (its JWKS is empty), and the default EdDSA API refuses its tokens.
    """
    hs256 = {**service_environment, "CQRS_JWT_ALGORITHM": "HS256", "CQRS_JWT_PRIVATE_KEY": HS256_SECRET}
    async with command_client(hs256) as shared_secret:
        alice = await register(shared_secret, display_name="Alice")
        header = jwt.get_unverified_header(_token(alice))
        assert (header["alg"], header["kid"]) == ("HS256", "hs256")
        assert await _jwks(shared_secret) == []
        assert await _opens_account(shared_secret, _token(alice)) == 201

    response = await client.post("/v1/accounts", json=OPEN_ACCOUNT, headers=alice.headers)

    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"CQRS_JWT_PRIVATE_KEY": HS256_SECRET}, "not an unencrypted PEM private key", id="implicit"
        ),
        pytest.param(
            {"CQRS_JWT_ALGORITHM": "HS256", "CQRS_JWT_PRIVATE_KEY": HS256_SECRET[:31]},
            "at least 32 bytes",
            id="short-secret",
        ),
    ],
)
async def test_an_hs256_secret_is_refused_unless_explicit_and_long_enough(
    service_environment: dict[str, str], changes: dict[str, str], message: str
) -> None:
    """A shared secret without CQRS_JWT_ALGORITHM=HS256, or under 32 bytes, stops the command API at start."""
    with pytest.raises(SettingsError, match=message) as refused:
        async with command_client({**service_environment, **changes}):
            pass

    assert HS256_SECRET[:8] not in str(refused.value)


def test_every_phase_of_the_documented_rotation_is_a_valid_configuration() -> None:
    """The env vars docs/operations.md gives for each phase load, on the command and on the query API."""
    base = {
        "CQRS_PROFILE": "prod",
        "CQRS_DATABASE_URL": "postgresql://db.internal:5432/cqrs",
        "CQRS_NATS_URLS": "nats://n1:4222",
        "CQRS_REDIS_URL": "redis://cache:6379/0",
    }
    a, b = _new_key(), _new_key()
    phases = [
        ({a.kid}, _phase(base, signs=a)),
        ({a.kid, b.kid}, _phase(base, signs=a, verifies=(b,))),
        ({a.kid, b.kid}, _phase(base, signs=b, verifies=(a,))),
        ({b.kid}, _phase(base, signs=b)),
    ]

    for kids, environment in phases:
        command = load_settings(CommandApiSettings, environment)
        query = load_settings(QueryApiSettings, {**environment, "CQRS_CURSOR_SECRET": "q" * 32})
        assert set(command.key_set.verification) == kids
        assert set(query.key_set.verification) == kids
        assert {jwk["kid"] for jwk in command.key_set.jwks()["keys"]} == kids
