"""cqrs_append no longer NOTIFYs inside the command's transaction

Revision ID: 0003_notify_outside_append
Revises: 0002_append_function
Create Date: 2026-11-24 13:00:00

PostgreSQL holds the notification queue's lock from a notifying transaction's
pre-commit until its commit record is on disk, so every append that called
pg_notify committed one at a time (benchmarked: the ceiling rose from about
2,300 to 3,800 appends/s without it). The event store now sends one coalesced
NOTIFY after its appends commit, outside their transactions.
"""

import importlib
from collections.abc import Sequence

from alembic import op

revision: str = "0003_notify_outside_append"
down_revision: str | None = "0002_append_function"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOTIFY = """
    IF positions IS NOT NULL THEN
        PERFORM pg_notify('cqrs_outbox', '');
    END IF;
"""


def _function_of_0002() -> str:
    previous = importlib.import_module("migrations.versions.0002_append_function")
    text: str = previous.APPEND_FUNCTION
    if _NOTIFY not in text:  # pragma: no cover - 0002 is history and never changes
        raise RuntimeError("0002's function is not the one this migration expects")
    return text.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade() -> None:
    op.execute(_function_of_0002().replace(_NOTIFY, "\n"))


def downgrade() -> None:
    op.execute(_function_of_0002())
