"""Access tokens forged by the tests, for attacks on verification (real tokens come from login)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from shared.auth.keys import load_key_set
from shared.settings.dev_keys import DEV_JWT_PRIVATE_KEY

ISSUER = "cqrs-platform"
AUDIENCE = "cqrs-api"
DEV_KID = next(iter(load_key_set("EdDSA", DEV_JWT_PRIVATE_KEY, None).verification))


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
        claims, key, algorithm=algorithm, headers={"typ": "at+jwt", "kid": DEV_KID, **(headers or {})}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
