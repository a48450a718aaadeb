"""Who is acting: the verified identity behind a request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID

ADMIN_ROLE: Final = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: UUID
    roles: frozenset[str]
    tier: str = "free"

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    @property
    def scope_key(self) -> str:
        """What idempotency keys, rate limits and caches are scoped by."""
        return f"user:{self.user_id}"

    def may_act_for(self, owner_id: UUID) -> bool:
        return self.is_admin or owner_id == self.user_id
