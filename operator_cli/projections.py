"""`cqrs projector run`, `cqrs projections status | rebuild` and `cqrs dlq list | retry | drop`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import asyncpg
import click
import nats
import nats.errors

from contexts.catalogue import REGISTRY
from operator_cli.settings_option import settings_or_exit
from operator_cli.tables import echo_table
from projectors import dead_letters
from projectors.applier import BatchApplier
from projectors.catalogue import PROJECTIONS, UnknownProjection, projection_class
from projectors.rebuild import Progress, Rebuild, RebuildBusy, RebuildReport
from projectors.service import run_projectors
from projectors.settings import ProjectorSettings
from shared.cache.tags import TagAnnouncer
from shared.infrastructure import postgres
from shared.infrastructure.redis import create_redis
from shared.observability.tracing import start_tracing
from shared.projections.status import ProjectionStatus, read_statuses


def _names_or_exit(names: Sequence[str]) -> list[str]:
    try:
        return [projection_class(name).name for name in names] or list(PROJECTIONS)
    except UnknownProjection as error:
        raise click.ClickException(str(error)) from error


@contextlib.asynccontextmanager
async def _pool(settings: ProjectorSettings, size: int = 2) -> AsyncIterator[asyncpg.Pool]:
    async with postgres.open_pool(
        postgres.PoolSettings(
            url=settings.database_url,
            application_name="cqrs-cli",
            size=size,
            connect_timeout_seconds=settings.database_connect_timeout_seconds,
            # Rebuild chunks and comparisons run longer than a request's statements.
            command_timeout_seconds=max(settings.database_command_timeout_seconds, 300.0),
        )
    ) as pool:
        yield pool


async def _announce(settings: ProjectorSettings, tags: set[str]) -> None:
    """Invalidate cached answers an operator's change made stale; a warning if Redis is away."""
    if not tags:
        return
    redis = create_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
    try:
        await TagAnnouncer(redis, key_prefix=settings.redis_key_prefix).announce(tags)
    except Exception as error:  # noqa: BLE001 - the change is committed; only the cache may lag
        click.echo(
            f"warning: cache tags not announced ({type(error).__name__}); cached answers expire by TTL",
            err=True,
        )
    finally:
        await redis.aclose()


@click.group("projector")
def projector() -> None:
    """The projector process."""


@projector.command("run")
@click.argument("names", nargs=-1)
def run(names: tuple[str, ...]) -> None:
    """Run the named projections (default: all) until SIGTERM, finishing the batch in flight."""
    settings = settings_or_exit(ProjectorSettings)
    tracing = start_tracing("projector", endpoint=settings.otlp_endpoint)
    try:
        asyncio.run(run_projectors(settings, _names_or_exit(names), tracing=tracing))
    finally:
        if tracing is not None:
            tracing.provider.shutdown()  # exports the spans still buffered


@click.group("projections")
def projections() -> None:
    """Projection status and rebuilds."""


async def _statuses(settings: ProjectorSettings) -> list[ProjectionStatus]:
    client = None
    with contextlib.suppress(Exception):
        client = await nats.connect(
            servers=list(settings.nats_urls),
            connect_timeout=settings.nats_connect_timeout_seconds,
            max_reconnect_attempts=0,
            allow_reconnect=False,
        )

    async def pending_of(name: str) -> int | None:
        if client is None:
            return None
        try:
            info = await client.jetstream(timeout=settings.nats_connect_timeout_seconds).consumer_info(
                settings.nats_stream, f"{settings.projector_consumer_prefix}{name}"
            )
        except (nats.errors.Error, OSError):
            return None
        return (info.num_pending or 0) + (info.num_ack_pending or 0)

    try:
        async with _pool(settings, size=1) as pool, pool.acquire() as connection:
            return await read_statuses(connection, pending_of)
    finally:
        if client is not None:
            await client.close()


@projections.command("status")
def status() -> None:
    """A table per projection: checkpoint, pending on the bus, lag, dead letters, state."""
    settings = settings_or_exit(ProjectorSettings)
    rows = asyncio.run(_statuses(settings))
    header = ("projection", "checkpoint", "pending", "lag events", "lag s", "dead letters", "state")
    table = [header] + [
        (
            s.name,
            str(s.checkpoint),
            "?" if s.pending is None else str(s.pending),
            str(s.lag_events),
            f"{s.lag_seconds:.1f}",
            str(s.dead_letters),
            s.state if s.halted_reason is None else f"{s.state}: {s.halted_reason}",
        )
        for s in rows
    ]
    echo_table(table)
    if not rows:
        click.echo("no projection has run yet (start `cqrs projector run`)")


def _show_progress(progress: Progress) -> None:
    eta = "?" if progress.eta_seconds == float("inf") else f"{progress.eta_seconds:.0f}s"
    click.echo(
        f"\r{progress.phase}: {progress.done:,}/{progress.total:,} events "
        f"({progress.rate:,.0f}/s, ETA {eta})   ",
        nl=False,
        err=True,
    )


