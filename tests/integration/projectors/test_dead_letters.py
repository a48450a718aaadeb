"""Poison events: parked (or halting their projection) while other streams go on; retried, dropped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, MutableMapping
from typing import Any, ClassVar

import asyncpg
import msgspec
import pytest
import structlog

from contexts.catalogue import REGISTRY
from projectors import dead_letters
from projectors.applier import BatchApplier
from projectors.ledger.accounts import AccountsProjection
from projectors.ledger.owner_summaries import OwnerSummariesProjection
from projectors.projection import PoisonPolicy
from projectors.rebuild import Rebuild
from shared.infrastructure.event_store import PostgresEventStore
from shared.projections.status import read_statuses
from tests.integration.projectors.helpers import dry_run, running_projectors, running_relay, wait_until
from tests.integration.projectors.poison import (
    BLOCKED,
    MAX_ATTEMPTS,
    NEWER_THAN_CODE,
    Ledger,
    Letter,
    checkpoint,
    connect,
    entries,
    expected_summaries,
    fixed_registry,
    letters,
    projector_environment,
    read_accounts,
    read_summaries,
    running_runner,
    stream_versions,
)

DECODE_ERROR = f"UnknownEventType: {NEWER_THAN_CODE}"


class HaltingAccounts(AccountsProjection):
    """The accounts projection with the "halt" policy: a poison event stops it."""

    on_poison: ClassVar[PoisonPolicy] = "halt"


def _summary(letter: Letter) -> tuple[uuid.UUID, int, str, int]:
    return (letter.stream_id, letter.version, letter.error, letter.attempts)


@pytest.fixture
def logged() -> Iterator[list[MutableMapping[str, Any]]]:
    """This process's structlog lines (event dicts) while the test runs."""
    with structlog.testing.capture_logs() as lines:
        yield lines


async def test_a_poison_event_parks_its_stream_alone_until_the_fixed_code_applies_it(
    store: PostgresEventStore,
    service_environment: dict[str, str],
    database_url: str,
    logged: list[MutableMapping[str, Any]],
) -> None:
    """A MoneyDeposited of a schema version newer than the code is parked by both ledger projections
    (the error names the version), the account's later event is parked behind it as blocked, and
    every other account converges exactly. Retried with a registry that knows v2 (the fix deployed),
    both events apply in order, no dead letter is left, the account's balance, entries and owner
    summary equal the store, its stream moves on live, and both projections equal a rebuild."""
    environment = projector_environment(service_environment)
    ledger = Ledger(store)
    owner = uuid.uuid4()
    poisoned = await ledger.open(owner, deposits=[10])
    others = [await ledger.open(deposits=[1, 2]) for _ in range(5)]
    assert await ledger.deposit(poisoned, 100, schema_version=2) == 3
    for account in others:
        await ledger.deposit(account, 3)
    assert await ledger.deposit(poisoned, 1000) == 4
    for account in others:
        await ledger.deposit(account, 4)
    expected_others = {account: (10, 5) for account in others}

    async with (
        running_relay(environment),
        running_projectors(environment),
        connect(database_url) as connection,
    ):

        async def parked_and_others_converged() -> bool:
            return (
                len(await letters(connection, "accounts")) == 2
                and len(await letters(connection, "owner_summaries")) == 2
                and await read_accounts(connection) == {**expected_others, poisoned: (10, 2)}
                and await stream_versions(connection, "owner_summaries")
                == {**{a: 5 for a in others}, poisoned: 2}
            )

        await wait_until(parked_and_others_converged, 15, "the poison parked and the other accounts applied")
        # The log line of each parked event carries the ids of the request that caused it.
        parked = [line for line in logged if line["event"] == "event parked"]
        assert parked
        assert all(line["correlation_id"] == "c-1" and line["causation_id"] == "r-1" for line in parked)
        for projection in ("accounts", "owner_summaries"):
            # Decoding is deterministic: the applier tries a decode failure once (applier._try_event).
            assert [_summary(letter) for letter in await letters(connection, projection)] == [
                (poisoned, 3, DECODE_ERROR, 1),
                (poisoned, 4, BLOCKED, 0),
            ], projection
        assert await entries(connection, poisoned) == [(2, "deposit", 10, 10)]
        before_fix = {**ledger.states, poisoned: msgspec.structs.replace(ledger.states[poisoned], balance=10)}
        assert await read_summaries(connection) == expected_summaries(before_fix)

        fixed = fixed_registry()
        outcome = await dead_letters.retry_in_transaction(
            connection, BatchApplier(AccountsProjection(), fixed, max_attempts=MAX_ATTEMPTS), None
        )
        summaries_outcome = await dead_letters.retry_in_transaction(
            connection, BatchApplier(OwnerSummariesProjection(), fixed, max_attempts=MAX_ATTEMPTS), None
        )

        assert outcome == dead_letters.RetryOutcome(
            applied=2,
            still_parked=0,
            resumed=False,
            tags=frozenset({f"account:{poisoned}", f"owner:{owner}"}),
        )
        assert summaries_outcome == dead_letters.RetryOutcome(
            applied=2, still_parked=0, resumed=False, tags=frozenset({f"owner:{owner}"})
        )
        assert await letters(connection, "accounts") == []
        assert await letters(connection, "owner_summaries") == []
        assert await read_accounts(connection) == ledger.expected_accounts()
        assert ledger.expected_accounts()[poisoned] == (1110, 4)
        assert await entries(connection, poisoned) == [
            (2, "deposit", 10, 10),
            (3, "deposit", 100, 110),
            (4, "deposit", 1000, 1110),
        ]
        assert await read_summaries(connection) == expected_summaries(ledger.states)
        assert expected_summaries(ledger.states)[(owner, "EUR")] == (1, 1110)

        await ledger.deposit(poisoned, 5)

        async def moved_on() -> bool:
            return (await read_accounts(connection)).get(poisoned) == (1115, 5) and (
                await stream_versions(connection, "owner_summaries")
            ).get(poisoned) == 5

        await wait_until(moved_on, 10, "the retried stream's next event applies live")
        assert await read_summaries(connection) == expected_summaries(ledger.states)
        assert await letters(connection, "accounts") == []

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2, timeout=10)
    try:
        for projection_class in (AccountsProjection, OwnerSummariesProjection):
            report = await Rebuild(projection_class, pool=pool, registry=fixed, chunk_size=7).run(
                dry_run=True
            )
            assert report.differences == [], projection_class.name
            assert report.parked == 0
    finally:
        await pool.close()


