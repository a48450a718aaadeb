"""api keys carry their tier

An API key is rate-limited by the tier it was created under (the creating
session's `tier` claim), as a session is by its token's: the column keeps it.

Revision ID: 0006_api_key_tier
Revises: 0005_read_models
Create Date: 2026-11-24 23:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_api_key_tier"
down_revision: str | None = "0005_read_models"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("tier", sa.Text(), server_default="free", nullable=False))


def downgrade() -> None:
    op.drop_column("api_keys", "tier")
