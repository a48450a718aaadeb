"""Success bodies of the identity routes."""

from __future__ import annotations

from uuid import UUID

import msgspec


class UserRegisteredAnswer(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    version: int
    consistency_token: str


class TokenPair(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 6749 §5.1 names: an access token, how long it lives, and the refresh token to renew it."""

    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class ApiKeyCreatedAnswer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    api_key_id: UUID
    name: str
    scopes: tuple[str, ...]
    version: int
    consistency_token: str
    # Shown once: a replay of the creating request answers without it.
    key: str | None = None


class RolesAnswer(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    roles: tuple[str, ...]
    version: int | None
    consistency_token: str