async def test_an_event_that_fails_to_apply_is_attempted_max_times_and_attempts_add_up(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str
) -> None:
    """A deposit into an account that was never opened fails in the projection itself: it is tried
    `projector_max_attempts` times, then parked with the projection's error, its stream's next event
    parked as blocked, while an account appended after it converges. A retry of the blocked event
    alone takes its whole stream; failing again, the attempts add up and both stay parked."""
    environment = projector_environment(service_environment)
    ledger = Ledger(store)
    orphan = await ledger.orphan([5, 6])
    healthy = await ledger.open(deposits=[7])

    async with (
        running_relay(environment),
        running_projectors(environment, ["accounts"]),
        connect(database_url) as connection,
    ):

        async def parked() -> bool:
            return len(await letters(connection, "accounts")) == 2 and await read_accounts(connection) == {
                healthy: (7, 2)
            }

        await wait_until(parked, 15, "the orphan's deposits parked and the healthy account applied")
        failing_error = f"KeyError: {orphan!r}"
        parked_letters = await letters(connection, "accounts")
        assert [_summary(letter) for letter in parked_letters] == [
            (orphan, 1, failing_error, MAX_ATTEMPTS),
            (orphan, 2, BLOCKED, 0),
        ]
        assert await stream_versions(connection, "accounts") == {healthy: 2}

        outcome = await dead_letters.retry_in_transaction(
            connection,
            BatchApplier(AccountsProjection(), REGISTRY, max_attempts=MAX_ATTEMPTS, retry_delay_seconds=0.01),
            [parked_letters[1].id],
        )

        assert outcome == dead_letters.RetryOutcome(0, 2, False, frozenset())
        assert [_summary(letter) for letter in await letters(connection, "accounts")] == [
            (orphan, 1, failing_error, 2 * MAX_ATTEMPTS),
            (orphan, 2, BLOCKED, 0),
        ]
        assert await read_accounts(connection) == {healthy: (7, 2)}
        assert (await checkpoint(connection, "accounts"))["state"] == "running"


