"""Access tokens minted by the tests, signed with the development key (login comes later)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from shared.settings.dev_keys import DEV_JWT_PRIVATE_KEY

ISSUER = "cqrs-platform"
AUDIENCE = "cqrs-api"


def mint(
    user_id: uuid.UUID | None = None,
    *,
    roles: tuple[str, ...] = ("user",),
    tier: str = "free",
    expires_in: int = 900,
    key: str = DEV_JWT_PRIVATE_KEY,
    algorithm: str = "EdDSA",
    overrides: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id or uuid.uuid4()),
        "iat": now,
        "exp": now + expires_in,
        "jti": uuid.uuid4().hex,
        "roles": list(roles),
        "tier": tier,
        **(overrides or {}),
    }
    return jwt.encode(
        claims, key, algorithm=algorithm, headers={"typ": "at+jwt", "kid": "dev", **(headers or {})}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
