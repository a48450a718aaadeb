"""The read models: tables in schema `read`, written only by projectors.

They live in a MetaData of their own, beside the write side's
(shared/db/schema.py): migrations cover both, and a rebuild copies a
projection's tables into schema `read_next` with the same names, so that a
swap is a change of schema and every index and constraint keeps its name.

Every value in a read model derives from events alone (timestamps come from
the events' `recorded_at`, never from `now()`), so a rebuild equals the live
tables row for row.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
)
from sqlalchemy.dialects.postgresql import UUID

from shared.db.schema import NAMING_CONVENTION, READ_SCHEMA

# Where a rebuild builds its copy; created by the migration, never served.
REBUILD_SCHEMA: Final = "read_next"

read_metadata = MetaData(schema=READ_SCHEMA, naming_convention=NAMING_CONVENTION)


def stream_versions_table(projection: str) -> Table:
    """The version each stream reached in one projection: its exactly-once guard.

    An event at or below its stream's version was applied before (a duplicate
    delivery); one above the next version means events are missing (filled
    from the event store first). Consistency tokens are checked against it.
    """
    return Table(
        f"{projection}_streams",
        read_metadata,
        Column("stream_id", UUID(as_uuid=True), primary_key=True),
        Column("version", Integer, nullable=False),
    )
