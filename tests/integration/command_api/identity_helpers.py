"""What the identity tests share: raw auth calls, API keys, token decoding and secret scans of the store."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
import httpx
import jwt

from tests.integration.command_api.conftest import PASSWORD


async def login_response(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    """POST /v1/auth/login and return the raw response (the caller judges it)."""
    return await client.post("/v1/auth/login", json={"email": email, "password": password})


async def refresh_response(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    """POST /v1/auth/refresh and return the raw response."""
    return await client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})


def claims_of(access_token: str) -> dict[str, Any]:
    """The access token's claims, unverified (the API verifies; the tests only read)."""
    claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return claims


def roles_of(access_token: str) -> list[str]:
    return list(claims_of(access_token)["roles"])


def api_key_headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def create_api_key(
    client: httpx.AsyncClient,
    headers: Mapping[str, str],
    scopes: tuple[str, ...] = ("ledger:write",),
    name: str = "ci",
) -> tuple[str, str]:
    """Create an API key; returns (api_key_id, key). Fails the test unless it is a 201."""
    response = await client.post("/v1/api-keys", json={"name": name, "scopes": list(scopes)}, headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    return str(body["api_key_id"]), str(body["key"])


async def stored_texts(db: asyncpg.Connection, *, skip: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Every row of every table of the database as text, by table (bytea columns show as hex)."""
    tables = await db.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND NOT tablename = ANY($1::text[])",
        list(skip),
    )
    texts: dict[str, list[str]] = {}
    for table in tables:
        name = table["tablename"]
        rows = await db.fetch(f'SELECT t::text AS row FROM "{name}" t')  # noqa: S608 - catalogue names
        texts[name] = [row["row"] for row in rows]
    return texts


async def assert_no_secret_stored(
    db: asyncpg.Connection, *secrets: str, skip: tuple[str, ...] = ("user_credentials",)
) -> None:
    """None of `secrets` occurs, as text or as the hex of its bytes, in any row of any table but `skip`."""
    texts = await stored_texts(db, skip=skip)
    assert texts.get("events"), "no events stored: the scan would prove nothing"
    for secret in secrets:
        assert secret, "an empty secret matches everything"
        needles = (secret, secret.encode().hex())
        leaks = [
            (table, row) for table, rows in texts.items() for row in rows if any(n in row for n in needles)
        ]
        assert not leaks, f"a secret is stored: {leaks}"


async def event_types(db: asyncpg.Connection, stream_id: uuid.UUID) -> list[str]:
    rows = await db.fetch("SELECT event_type FROM events WHERE stream_id = $1 ORDER BY version", stream_id)
    return [row["event_type"] for row in rows]
