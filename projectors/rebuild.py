"""Rebuild a projection from the event store into fresh tables, then swap them in (or compare them).

1. Create the projection's tables in schema `read_next` (same names, same
   index and constraint names), secondary indexes deferred.
2. Bulk phase: read the store in position order, in chunks, and apply them
   with the projection's own code: no JetStream, whose retention may have
   dropped old events. Progress (events/s, ETA) goes to a callback.
3. Catch up: read on until the end of the store comes close.
4. Fenced step, one transaction holding the projection's checkpoint row (the
   live projector waits at its next batch; queries go on):
   - read the rest of the store;
   - for every stream the live projection applied further than the copy
     (an event committed late under an earlier position), apply the missing
     versions from the store: the copy now holds all that the live holds;
   - swap: drop the live tables and move the copy into schema `read`; the
     live projector skips what the copy already applied, by stream version;
   - or, for a dry run, also bring the live tables up to the copy inside the
     transaction, compare row by row, and roll everything back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final
from uuid import UUID

import asyncpg
import structlog
from sqlalchemy import MetaData, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from projectors import checkpoints, dead_letters
from projectors.applier import BatchApplier, BatchResult, DeadLetter, read_stream_ranges
from projectors.envelope import from_row
from projectors.projection import Projection
from projectors.tables import REBUILD_SCHEMA
from shared.cache.tags import projection_tag, reset_tag
from shared.db.schema import NAMING_CONVENTION, READ_SCHEMA
from shared.eventsourcing.registry import EventRegistry
from shared.infrastructure.postgres import Connection

_log = structlog.get_logger("projector.rebuild")
SAMPLE_ROWS: Final = 5
# The swap's lock on the live tables: queries wait at most this long per try.
SWAP_LOCK_TIMEOUT_MS: Final = 500
SWAP_LOCK_ATTEMPTS: Final = 10

_READ_CHUNK: Final = """
SELECT global_position, event_id, stream_id, stream_type, version, event_type, schema_version,
       data::text AS data, recorded_at
  FROM events
 WHERE global_position > $1 AND global_position <= $4 AND stream_type = ANY($2::text[])
 ORDER BY global_position
 LIMIT $3
