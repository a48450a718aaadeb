"""Identity events: the public contract of the identity context (contract.md).

No secret is ever in one: password hashes, refresh tokens and API key hashes
live in write-side tables only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar
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
    # v2: the key's rate-limit tier, the tier of the session that issued it.
    schema_version: ClassVar[int] = 2
    api_key_id: UUID
    name: str
    scopes: tuple[str, ...]
    tier: str


def api_key_issued_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Keys issued before tiers existed were all limited as free."""
    return {**payload, "tier": "free"}


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
# (event type, from version) -> the function that turns that version's payload into the next.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("ApiKeyIssued", 1): api_key_issued_v1_to_v2,
}
CONTEXT = "identity"
AGGREGATE = "user"
