"""What a projection is: a name, the streams it follows, its tables, and how it applies events.

A projection is one module with one subclass of `Projection` and one line in
`projectors/catalogue.py`. The runtime gives `apply` only events it has not
applied yet, in order within each stream, without gaps, and commits what
`apply` wrote in the same transaction as the projection's checkpoint; so
`apply` is plain code that turns a list of events into bulk SQL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Literal

from sqlalchemy import Table

from projectors.envelope import Envelope
from shared.db.schema import READ_SCHEMA
from shared.infrastructure.postgres import Connection

PoisonPolicy = Literal["park", "halt"]


class Projection(ABC):
    name: ClassVar[str]
    # Aggregate types (`account`, `user`) whose streams this projection follows.
    stream_types: ClassVar[frozenset[str]]
    # Its read tables, and its table of stream versions (projectors/tables.py).
    tables: ClassVar[tuple[Table, ...]]
    streams: ClassVar[Table]
    # An event that keeps failing is parked and the projection goes on with
    # the other streams ("park"), or the projection stops until an operator
    # retries or drops it ("halt").
    on_poison: ClassVar[PoisonPolicy] = "park"

    def __init__(self, schema: str = READ_SCHEMA) -> None:
        # A rebuild runs the same code against a copy of the tables in another schema.
        self.schema = schema

    def qualified(self, table: Table) -> str:
        """`schema.table` for SQL text; both names come from code, never from input."""
        return f"{self.schema}.{table.name}"

    @classmethod
    def all_tables(cls) -> tuple[Table, ...]:
        return (*cls.tables, cls.streams)

    @abstractmethod
    async def apply(self, connection: Connection, events: Sequence[Envelope]) -> set[str]:
        """Apply the events (each decoded) inside the caller's transaction; return the cache tags touched.

        Types it does not handle are ignored. Raising marks the events as
        failed: the runtime retries them one by one and parks the one that
        keeps failing.
        """
