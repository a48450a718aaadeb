"""Success bodies of the identity routes."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

import msgspec

from command_api.example_values import EXAMPLE_TOKEN


class UserRegisteredAnswer(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {
        "user_id": "0192f5e1-2b3c-7d4e-8f5a-6b7c8d9e0f1a",
        "version": 1,
        "consistency_token": EXAMPLE_TOKEN,
    }

    user_id: UUID
    version: int
    consistency_token: str


class TokenPair(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 6749 §5.1 names: an access token, how long it lives, and the refresh token to renew it."""

    example: ClassVar[dict[str, Any]] = {
        "access_token": "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
        "refresh_token": "rt_Jb3kQ0xw8bT2mVnZ4pL6sR1uY9cE5hA7",
        "token_type": "Bearer",
        "expires_in": 900,
    }

    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class ApiKeyCreatedAnswer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    example: ClassVar[dict[str, Any]] = {
        "api_key_id": "0192f5e8-4d5e-7f6a-9b7c-8d9e0f1a2b3c",
        "name": "nightly export",
        "scopes": ["ledger:read"],
        "version": 3,
        "consistency_token": EXAMPLE_TOKEN,
        "key": "cqrs_k7Qx2m_9fJ3vX1pR8sT4uW6yZ0aB2cD5eF7gH9iK1lM3nO",
    }

    api_key_id: UUID
    name: str
    scopes: tuple[str, ...]
    version: int
    consistency_token: str
    # Shown once: a replay of the creating request answers without it.
    key: str | None = None


class RolesAnswer(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {
        "user_id": "0192f5e1-2b3c-7d4e-8f5a-6b7c8d9e0f1a",
        "roles": ["user", "admin"],
        "version": 2,
        "consistency_token": EXAMPLE_TOKEN,
    }

    user_id: UUID
    roles: tuple[str, ...]
    version: int | None
    consistency_token: str
