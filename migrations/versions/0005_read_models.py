"""read models and projection bookkeeping

The read models of the first projections (accounts and their entries, owner
summaries, users), each projection's table of stream versions, schema
`read_next` where a rebuild builds its copy, and what the projector runtime
keeps per checkpoint and per dead letter.

Revision ID: 0005_read_models
Revises: 0004_identity
Create Date: 2026-11-24 15:10:14.938973
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_read_models"
down_revision: str | None = "0004_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A rebuild creates its tables here and moves them into `read` when done.
    op.execute("CREATE SCHEMA IF NOT EXISTS read_next")
    op.create_table(
        "account_entries",
        sa.Column("entry_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", sa.UUID(), nullable=True),
        sa.Column("counterparty_account_id", sa.UUID(), nullable=True),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('deposit', 'withdrawal', 'transfer_in', 'transfer_out')",
            name=op.f("ck_account_entries_kind_known"),
        ),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_account_entries")),
        schema="read",
    )
    op.create_index(
        op.f("ix_account_entries_account_id_version"),
        "account_entries",
        ["account_id", "version"],
        unique=True,
        schema="read",
    )
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_accounts_status_known")),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_accounts")),
        schema="read",
    )
    op.create_index(
        op.f("ix_accounts_owner_id_opened_at_account_id"),
        "accounts",
        ["owner_id", "opened_at", "account_id"],
        unique=False,
        schema="read",
    )
    op.create_table(
        "accounts_streams",
        sa.Column("stream_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_accounts_streams")),
        schema="read",
    )
    op.create_table(
        "owner_summaries",
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("open_accounts", sa.Integer(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", "currency", name=op.f("pk_owner_summaries")),
        schema="read",
    )
    op.create_table(
        "owner_summaries_streams",
        sa.Column("stream_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_owner_summaries_streams")),
        schema="read",
    )
    op.create_table(
        "owner_summary_accounts",
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_owner_summary_accounts")),
        schema="read",
    )
    op.create_table(
        "users",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("roles", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_users")),
        schema="read",
    )
    op.create_table(
        "users_streams",
        sa.Column("stream_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_users_streams")),
        schema="read",
    )
    op.add_column(
        "dead_letters", sa.Column("stream_type", sa.Text(), server_default=sa.text("''"), nullable=False)
    )
    op.add_column(
        "dead_letters", sa.Column("version", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("dead_letters", sa.Column("dropped_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        op.f("ix_dead_letters_projection_stream_id"),
        "dead_letters",
        ["projection", "stream_id"],
        unique=False,
    )
    op.add_column(
        "projection_checkpoints",
        sa.Column("stream_sequence", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("projection_checkpoints", sa.Column("bus_epoch", sa.Text(), nullable=True))
    op.add_column(
        "projection_checkpoints",
        sa.Column(
            "stream_types",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
    )
    op.add_column(
        "projection_checkpoints", sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "projection_checkpoints",
        sa.Column(
            "pending_tags",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
    )
    op.add_column("projection_checkpoints", sa.Column("halted_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("projection_checkpoints", "halted_reason")
    op.drop_column("projection_checkpoints", "pending_tags")
    op.drop_column("projection_checkpoints", "last_event_at")
    op.drop_column("projection_checkpoints", "stream_types")
    op.drop_column("projection_checkpoints", "bus_epoch")
    op.drop_column("projection_checkpoints", "stream_sequence")
    op.drop_index(op.f("ix_dead_letters_projection_stream_id"), table_name="dead_letters")
    op.drop_column("dead_letters", "dropped_at")
    op.drop_column("dead_letters", "version")
    op.drop_column("dead_letters", "stream_type")
    op.drop_table("users_streams", schema="read")
    op.drop_table("users", schema="read")
    op.drop_table("owner_summary_accounts", schema="read")
    op.drop_table("owner_summaries_streams", schema="read")
    op.drop_table("owner_summaries", schema="read")
    op.drop_table("accounts_streams", schema="read")
    op.drop_index(op.f("ix_accounts_owner_id_opened_at_account_id"), table_name="accounts", schema="read")
    op.drop_table("accounts", schema="read")
    op.drop_index(
        op.f("ix_account_entries_account_id_version"),
        table_name="account_entries",
        schema="read",
    )
    op.drop_table("account_entries", schema="read")
    op.execute("DROP SCHEMA IF EXISTS read_next CASCADE")
