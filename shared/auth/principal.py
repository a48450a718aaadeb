"""Who is acting: the verified identity behind a request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from uuid import UUID

ADMIN_ROLE: Final = "admin"
LEDGER_READ: Final = "ledger:read"
LEDGER_WRITE: Final = "ledger:write"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: UUID
    roles: frozenset[str]
    tier: str = "free"
    # None for a login session (an access token), which may do all its user may;
    # an API key's scopes otherwise.
    scopes: frozenset[str] | None = None
    api_key_id: UUID | None = None

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    # What idempotency keys, rate limits and caches are scoped by; computed once, since a
    # verified token's principal is kept and every request of it asks (a UUID's str costs).
    scope_key: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        key = f"user:{self.user_id}" if self.api_key_id is None else f"key:{self.api_key_id}"
        object.__setattr__(self, "scope_key", key)

    def allows(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes

    def may_act_for(self, owner_id: UUID) -> bool:
        return self.is_admin or owner_id == self.user_id
