"""What migrations describe: the write side's tables and every projection's read tables.

Kept apart from env.py (which runs Alembic when imported) so that the drift
test can compare a database with the same metadata.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from projectors.catalogue import PROJECTIONS  # noqa: F401 - importing registers every read table
from projectors.tables import REBUILD_SCHEMA, read_metadata
from shared.db.schema import metadata

TARGET_METADATA: list[MetaData] = [metadata, read_metadata]


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave a rebuild's scratch schema out of comparisons: what it holds is transient."""
    return not (type_ == "schema" and name == REBUILD_SCHEMA)
