"""Identity events: the public contract of the identity context (contract.md).

No secret is ever in one: password hashes, refresh tokens and API key hashes
live in write-side tables only.
"""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

import msgspec


class IdentityEvent(msgspec.Struct, frozen=True, kw_only=True):
    event_type: ClassVar[str]
    schema_version: ClassVar[int]
    user_id: UUID


class UserRegistered(IdentityEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "UserRegistered"
    schema_version: ClassVar[int] = 1
    email: str
    display_name: str


class UserRoleGranted(IdentityEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "UserRoleGranted"
    schema_version: ClassVar[int] = 1
    role: str
    granted_by: UUID | None = None


class UserRoleRevoked(IdentityEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "UserRoleRevoked"
    schema_version: ClassVar[int] = 1
    role: str
    revoked_by: UUID | None = None


class ApiKeyIssued(IdentityEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ApiKeyIssued"
    schema_version: ClassVar[int] = 1
    api_key_id: UUID
    name: str
    scopes: tuple[str, ...]


class ApiKeyRevoked(IdentityEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "ApiKeyRevoked"
    schema_version: ClassVar[int] = 1
    api_key_id: UUID


UserEvent = UserRegistered | UserRoleGranted | UserRoleRevoked | ApiKeyIssued | ApiKeyRevoked

EVENT_TYPES: tuple[type[IdentityEvent], ...] = (
    UserRegistered,
    UserRoleGranted,
    UserRoleRevoked,
    ApiKeyIssued,
    ApiKeyRevoked,
)
CONTEXT = "identity"
AGGREGATE = "user"
