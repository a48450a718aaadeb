"""Deliveries JetStream may make and the relay never intends: copies, reorderings, gaps.

The events are in the store; the tests put messages on the stream themselves
(with the relay's subjects and headers) and check that the projector applies
each stream's versions once, in order, and ends equal to a rebuild.
"""

from __future__ import annotations

import json
import random
from uuid import UUID

import pytest

from shared.eventsourcing.store import RecordedEvent
from shared.infrastructure.event_store import PostgresEventStore
from tests.integration.projectors.faults import (
    LEDGER_PROJECTIONS,
    ProjectorLauncher,
    Tally,
    append_ledger,
    assert_ledger_exact,
    connected,
    ensure_events_stream,
    jetstream,
    last_sequence,
    load_events,
    outbox_drained,
    publish,
    stream_versions,
    wait_caught_up,
    wait_consumed,
)
from tests.integration.projectors.helpers import running_relay


async def _without_relay(database_url: str) -> None:
    """The events stay in the store, but no relay will ever publish them: the test does."""
    async with connected(database_url) as connection:
        await connection.execute("DELETE FROM outbox")


def _amount(event: RecordedEvent) -> int:
    return int(json.loads(event.data)["amount"])


@pytest.mark.slow
async def test_copies_of_delivered_events_are_not_applied_twice(
    store: PostgresEventStore,
    launcher: ProjectorLauncher,
    service_environment: dict[str, str],
    database_url: str,
) -> None:
    """Copies under fresh Nats-Msg-Ids (past JetStream's dedupe, same other headers) change nothing.

    Copies of applied events reach a running projector; then, with the
    projector stopped, new events and copies of new and old ones wait on the
    stream together, so batches hold an original and its copy side by side.
    JetStream holds every copy (none deduplicated), every one is consumed, and
    the read models count each event once.
    """
    environment = service_environment
    tally = Tally()
    async with running_relay(environment), jetstream(environment["CQRS_NATS_URLS"]) as js:
        first = await append_ledger(store, tally, new_accounts=10, deposits=4)
        projector = launcher.start(*LEDGER_PROJECTIONS)
        await wait_caught_up(database_url)
        applied = await store.read_all(1, None, limit=1000)
        assert len(applied) == tally.events
        await publish(js, environment, applied, as_copies=True)
        await wait_consumed(js, environment)
        assert await projector.stop() == 0, projector.log_tail()

        await append_ledger(store, tally, new_accounts=4, deposits=3, existing=first[:5], more_deposits=2)
        await outbox_drained(database_url)
        fresh = await store.read_all(len(applied) + 1, None, limit=1000)
        assert len(fresh) == tally.events - len(applied)
        await publish(js, environment, [*fresh, *applied[::3]], as_copies=True)
        copies = len(applied) + len(fresh) + len(applied[::3])
        assert await last_sequence(js, environment) == tally.events + copies, "JetStream dropped a copy"

        again = launcher.start(*LEDGER_PROJECTIONS)
        await wait_caught_up(database_url)
        await wait_consumed(js, environment)
        assert await again.stop() == 0, again.log_tail()
    await assert_ledger_exact(database_url, tally)


async def test_a_later_version_delivered_first_is_applied_after_its_gap_is_filled_from_the_store(
    store: PostgresEventStore,
    launcher: ProjectorLauncher,
    service_environment: dict[str, str],
    database_url: str,
) -> None:
    """Version 4 of a stream, delivered alone before versions 1-3, brings 1-4 in from the store, in order.

    Only that one message is on the stream, yet both projections show the
    account at version 4 with the entries of versions 2-4 and their running
    balances; versions 1-3 delivered afterwards are skipped; the other streams'
    events follow shuffled, another later version first, and all converge.
    """
    environment = service_environment
    tally = Tally()
    accounts = await append_ledger(store, tally, new_accounts=6, deposits=5)
    await _without_relay(database_url)
    events = await load_events(store, accounts)
    target, other = accounts[0], accounts[1]
    fourth = events[target][3]
    assert fourth.version == 4
    async with jetstream(environment["CQRS_NATS_URLS"]) as js:
        await ensure_events_stream(js, environment)
        projector = launcher.start(*LEDGER_PROJECTIONS)
        await publish(js, environment, [fourth])
        await wait_consumed(js, environment)
        async with connected(database_url) as connection:
            for projection in LEDGER_PROJECTIONS:
                assert await stream_versions(connection, projection) == {target: 4}, projection
            account = await connection.fetchrow(
                "SELECT balance, version FROM read.accounts WHERE account_id = $1", target
            )
            entries = await connection.fetch(
                "SELECT version, amount, balance_after FROM read.account_entries ORDER BY version"
            )
        deposits = events[target][1:4]
        assert (account["balance"], account["version"]) == (sum(_amount(e) for e in deposits), 4)
        running = [sum(_amount(e) for e in deposits[: n + 1]) for n in range(3)]
        assert [(r["version"], r["amount"], r["balance_after"]) for r in entries] == [
            (e.version, _amount(e), total) for e, total in zip(deposits, running, strict=True)
        ]

        # Then the target's earlier versions (to skip), another stream's latest version before its
        # earlier ones, and the rest shuffled.
        latest = events[other][-1]
        first = [*events[target][:3], latest]
        rest = [e for stream in accounts for e in events[stream] if e not in (fourth, *first)]
        random.Random(4).shuffle(rest)  # noqa: S311 - a reproducible order, not a secret
        await publish(js, environment, [*first, *rest])
        await wait_caught_up(database_url)
        await wait_consumed(js, environment)
        assert await projector.stop() == 0, projector.log_tail()
    await assert_ledger_exact(database_url, tally)


@pytest.mark.slow
async def test_events_shuffled_within_and_across_batches_apply_in_version_order(
    store: PostgresEventStore,
    launcher: ProjectorLauncher,
    service_environment: dict[str, str],
    database_url: str,
) -> None:
    """Every event of a dozen streams published in a shuffled order before the projector starts, read in
    batches of 7: each stream still applies 1, 2, 3, ... (every entry's running balance equals the
    rebuild's, which applies in store order), and every event exactly once."""
    environment = service_environment
    launcher.environment["CQRS_PROJECTOR_BATCH_SIZE"] = "7"
    tally = Tally()
    accounts = await append_ledger(store, tally, new_accounts=12, deposits=6)
    await _without_relay(database_url)
    events = await load_events(store, accounts)
    shuffled = [e for stream in accounts for e in events[stream]]
    random.Random(11).shuffle(shuffled)  # noqa: S311 - a reproducible order, not a secret
    # Some streams entirely backwards, so a batch holds a stream's versions in reverse.
    for stream in accounts[:3]:
        backwards = events[stream][::-1]
        shuffled = [e for e in shuffled if e.stream_id != stream]
        shuffled[len(shuffled) // 2 : len(shuffled) // 2] = backwards
    assert _out_of_order(shuffled) >= 3
    async with jetstream(environment["CQRS_NATS_URLS"]) as js:
        await ensure_events_stream(js, environment)
        await publish(js, environment, shuffled)
        projector = launcher.start(*LEDGER_PROJECTIONS)
        await wait_caught_up(database_url)
        await wait_consumed(js, environment)
        assert await projector.stop() == 0, projector.log_tail()
    await assert_ledger_exact(database_url, tally)


def _out_of_order(events: list[RecordedEvent]) -> int:
    """How many streams the order delivers other than 1, 2, 3, ..."""
    seen: dict[UUID, list[int]] = {}
    for event in events:
        seen.setdefault(event.stream_id, []).append(event.version)
    return sum(versions != sorted(versions) for versions in seen.values())
