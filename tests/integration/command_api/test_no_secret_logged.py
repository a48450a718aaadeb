"""No secret is ever logged: every log line of a whole auth flow, scanned for the secrets it handled."""

from __future__ import annotations

import logging
import uuid

import pytest
import structlog

from tests.integration.command_api.conftest import PASSWORD, CommandClient, log_in
from tests.integration.command_api.identity_helpers import create_api_key

NEW_PASSWORD = "a quieter ocean of violet lanterns 9"  # noqa: S105 - a test password
WRONG_PASSWORD = "not the password at all 123"  # noqa: S105 - a test password


async def test_an_auth_flow_logs_no_password_token_or_key(
    client: CommandClient, caplog: pytest.LogCaptureFixture
) -> None:
    email = f"secret-{uuid.uuid4().hex[:8]}@example.com"
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as lines:
        registered = await client.post(
            "/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": "S"}
        )
        assert registered.status_code == 201, registered.text
        wrong = await client.post("/v1/auth/login", json={"email": email, "password": WRONG_PASSWORD})
        assert wrong.status_code == 401
        user = await log_in(client, email)
        refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
        assert refreshed.status_code == 200
        pair = refreshed.json()
        _, api_key = await create_api_key(client, user.headers)
        changed = await client.post(
            "/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers={"Authorization": f"Bearer {pair['access_token']}"},
        )
        assert changed.status_code == 204, changed.text
        # A spent refresh token again: the reuse alarm logs, and must not log the token.
        reused = await client.post("/v1/auth/refresh", json={"refresh_token": user.refresh_token})
        assert reused.status_code == 401

    logged = "\n".join(str(line) for line in lines) + "\n" + caplog.text
    assert len(lines) >= 7  # at least one line per request: the scan saw the flow
    secrets = {
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "new password": NEW_PASSWORD,
        "access token": user.headers["Authorization"].removeprefix("Bearer "),
        "refreshed access token": pair["access_token"],
        "refresh token": user.refresh_token,
        "rotated refresh token": pair["refresh_token"],
        "api key": api_key,
    }
    for what, secret in secrets.items():
        assert secret not in logged, f"the {what} was logged"
        # Nor a recognisable piece of it (a token's signature, a key's secret half).
        assert secret[-16:] not in logged, f"the end of the {what} was logged"
