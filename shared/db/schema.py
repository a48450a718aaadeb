"""SQLAlchemy Core metadata: the single description of every table.

Alembic migrations are checked against it (tests/integration/test_migrations.py
fails on any drift). The write side lives in the default schema; read models
live in schema `read`, which only projectors write.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

READ_SCHEMA: Final = "read"

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# The event store: append-only, the source of truth. `global_position` orders
# all events; `(stream_id, version)` is the optimistic-concurrency guard.
events = Table(
    "events",
    metadata,
    Column("global_position", BigInteger, Identity(always=True), primary_key=True),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("stream_id", UUID(as_uuid=True), nullable=False),
    Column("stream_type", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("schema_version", SmallInteger, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column(
        "recorded_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
    ),
    UniqueConstraint("stream_id", "version"),
    CheckConstraint("version >= 1", name="version_positive"),
)

# The current state of each aggregate, written in the same transaction as its
# events, so a command reads one row instead of folding its whole stream.
# `version` is the optimistic-concurrency guard: writers update it from the
# version they read, and the loser of a race changes nothing.
aggregate_states = Table(
    "aggregate_states",
    metadata,
    Column("stream_id", UUID(as_uuid=True), primary_key=True),
    Column("stream_type", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Events waiting for the relay, in commit order of their positions; a row is
# deleted once JetStream acknowledged the message.
outbox = Table(
    "outbox",
    metadata,
    Column(
        "global_position",
        BigInteger,
        ForeignKey("events.global_position", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "enqueued_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
    ),
)

# Idempotency-Key records, scoped per principal; the stored response is
# replayed to a retry with the same key and body.
idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("principal", Text, primary_key=True),
    Column("idempotency_key", Text, primary_key=True),
    Column("request_fingerprint", LargeBinary, nullable=False),
    Column("state", Text, nullable=False),
    Column("response_status", SmallInteger),
    Column("response_headers", JSONB),
    Column("response_body", LargeBinary),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("state IN ('in_flight', 'completed')", name="state_known"),
    Index(None, "expires_at"),
)

# How far each projection got, written in the same transaction as its read
# model changes. `stream_sequence` is the highest JetStream sequence applied
# and `position` the highest global position (status and lag are counted from
# them; what a redelivery skips is decided by the projection's stream versions).
# `bus_epoch` names the JetStream stream the sequence belongs to (a recreated
# stream starts again at 1).
# `pending_tags` are cache tags not yet announced when the row was written:
# a restarted projector announces them again. Every reader of projection
# status (CLI, query API, metrics) reads this row and nothing of the projector.
projection_checkpoints = Table(
    "projection_checkpoints",
    metadata,
    Column("projection", Text, primary_key=True),
    Column("position", BigInteger, nullable=False, server_default=text("0")),
    Column("state", Text, nullable=False, server_default=text("'running'")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("stream_sequence", BigInteger, nullable=False, server_default=text("0")),
    Column("bus_epoch", Text),
    Column("stream_types", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("last_event_at", DateTime(timezone=True)),
    Column("pending_tags", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("halted_reason", Text),
    CheckConstraint("state IN ('running', 'halted', 'rebuilding')", name="state_known"),
)

# Events a projection gave up on after repeated failures, for operators to
# retry or drop.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("projection", Text, nullable=False),
    Column("global_position", BigInteger, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("stream_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", Text, nullable=False),
    Column("stream_type", Text, nullable=False, server_default=text("''")),
    Column("version", Integer, nullable=False, server_default=text("0")),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_failed_at", DateTime(timezone=True), nullable=False),
    Column("parked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # An operator gave up on the event (`cqrs dlq drop`): the row stays as the
    # record that the event has no effect, which a rebuild honours too.
    Column("dropped_at", DateTime(timezone=True)),
    UniqueConstraint("projection", "event_id"),
    Index(None, "projection", "stream_id"),
)

# --- identity: write-side secrets and uniqueness, never in events (design.md §3) ---

# One row per normalised email (NFKC, case-folded): registration inserts it in
# the same transaction as UserRegistered, so of two concurrent registrations
# of one address exactly one commits.
email_reservations = Table(
    "email_reservations",
    metadata,
    Column("email_key", Text, primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("reserved_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The argon2id hash of each user's password.
user_credentials = Table(
    "user_credentials",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# A refresh-token family: one per login, revoked as a whole on logout, on the
# reuse of a spent token, or when the password changes.
refresh_families = Table(
    "refresh_families",
    metadata,
    Column("family_id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_used_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_reason", Text),
    Index(None, "user_id"),
)

# Refresh tokens by SHA-256 hash; each is spent by its one use.
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),
    Column(
        "family_id",
        UUID(as_uuid=True),
        ForeignKey("refresh_families.family_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("issued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("spent_at", DateTime(timezone=True)),
    Index(None, "family_id"),
)

# API keys by lookup prefix, with the SHA-256 hash of the whole key.
api_keys = Table(
    "api_keys",
    metadata,
    Column("api_key_id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("lookup_prefix", Text, nullable=False, unique=True),
    Column("key_hash", LargeBinary, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    # The rate-limit tier of the session that created it (its token's `tier` claim).
    Column("tier", Text, nullable=False, server_default="free"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
    Index(None, "user_id"),
)