async def test_a_halting_projection_stops_until_a_retry_succeeds_then_converges(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str
) -> None:
    """With on_poison = "halt", a poison event halts the projection (state 'halted', the reason names
    the event and the error) and rolls its batch back: later events are delivered (another projection
    applies them) but not applied. A retry that fails again keeps it halted and adds one attempt; a
    retry with the fixed registry applies the event and resumes it, and the runner then applies all
    that waited: the read model equals the store."""
    environment = projector_environment(service_environment)
    ledger = Ledger(store)
    owner = uuid.uuid4()
    poisoned = await ledger.open(owner, deposits=[10])
    other = await ledger.open(deposits=[1])

    async with (
        running_relay(environment),
        running_runner(environment, HaltingAccounts(), REGISTRY) as running,
        running_projectors(environment, ["owner_summaries"]),
        connect(database_url) as connection,
    ):

        async def first_applied() -> bool:
            running.check()
            return await read_accounts(connection) == {poisoned: (10, 2), other: (1, 2)}

        await wait_until(first_applied, 15, "the first events apply")
        await ledger.deposit(poisoned, 100, schema_version=2)
        await ledger.deposit(poisoned, 1000)

        async def halted() -> bool:
            running.check()
            state: str = (await checkpoint(connection, "accounts"))["state"]
            return state == "halted"

        await wait_until(halted, 10, "the projection halts")
        batches_at_halt = running.runner.batches_total
        reason = (await checkpoint(connection, "accounts"))["halted_reason"]
        assert reason.startswith(f"MoneyDeposited {poisoned} v3 @")
        assert reason.endswith(DECODE_ERROR)
        assert [_summary(letter) for letter in await letters(connection, "accounts")] == [
            (poisoned, 3, DECODE_ERROR, 1)
        ]
        [status] = [s for s in await read_statuses(connection) if s.name == "accounts"]
        assert (status.state, status.halted_reason, status.dead_letters) == ("halted", reason, 1)
        assert status.lag_events == 2  # the poison and the event after it

        late = await ledger.open(deposits=[5])
        await ledger.deposit(other, 2)

        async def witness_applied() -> bool:
            running.check()  # halted, waiting: not dead
            versions = await stream_versions(connection, "owner_summaries")
            return versions.get(late) == 2 and versions.get(other) == 3

        await wait_until(witness_applied, 10, "the later events reach another projection")
        assert await read_accounts(connection) == {poisoned: (10, 2), other: (1, 2)}
        assert await stream_versions(connection, "accounts") == {poisoned: 2, other: 2}
        assert running.runner.batches_total == batches_at_halt
        assert (await checkpoint(connection, "accounts"))["state"] == "halted"

        failed = await dead_letters.retry_in_transaction(
            connection, BatchApplier(HaltingAccounts(), REGISTRY, max_attempts=MAX_ATTEMPTS), None
        )
        assert failed == dead_letters.RetryOutcome(0, 1, False, frozenset())
        assert (await checkpoint(connection, "accounts"))["state"] == "halted"
        assert [_summary(letter) for letter in await letters(connection, "accounts")] == [
            (poisoned, 3, DECODE_ERROR, 2)
        ]
        assert await read_accounts(connection) == {poisoned: (10, 2), other: (1, 2)}

        resumed = await dead_letters.retry_in_transaction(
            connection, BatchApplier(HaltingAccounts(), fixed_registry(), max_attempts=MAX_ATTEMPTS), None
        )
        assert resumed == dead_letters.RetryOutcome(
            1, 0, True, frozenset({f"account:{poisoned}", f"owner:{owner}"})
        )
        after_retry = await checkpoint(connection, "accounts")
        assert (after_retry["state"], after_retry["halted_reason"]) == ("running", None)

        async def converged() -> bool:
            running.check()
            return await read_accounts(connection) == ledger.expected_accounts()

        await wait_until(converged, 10, "the resumed projection applies what waited")
        assert ledger.expected_accounts() == {poisoned: (1110, 4), other: (3, 3), late: (5, 2)}
        assert await entries(connection, poisoned) == [
            (2, "deposit", 10, 10),
            (3, "deposit", 100, 110),
            (4, "deposit", 1000, 1110),
        ]
        assert await letters(connection, "accounts") == []
        assert running.runner.batches_total > batches_at_halt


