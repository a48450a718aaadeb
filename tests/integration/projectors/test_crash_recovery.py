"""The projector process survives kills, a NATS restart and a new JetStream stream, applying each event once.

The projector runs as `cqrs projector run` in a subprocess, the relay in this
process. Every test ends with the ledger read models equal to what the store
holds (versions, balances, one entry per money event) and to a fresh rebuild.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from uuid import UUID

import pytest

from devstack.ports import free_port
from devstack.servers import EmbeddedNats
from relay.republish import republish
from relay.settings import RelaySettings
from shared.infrastructure.event_store import PostgresEventStore
from shared.settings import load_settings
from tests.integration.projectors.faults import (
    LEDGER_PROJECTIONS,
    ProjectorLauncher,
    Tally,
    append_ledger,
    assert_ledger_exact,
    caught_up,
    checkpoints,
    connected,
    consumer,
    jetstream,
    last_sequence,
    outbox_drained,
    stream_versions,
    wait_caught_up,
    wait_consumed,
)
from tests.integration.projectors.helpers import running_relay, wait_until


@pytest.mark.slow
@pytest.mark.parametrize("crash_point", ["before_commit", "after_commit"])
async def test_a_projector_killed_at_a_commit_point_applies_every_event_once(
    crash_point: str,
    store: PostgresEventStore,
    launcher: ProjectorLauncher,
    service_environment: dict[str, str],
    database_url: str,
) -> None:
    """A SIGKILL right before or right after a batch commits loses nothing and applies nothing twice.

    before_commit: nothing of the batch is in the read models or the checkpoint,
    JetStream holds it unacked; the restarted projector, which meets newer
    events before that batch comes back (the ack wait outlasts a restart),
    still applies all of it, including streams that only that batch holds.
    after_commit: the checkpoint is ahead of what JetStream saw acked; the
    batch is delivered again (more deliveries than messages) and skipped.
    """
    launcher.environment["CQRS_PROJECTOR_BATCH_SIZE"] = "40"
    tally = Tally()
    nats_url = service_environment["CQRS_NATS_URLS"]
    async with running_relay(service_environment), jetstream(nats_url) as js:
        # Whole streams inside the first batch, and a backlog after it.
        await append_ledger(store, tally, new_accounts=5, deposits=6)
        await outbox_drained(database_url)
        later = await append_ledger(store, tally, new_accounts=25, deposits=6)
        await outbox_drained(database_url)

        crashing = launcher.start(*LEDGER_PROJECTIONS, crash_point=crash_point)
        assert await crashing.exited(30) == -signal.SIGKILL, crashing.log_tail()
        async with connected(database_url) as connection:
            marks = await checkpoints(connection)
            applied = {p: await stream_versions(connection, p) for p in LEDGER_PROJECTIONS}
        infos = {p: await consumer(js, service_environment, p) for p in LEDGER_PROJECTIONS}
        if crash_point == "before_commit":
            assert all(marks[p].stream_sequence == 0 for p in LEDGER_PROJECTIONS), marks
            assert applied == {p: {} for p in LEDGER_PROJECTIONS}
            assert any(info.num_ack_pending for info in infos.values()), "no batch was in flight"
            committed = []
        else:
            committed = [p for p in LEDGER_PROJECTIONS if marks[p].stream_sequence > 0]
            assert committed, marks
            for p in committed:
                assert applied[p], p
                floor = infos[p].ack_floor
                acked = floor.stream_seq if floor is not None else 0
                assert acked < marks[p].stream_sequence, "the committed batch was acked: nothing to prove"

        # The streams go on after the crash, old and new.
        await append_ledger(store, tally, new_accounts=3, deposits=2, existing=later[:5], more_deposits=2)
        recovered = launcher.start(*LEDGER_PROJECTIONS)
        await wait_caught_up(database_url, 20)
        last = await wait_consumed(js, service_environment, 30)
        for p in committed:
            delivered = (await consumer(js, service_environment, p)).delivered
            assert delivered is not None
            assert delivered.consumer_seq > last, f"{p}: the committed batch never came back"
        assert await recovered.stop() == 0, recovered.log_tail()
    await assert_ledger_exact(database_url, tally)


@pytest.mark.slow
async def test_projectors_killed_at_arbitrary_moments_converge(
    store: PostgresEventStore,
    launcher: ProjectorLauncher,
    service_environment: dict[str, str],
    database_url: str,
    nats_url: str,
) -> None:
    """Killed again and again mid-backlog while events keep coming, the projector ends exactly right.

    Each round appends a backlog, starts the projector, keeps appending while it
    works, and SIGKILLs it once its checkpoint moved a round-dependent distance
    (watching each ledger projection in turn), so kills land at different
    points of different batches, before or after commits.
    """
    launcher.environment["CQRS_PROJECTOR_BATCH_SIZE"] = "10"
    tally = Tally()
    accounts: list[UUID] = []
    kills_with_backlog = 0
    rounds = 3
    async with running_relay(service_environment), connected(database_url) as connection:
        for round_number in range(rounds):
            existing = list(tally.versions)[:15]
            await append_ledger(store, tally, new_accounts=20, deposits=7, existing=existing, more_deposits=2)
            accounts = list(tally.versions)
            watched = LEDGER_PROJECTIONS[round_number % 2]
            start = (await checkpoints(connection)).get(watched)
            start_sequence = start.stream_sequence if start is not None else 0
            distance = 10 * (round_number + 1) + 5
            projector = launcher.start(*LEDGER_PROJECTIONS)
            appending = asyncio.create_task(_keep_appending(store, tally, accounts[:30], chunks=20))

            async def moved(watched: str = watched, target: int = start_sequence + distance) -> bool:
                mark = (await checkpoints(connection)).get(watched)
                return mark is not None and mark.stream_sequence >= target

            await wait_until(moved, 30, f"round {round_number}: {watched} makes progress")
            await projector.kill()
            await appending
            if not await caught_up(connection):
                kills_with_backlog += 1
    assert kills_with_backlog >= 1, "every kill came after the projector had caught up: nothing was tested"
    async with running_relay(service_environment), jetstream(nats_url) as js:
        await outbox_drained(database_url)
        final = launcher.start(*LEDGER_PROJECTIONS)
        await wait_caught_up(database_url, 20)
        await wait_consumed(js, service_environment, 30)
        assert await final.stop() == 0, final.log_tail()
    await assert_ledger_exact(database_url, tally)


async def _keep_appending(store: PostgresEventStore, tally: Tally, accounts: list[UUID], chunks: int) -> None:
    """Small appends one after another: a deposit to an older account, now and then a new account."""
    for chunk in range(chunks):
        account = accounts[chunk % len(accounts)]
        opens = 1 if chunk % 4 == 0 else 0
        await append_ledger(store, tally, new_accounts=opens, deposits=2, existing=[account], more_deposits=1)


@pytest.mark.slow
async def test_a_nats_restart_under_a_running_projector_loses_no_event(
    store: PostgresEventStore,
    launcher: ProjectorLauncher,
    service_environment: dict[str, str],
    database_url: str,
    tmp_path: Path,
) -> None:
    """NATS stops and starts again under a running projector: the same process carries on (it saw the
    disconnection, the stream and the checkpoint's epoch are the same) and events appended during and
    after the outage reach the read models."""
    server = EmbeddedNats(tmp_path / "nats", free_port(), free_port())
    server.start()
    await asyncio.to_thread(server.wait_ready, 30)
    environment = {**service_environment, "CQRS_NATS_URLS": server.url}
    launcher.environment["CQRS_NATS_URLS"] = server.url
    tally = Tally()
    try:
        async with running_relay(environment):
            first = await append_ledger(store, tally, new_accounts=10, deposits=4)
            projector = launcher.start(*LEDGER_PROJECTIONS)
            await wait_caught_up(database_url, 20)
            async with connected(database_url) as connection:
                epochs = {p: c.bus_epoch for p, c in (await checkpoints(connection)).items()}

            await asyncio.to_thread(server.stop)
            await append_ledger(store, tally, new_accounts=3, deposits=2, existing=first[:3], more_deposits=1)
            await asyncio.to_thread(server.start)
            await asyncio.to_thread(server.wait_ready, 30)
            await append_ledger(store, tally, new_accounts=4, deposits=3, existing=first[3:], more_deposits=2)

            await wait_caught_up(database_url, 40)
            async with jetstream(server.url) as js:
                await wait_consumed(js, environment, 30)
            assert projector.running(), "the projector died instead of reconnecting"
            assert "nats disconnected" in projector.log_path.read_text(), projector.log_tail()
            async with connected(database_url) as connection:
                after = {p: c.bus_epoch for p, c in (await checkpoints(connection)).items()}
            assert after == epochs, "the stream survived the restart; its epoch must not change"
            assert await projector.stop() == 0, projector.log_tail()
    finally:
        await asyncio.to_thread(server.stop)
    await assert_ledger_exact(database_url, tally)


@pytest.mark.slow
async def test_a_recreated_stream_is_read_from_its_start(
    store: PostgresEventStore,
    launcher: ProjectorLauncher,
    service_environment: dict[str, str],
    database_url: str,
    nats_url: str,
) -> None:
    """A JetStream stream deleted and created anew while the projector is stopped is read from sequence 1.

    The new stream is shorter than the old checkpoint's sequence, so a projector
    that kept the old sequence would start past every new event; instead the
    changed epoch resets the checkpoint, the republished old events are skipped
    and the new ones applied.
    """
    tally = Tally()
    async with running_relay(service_environment):
        first = await append_ledger(store, tally, new_accounts=20, deposits=5)
        projector = launcher.start(*LEDGER_PROJECTIONS)
        await wait_caught_up(database_url, 20)
        async with jetstream(nats_url) as js:
            old_last = await wait_consumed(js, service_environment, 30)
        assert await projector.stop() == 0, projector.log_tail()
    async with connected(database_url) as connection:
        old = await checkpoints(connection)
        last_position = await connection.fetchval("SELECT max(global_position) FROM events")
    assert all(old[p].stream_sequence == old_last for p in LEDGER_PROJECTIONS)

    async with jetstream(nats_url) as js:
        await js.delete_stream(service_environment["CQRS_NATS_STREAM"])
    # Old events again (a window of them: duplicates to skip), then new ones through the relay.
    await republish(
        load_settings(RelaySettings, service_environment), last_position - 9, last_position, _ignore
    )
    await append_ledger(store, tally, new_accounts=3, deposits=2, existing=first[:5], more_deposits=2)
    async with running_relay(service_environment):
        await outbox_drained(database_url)
    async with jetstream(nats_url) as js:
        new_last = await last_sequence(js, service_environment)
        assert new_last == 10 + 3 * 3 + 5 * 2
        assert new_last < old_last, "the new stream must be shorter than the old checkpoint"
        restarted = launcher.start(*LEDGER_PROJECTIONS)
        await wait_caught_up(database_url, 20)
        await wait_consumed(js, service_environment, 30)
        assert await restarted.stop() == 0, restarted.log_tail()
    async with connected(database_url) as connection:
        new = await checkpoints(connection)
    for p in LEDGER_PROJECTIONS:
        assert new[p].bus_epoch != old[p].bus_epoch, p
        assert new[p].stream_sequence == new_last, p
    await assert_ledger_exact(database_url, tally)


def _ignore(_: object) -> None:
    """Republish progress: not needed here."""