"""
# Where the store ends as a phase starts: a phase reads up to it and no further, so that it ends
# even while writes go on (what comes later is the next phase's, or the live projector's).
_END: Final = "SELECT coalesce(max(global_position), 0) FROM events"
_COUNT: Final = "SELECT count(*) FROM events WHERE global_position > $1 AND stream_type = ANY($2::text[])"


class RebuildBusy(RuntimeError):
    """Another rebuild of the same projection is running."""


@dataclass(frozen=True, slots=True)
class Progress:
    phase: str
    done: int
    total: int
    elapsed_seconds: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float:
        return (self.total - self.done) / self.rate if self.rate > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class TableDifference:
    table: str
    only_live: int
    only_rebuilt: int
    samples: tuple[str, ...]


@dataclass(slots=True)
class RebuildReport:
    projection: str
    events: int = 0
    elapsed_seconds: float = 0.0
    parked: int = 0
    swapped: bool = False
    differences: list[TableDifference] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


ProgressCallback = Callable[[Progress], None]


class _DryRunDone(Exception):
    """Rolls the fenced transaction of a dry run back."""


class Rebuild:
    def __init__(
        self,
        projection_class: type[Projection],
        *,
        pool: asyncpg.Pool,
        registry: EventRegistry,
        chunk_size: int = 10_000,
        max_attempts: int = 3,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.live = projection_class(READ_SCHEMA)
        self.copy = projection_class(REBUILD_SCHEMA)
        self._pool = pool
        self._registry = registry
        self._chunk_size = chunk_size
        self._progress = progress or (lambda _: None)
        # Both park, whatever the projection's policy: a halt would leave a chunk half applied.
        self._applier = BatchApplier(
            self.copy, registry, max_attempts=max_attempts, dead_letters_table=False, on_poison="park"
        )
        self._live_applier = BatchApplier(self.live, registry, max_attempts=max_attempts, on_poison="park")
        # By event: a parked stream's later event makes the copy read (and park) its earlier ones again.
        self._parked: dict[UUID, DeadLetter] = {}
        self._position = 0
        self._stream_types = sorted(projection_class.stream_types)

    async def run(self, *, dry_run: bool = False) -> RebuildReport:
        report = RebuildReport(self.live.name)
        started = time.monotonic()
        async with self._pool.acquire() as guard:
            key = f"cqrs-rebuild:{self.live.name}"
            if not await guard.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key):
                raise RebuildBusy(f"a rebuild of {self.live.name} is already running")
            try:
                async with self._pool.acquire() as connection:
                    await checkpoints.ensure(connection, self.live.name, self.live.stream_types)
                    await self._create_tables(connection)
                    total = await connection.fetchval(_COUNT, 0, self._stream_types)
                    # The guard's connection is idle: it reads ahead while `connection` applies.
                    report.events += await self._read_store(connection, guard, "bulk", total, started)
                    await self._create_deferred_indexes(connection)
                    report.events += await self._read_store(connection, guard, "catch-up", 0, started)
                    await self._fenced(connection, report, dry_run=dry_run)
                    await self._drop_tables(connection)
            finally:
                await guard.execute("SELECT pg_advisory_unlock(hashtext($1))", key)
        report.elapsed_seconds = time.monotonic() - started
        report.parked = len(self._parked)
        return report

    async def _read_store(
        self, connection: Connection, reader: Connection, phase: str, total: int, started: float
    ) -> int:
        """Apply the store's events up to where it ended as the phase began, reading one chunk ahead."""
        done = 0
        end = await reader.fetchval(_END)

        def read_after(position: int) -> asyncio.Future[list[asyncpg.Record]]:
            return asyncio.ensure_future(
                reader.fetch(_READ_CHUNK, position, self._stream_types, self._chunk_size, end)
            )

        ahead: asyncio.Future[list[asyncpg.Record]] | None = read_after(self._position)
        try:
            while ahead is not None:
                rows = await ahead
                ahead = None
                if not rows:
                    break
                last = rows[-1]["global_position"]
                if len(rows) == self._chunk_size:
                    # PostgreSQL reads the next chunk while Python applies this one.
                    ahead = read_after(last)
                events = [from_row(self._registry, row) for row in rows]
                async with connection.transaction():
                    self._keep(await self._applier.apply(connection, events))
                self._position = last
                done += len(rows)
                self._progress(Progress(phase, done, max(total, done), time.monotonic() - started))
        finally:
            if ahead is not None:
                # Leave the reader idle (a failed apply ends here): wait for its query, whatever it gives.
                await asyncio.gather(ahead, return_exceptions=True)
        return done

    def _keep(self, result: BatchResult) -> None:
        for letter in result.parked:
            # Parked again as blocked (no attempt): the first failure stays the reason.
            if letter.attempts > 0 or letter.event.event_id not in self._parked:
                self._parked[letter.event.event_id] = letter

    async def _fenced(self, connection: Connection, report: RebuildReport, *, dry_run: bool) -> None:
        try:
            async with connection.transaction():
                checkpoint = await checkpoints.lock(connection, self.live.name)
                end = await connection.fetchval(_END)
                while rows := await connection.fetch(
                    _READ_CHUNK, self._position, self._stream_types, self._chunk_size, end
                ):
                    self._keep(
                        await self._applier.apply(connection, [from_row(self._registry, r) for r in rows])
                    )
                    self._position = rows[-1]["global_position"]
                    report.events += len(rows)
                await self._follow(connection, self._live_applier, self._applier)
                if dry_run:
                    await self._follow(connection, self._applier, self._live_applier)
                    report.differences = await self._compare(connection)
                    raise _DryRunDone
                await self._swap(connection, checkpoint)
                report.swapped = True
        except _DryRunDone:
            pass

    async def _follow(self, connection: Connection, leader: BatchApplier, follower: BatchApplier) -> None:
        """Apply to `follower` every stream version that `leader` applied further."""
        lead = leader.projection.qualified(leader.projection.streams)
        follow = follower.projection.qualified(follower.projection.streams)
        rows = await connection.fetch(
            f"""SELECT l.stream_id, coalesce(f.version, 0) AS applied, l.version AS target
                  FROM {lead} l LEFT JOIN {follow} f ON f.stream_id = l.stream_id
                 WHERE l.version > coalesce(f.version, 0)"""
        )
        if not rows:
            return
        ranges = {row["stream_id"]: (row["applied"] + 1, row["target"]) for row in rows}
        events = await read_stream_ranges(connection, self._registry, ranges)
        result = await follower.apply(connection, events)
        if follower is self._applier:
            self._keep(result)
        _log.info(
            "caught up",
            projection=follower.projection.name,
            schema=follower.projection.schema,
            streams=len(ranges),
            events=len(events),
        )

    async def _swap(self, connection: Connection, checkpoint: checkpoints.Checkpoint) -> None:
        name = self.live.name
        await dead_letters.park(connection, name, list(self._parked.values()))
        # Events the copy applied (a fixed bug) are no longer dead letters.
        await connection.execute(
            f"""DELETE FROM dead_letters d USING {self.copy.qualified(self.copy.streams)} s
                 WHERE d.projection = $1 AND d.stream_id = s.stream_id AND d.version <= s.version
                   AND d.dropped_at IS NULL""",
            name,
        )
        await checkpoints.resume_if_clear(connection, name)
        await self._lock_live_tables(connection)
        for table in self.live.all_tables():
            await connection.execute(f"DROP TABLE {self.live.qualified(table)}")
            await connection.execute(f"ALTER TABLE {self.copy.qualified(table)} SET SCHEMA {READ_SCHEMA}")
        await checkpoints.advance(
            connection,
            name,
            stream_sequence=0,
            position=self._position,
            last_event_at=None,
            # Every cached answer of this projection may have changed.
            pending_tags={*checkpoint.pending_tags, projection_tag(name), reset_tag(name)},
        )
        _log.info("rebuilt tables swapped in", projection=name)

    async def _lock_live_tables(self, connection: Connection) -> None:
        """All live tables at once, each try bounded: queries queue behind a waiting lock,
        so it must not wait long, and locking one table at a time could deadlock with a
        reader that holds another."""
        tables = ", ".join(self.live.qualified(table) for table in self.live.all_tables())
        for attempt in range(1, SWAP_LOCK_ATTEMPTS + 1):
            try:
                async with connection.transaction():
                    await connection.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT_MS}ms'")
                    await connection.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
            except asyncpg.LockNotAvailableError:
                if attempt == SWAP_LOCK_ATTEMPTS:
                    raise
                await asyncio.sleep(0.1 * attempt)
            else:
                break
        await connection.execute("SET LOCAL lock_timeout = 0")

    async def _compare(self, connection: Connection) -> list[TableDifference]:
        differences = []
        for table in self.live.all_tables():
            columns = ", ".join(column.name for column in table.columns)
            live = f"SELECT {columns} FROM {self.live.qualified(table)}"
            copy = f"SELECT {columns} FROM {self.copy.qualified(table)}"
            only_live = await connection.fetch(
                f"SELECT row_to_json(x)::text AS r FROM ({live} EXCEPT ALL {copy}) x"
            )
            only_copy = await connection.fetch(
                f"SELECT row_to_json(x)::text AS r FROM ({copy} EXCEPT ALL {live}) x"
            )
            if only_live or only_copy:
                samples = tuple(
                    [f"live only: {r['r']}" for r in only_live[:SAMPLE_ROWS]]
                    + [f"rebuilt only: {r['r']}" for r in only_copy[:SAMPLE_ROWS]]
                )
                differences.append(TableDifference(table.name, len(only_live), len(only_copy), samples))
        return differences

    async def _create_tables(self, connection: Connection) -> None:
        await self._drop_tables(connection)
        dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
        for table in self._copies():
            await connection.execute(str(CreateTable(table).compile(dialect=dialect)))

    async def _create_deferred_indexes(self, connection: Connection) -> None:
        # Built once over the loaded rows: cheaper than maintaining them row by row.
        dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
        for table in self._copies():
            for index in table.indexes:
                await connection.execute(str(CreateIndex(index).compile(dialect=dialect)))

    async def _drop_tables(self, connection: Connection) -> None:
        for table in self.copy.all_tables():
            await connection.execute(f"DROP TABLE IF EXISTS {self.copy.qualified(table)}")

    def _copies(self) -> list[Table]:
        metadata = MetaData(naming_convention=NAMING_CONVENTION)
        return [table.to_metadata(metadata, schema=REBUILD_SCHEMA) for table in self.live.all_tables()]