async def test_dropping_the_poison_lets_its_stream_move_on_and_order_is_kept(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str
) -> None:
    """Dropping a blocked event before the poison ahead of it is refused (CannotDrop) and changes
    nothing; dropping the poison moves its stream past it (as if it had no effect), the events
    behind it stay parked (new ones join them) until a retry applies them in order, and then the
    stream's new events apply live again."""
    environment = projector_environment(service_environment)
    ledger = Ledger(store)
    poisoned = await ledger.open()
    await ledger.deposit(poisoned, 100, schema_version=2)
    other = await ledger.open(deposits=[5])

    async with (
        running_relay(environment),
        running_projectors(environment, ["accounts"]),
        connect(database_url) as connection,
    ):

        async def poison_parked() -> bool:
            return len(await letters(connection, "accounts")) == 1 and await read_accounts(connection) == {
                poisoned: (0, 1),
                other: (5, 2),
            }

        await wait_until(poison_parked, 15, "the poison is parked")
        # In a later batch: the applier reads the parked poison again from the store, parks both.
        await ledger.deposit(poisoned, 7)

        async def blocked_parked() -> bool:
            return len(await letters(connection, "accounts")) == 2

        await wait_until(blocked_parked, 10, "the event behind the poison is parked")
        poison, blocked = await letters(connection, "accounts")
        assert _summary(poison) == (poisoned, 2, DECODE_ERROR, 1)
        assert _summary(blocked) == (poisoned, 3, BLOCKED, 0)

        with pytest.raises(dead_letters.CannotDrop, match="retry or drop the earlier ones first"):
            async with connection.transaction():
                await dead_letters.drop(connection, AccountsProjection(), [blocked.id])
        assert await letters(connection, "accounts") == [poison, blocked]
        assert (await stream_versions(connection, "accounts"))[poisoned] == 1

        async with connection.transaction():
            assert await dead_letters.drop(connection, AccountsProjection(), [poison.id]) == 1
        assert await letters(connection, "accounts") == [blocked]
        assert (await stream_versions(connection, "accounts"))[poisoned] == 2

        # The stream stays blocked while an earlier event of it is parked.
        await ledger.deposit(poisoned, 11)

        async def joined() -> bool:
            return [(x.version, x.error) for x in await letters(connection, "accounts")] == [
                (3, BLOCKED),
                (4, BLOCKED),
            ]

        await wait_until(joined, 10, "the new event waits behind the parked one")
        assert (await read_accounts(connection))[poisoned] == (0, 1)

        outcome = await dead_letters.retry_in_transaction(
            connection, BatchApplier(AccountsProjection(), REGISTRY, max_attempts=MAX_ATTEMPTS), [blocked.id]
        )
        assert (outcome.applied, outcome.still_parked, outcome.resumed) == (2, 0, False)
        assert await letters(connection, "accounts") == []
        assert (await read_accounts(connection))[poisoned] == (18, 4)
        assert await entries(connection, poisoned) == [(3, "deposit", 7, 7), (4, "deposit", 11, 18)]

        await ledger.deposit(poisoned, 1)

        async def moved_on() -> bool:
            return (await read_accounts(connection)).get(poisoned) == (19, 5)

        await wait_until(moved_on, 10, "the stream's next event applies live")
        assert await read_accounts(connection) == {poisoned: (19, 5), other: (5, 2)}
        assert await letters(connection, "accounts") == []

    # The drop is remembered: a rebuild skips the dropped event too, instead of parking it
    # (and the stream behind it) again and taking the account back to an older state.
    assert (await dry_run(database_url, "accounts")).differences == []
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2, timeout=10)
    try:
        report = await Rebuild(AccountsProjection, pool=pool, registry=REGISTRY, chunk_size=2).run()
    finally:
        await pool.close()
    assert (report.swapped, report.parked) == (True, 0)
    async with connect(database_url) as connection:
        assert await read_accounts(connection) == {poisoned: (19, 5), other: (5, 2)}
        assert await letters(connection, "accounts") == []


async def test_dropping_the_event_that_halted_a_projection_resumes_it(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str
) -> None:
    """A halted projection runs again once no dead letter of it is left, here after a drop: it then
    applies what waited, with the dropped event having no effect."""
    environment = projector_environment(service_environment)
    ledger = Ledger(store)
    poisoned = await ledger.open(deposits=[10])

    async with (
        running_relay(environment),
        running_runner(environment, HaltingAccounts(), REGISTRY) as running,
        connect(database_url) as connection,
    ):

        async def first_applied() -> bool:
            running.check()
            return await read_accounts(connection) == {poisoned: (10, 2)}

        # Applied before the poison arrives: a halt rolls back its whole batch.
        await wait_until(first_applied, 15, "the first events apply")
        await ledger.deposit(poisoned, 100, schema_version=2)
        await ledger.deposit(poisoned, 1000)

        async def halted() -> bool:
            running.check()
            return bool((await checkpoint(connection, "accounts"))["state"] == "halted")

        await wait_until(halted, 15, "the projection halts")
        [poison] = await letters(connection, "accounts")
        async with connection.transaction():
            assert await dead_letters.drop(connection, HaltingAccounts(), [poison.id]) == 1
        resumed = await checkpoint(connection, "accounts")
        assert (resumed["state"], resumed["halted_reason"]) == ("running", None)

        async def converged() -> bool:
            running.check()
            return await read_accounts(connection) == {poisoned: (1010, 4)}

        await wait_until(
            converged, 15, "the resumed projection applies what waited, without the dropped event"
        )
        assert await letters(connection, "accounts") == []