async def _rebuild(settings: ProjectorSettings, name: str, dry_run: bool, chunk_size: int) -> RebuildReport:
    async with _pool(settings) as pool:
        rebuild = Rebuild(
            projection_class(name),
            pool=pool,
            registry=REGISTRY,
            chunk_size=chunk_size,
            max_attempts=settings.projector_max_attempts,
            progress=_show_progress,
        )
        report = await rebuild.run(dry_run=dry_run)
    if report.swapped:
        await _announce(settings, {f"projection:{name}"})
    return report


@projections.command("rebuild")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Build and compare with the live tables; change nothing.")
@click.option(
    "--chunk-size",
    type=click.IntRange(100, 100_000),
    default=10_000,
    show_default=True,
    help="Events read and applied per transaction.",
)
def rebuild(name: str, dry_run: bool, chunk_size: int) -> None:
    """Rebuild projection NAME from the event store and swap it in without downtime."""
    settings = settings_or_exit(ProjectorSettings)
    _names_or_exit([name])
    try:
        report = asyncio.run(_rebuild(settings, name, dry_run, chunk_size))
    except RebuildBusy as error:
        raise click.ClickException(str(error)) from error
    click.echo("", err=True)
    click.echo(
        f"{name}: {report.events:,} events in {report.elapsed_seconds:.1f}s ({report.rate:,.0f}/s), "
        f"{report.parked} parked"
    )
    if report.swapped:
        click.echo("rebuilt tables swapped in")
    if dry_run:
        if not report.differences:
            click.echo("no differences: the rebuilt tables equal the live ones")
        for difference in report.differences:
            click.echo(
                f"{difference.table}: {difference.only_live} rows only live, "
                f"{difference.only_rebuilt} only rebuilt"
            )
            for sample in difference.samples:
                click.echo(f"  {sample}")
        if report.differences:
            raise SystemExit(1)


@click.group("dlq")
def dlq() -> None:
    """Dead letters: events a projection parked after repeated failures."""


async def _refuse_unknown(connection: postgres.Connection, projection: str, ids: Sequence[int]) -> None:
    """Ids that name no dead letter (mistyped, or renumbered by a retry) are an error, not a no-op."""
    found = {p.id for p in await dead_letters.list_parked(connection, projection, ids)}
    if missing := sorted(set(ids) - found):
        raise click.ClickException(
            f"no dead letter {', '.join(map(str, missing))} of {projection}: see `cqrs dlq list`"
        )


@dlq.command("list")
@click.option("--projection", default=None, help="Only this projection's.")
def dlq_list(projection: str | None) -> None:
    """List parked events, oldest first."""
    settings = settings_or_exit(ProjectorSettings)

    async def fetch() -> list[dead_letters.ParkedEvent]:
        async with _pool(settings, size=1) as pool, pool.acquire() as connection:
            return await dead_letters.list_parked(connection, projection)

    letters = asyncio.run(fetch())
    if not letters:
        click.echo("no dead letters")
    for p in letters:
        click.echo(
            f"{p.id}  {p.projection}  {p.event_type} {p.stream_id} v{p.version} @{p.global_position}  "
            f"attempts={p.attempts}  parked {p.parked_at:%Y-%m-%d %H:%M:%S}  {p.error}"
        )


@dlq.command("retry")
@click.argument("projection")
@click.argument("ids", nargs=-1, type=int)
def dlq_retry(projection: str, ids: tuple[int, ...]) -> None:
    """Apply PROJECTION's parked events again (the given IDS' streams, or all); resume it if halted."""
    settings = settings_or_exit(ProjectorSettings)
    cls = projection_class(_names_or_exit([projection])[0])

    async def retry() -> dead_letters.RetryOutcome:
        applier = BatchApplier(
            cls(),
            REGISTRY,
            max_attempts=settings.projector_max_attempts,
            retry_delay_seconds=settings.projector_retry_delay_seconds,
        )
        async with _pool(settings, size=1) as pool, pool.acquire() as connection:
            await _refuse_unknown(connection, cls.name, ids)
            outcome = await dead_letters.retry_in_transaction(connection, applier, ids or None)
        await _announce(settings, set(outcome.tags))
        return outcome

    try:
        outcome = asyncio.run(retry())
    except LookupError as error:  # no checkpoint yet: the projector never ran
        raise click.ClickException(str(error)) from error
    click.echo(
        f"{outcome.applied} applied, {outcome.still_parked} still parked"
        + (f"; {projection} resumed" if outcome.resumed else "")
    )
    if outcome.still_parked:
        raise SystemExit(1)


@dlq.command("drop")
@click.argument("projection")
@click.argument("ids", nargs=-1, type=int, required=True)
def dlq_drop(projection: str, ids: tuple[int, ...]) -> None:
    """Give up on parked events: their streams move on as if they had had no effect."""
    settings = settings_or_exit(ProjectorSettings)
    cls = projection_class(_names_or_exit([projection])[0])

    async def drop() -> int:
        async with _pool(settings, size=1) as pool, pool.acquire() as connection, connection.transaction():
            await _refuse_unknown(connection, cls.name, ids)
            return await dead_letters.drop(connection, cls(), ids)

    try:
        dropped = asyncio.run(drop())
    except dead_letters.CannotDrop as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{dropped} dead letter(s) dropped")
