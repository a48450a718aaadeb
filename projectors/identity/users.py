"""Projection `users`: each user with display data and roles (no credentials: events carry none)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final
from uuid import UUID

import msgspec
from sqlalchemy import Column, DateTime, Integer, Table, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as SqlUUID

from contexts.identity.events import UserRegistered, UserRoleGranted, UserRoleRevoked
from projectors.envelope import Envelope
from projectors.projection import Projection
from projectors.tables import read_metadata, stream_versions_table
from shared.db.schema import READ_SCHEMA
from shared.infrastructure.postgres import Connection

users = Table(
    "users",
    read_metadata,
    Column("user_id", SqlUUID(as_uuid=True), primary_key=True),
    Column("email", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("roles", ARRAY(Text), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

_COLUMNS: Final = "user_id, email, display_name, roles, version, created_at, updated_at"
# A registered user holds this role until it is revoked (contexts/identity/decider.py).
_INITIAL_ROLES: Final = ("user",)
_json: Final = msgspec.json.Encoder()


@dataclass(slots=True)
class _User:
    user_id: UUID
    email: str
    display_name: str
    roles: list[str]
    version: int
    created_at: datetime
    updated_at: datetime


class UsersProjection(Projection):
    name: ClassVar[str] = "users"
    stream_types: ClassVar[frozenset[str]] = frozenset({"user"})
    tables: ClassVar[tuple[Table, ...]] = (users,)
    streams: ClassVar[Table] = stream_versions_table("users")

    def __init__(self, schema: str = READ_SCHEMA) -> None:
        super().__init__(schema)
        table = self.qualified(users)
        self._select = f"SELECT {_COLUMNS} FROM {table} WHERE user_id = ANY($1::uuid[])"
        self._upsert = f"""
            INSERT INTO {table} ({_COLUMNS})
            SELECT u.user_id, u.email, u.display_name,
                   ARRAY(SELECT jsonb_array_elements_text(u.roles)), u.version, u.created_at, u.updated_at
              FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::int[],
                          $6::timestamptz[], $7::timestamptz[])
                   AS u(user_id, email, display_name, roles, version, created_at, updated_at)
            ON CONFLICT (user_id) DO UPDATE SET
                roles = EXCLUDED.roles, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
        """

    async def apply(self, connection: Connection, events: Sequence[Envelope]) -> set[str]:
        rows = await connection.fetch(self._select, list({e.stream_id for e in events}))
        known = {row["user_id"]: _User(**{**dict(row), "roles": list(row["roles"])}) for row in rows}
        for envelope in events:
            at = envelope.at
            event = envelope.event
            if isinstance(event, UserRegistered):
                known[event.user_id] = _User(
                    event.user_id, event.email, event.display_name, list(_INITIAL_ROLES), 0, at, at
                )
            user = known[envelope.stream_id]  # KeyError: a user never registered (parked)
            if isinstance(event, UserRoleGranted) and event.role not in user.roles:
                user.roles = sorted({*user.roles, event.role})
            elif isinstance(event, UserRoleRevoked):
                user.roles = [role for role in user.roles if role != event.role]
            user.version = envelope.version
            user.updated_at = at
        changed = [known[i] for i in {e.stream_id for e in events}]
        await connection.execute(
            self._upsert,
            [u.user_id for u in changed],
            [u.email for u in changed],
            [u.display_name for u in changed],
            # A 2-D array cannot be ragged: each user's roles travel as one JSON array.
            [_json.encode(u.roles).decode() for u in changed],
            [u.version for u in changed],
            [u.created_at for u in changed],
            [u.updated_at for u in changed],
        )
        return {f"user:{u.user_id}" for u in changed}
