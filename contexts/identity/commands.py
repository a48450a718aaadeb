"""Identity commands as the decider sees them: every id and the acting user given."""

from __future__ import annotations

from uuid import UUID

import msgspec


class RegisterUser(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    email: str
    display_name: str


class GrantRole(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    role: str
    by: UUID | None = None


class RevokeRole(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    role: str
    by: UUID | None = None


class IssueApiKey(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    api_key_id: UUID
    name: str
    scopes: tuple[str, ...]
    # The rate-limit tier of the session that asks: the key is limited by it.
    tier: str = "free"


class RevokeApiKey(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    api_key_id: UUID


UserCommand = RegisterUser | GrantRole | RevokeRole | IssueApiKey | RevokeApiKey
