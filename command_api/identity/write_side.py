"""The identity context's write-side rows, as side writes of its commands (never in events)."""

from __future__ import annotations

from typing import Final
from uuid import UUID

from shared.auth.api_keys import NewApiKey
from shared.eventsourcing.store import SideWrite

EMAIL_UNIQUE_PREFIX: Final = "email:"


def reserve_email(email_key: str, user_id: UUID) -> SideWrite:
    """Of two registrations of one address, the second breaks the primary key and commits nothing."""
    return SideWrite(
        "INSERT INTO email_reservations (email_key, user_id) VALUES ($1, $2)",
        (email_key, user_id),
        unique=EMAIL_UNIQUE_PREFIX + email_key,
    )


def store_credentials(user_id: UUID, password_hash: str) -> SideWrite:
    return SideWrite(
        "INSERT INTO user_credentials (user_id, password_hash) VALUES ($1, $2)", (user_id, password_hash)
    )


def store_api_key(
    api_key_id: UUID, user_id: UUID, key: NewApiKey, scopes: tuple[str, ...], tier: str
) -> SideWrite:
    return SideWrite(
        "INSERT INTO api_keys (api_key_id, user_id, lookup_prefix, key_hash, scopes, tier)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        (api_key_id, user_id, key.lookup_prefix, key.key_hash, list(scopes), tier),
        unique="api-key-prefix:" + key.lookup_prefix,
    )


def revoke_api_key(api_key_id: UUID, user_id: UUID) -> SideWrite:
    return SideWrite(
        "UPDATE api_keys SET revoked_at = now()"
        " WHERE api_key_id = $1 AND user_id = $2 AND revoked_at IS NULL",
        (api_key_id, user_id),
    )
