"""`cqrs projections status | rebuild` and `cqrs dlq list | retry | drop`, run as an operator runs them.

Each command is a subprocess (`python -m operator_cli`); commands that do not
depend on each other run side by side, since each one spends ~2.5 s importing.
"""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import nats
import pytest

from shared.infrastructure.event_store import PostgresEventStore
from tests.integration.projectors.helpers import running_projectors, running_relay, wait_until
from tests.integration.projectors.poison import (
    BLOCKED,
    NEWER_THAN_CODE,
    Ledger,
    Letter,
    connect,
    letters,
    projector_environment,
    read_accounts,
    run_cli,
)
from tests.support.isolation import StreamNames

STATUS_HEADER = "projection checkpoint pending lag events lag s dead letters state".split()  # noqa: SIM905
UNKNOWN = "no projection named 'nosuch'; known: accounts, owner_summaries, users"


async def cqrs(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """The command in a thread: the relay in this event loop goes on meanwhile."""
    return await asyncio.to_thread(run_cli, environment, *arguments)


@dataclass(frozen=True, slots=True)
class Parked:
    poisoned: UUID  # opened, 10 deposited, a v2 deposit of 100 (parked), 1000 (parked behind it)
    other: UUID  # opened, 1 and 2 deposited


async def _park_a_poison(
    ledger: Ledger, environment: dict[str, str], connection: asyncpg.Connection
) -> Parked:
    """Append the events, run the projectors until both ledger projections parked the poison and
    the event behind it, and stop them."""
    parked = Parked(await ledger.open(deposits=[10]), await ledger.open(deposits=[1, 2]))
    await ledger.deposit(parked.poisoned, 100, schema_version=2)
    await ledger.deposit(parked.poisoned, 1000)
    async with running_projectors(environment):

        async def both_parked() -> bool:
            return (
                len(await letters(connection, "accounts")) == 2
                and len(await letters(connection, "owner_summaries")) == 2
                and await read_accounts(connection) == {parked.poisoned: (10, 2), parked.other: (3, 3)}
            )

        await wait_until(both_parked, 15, "the poison and the event behind it are parked")
    return parked


def _status_rows(stdout: str) -> dict[str, list[str]]:
    """projection -> [checkpoint, pending, lag events, lag s, dead letters, state]."""
    header, *rows = stdout.splitlines()
    assert header.split() == STATUS_HEADER
    return {row.split()[0]: row.split()[1:] for row in rows}


def _assert_status(stdout: str, checkpoint: int) -> None:
    rows = _status_rows(stdout)
    assert set(rows) == {"accounts", "owner_summaries", "users"}
    for name in ("accounts", "owner_summaries"):
        at, pending, lag, lag_seconds, dead, state = rows[name]
        assert (at, pending, lag, dead, state) == (str(checkpoint), "2", "2", "2", "running"), name
        assert float(lag_seconds) >= 0
    assert rows["users"] == ["0", "0", "0", "0.0", "0", "running"]


def _assert_listed(stdout: str, poison: Letter, blocked: Letter) -> None:
    lines = stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["accounts"] * 2 + ["owner_summaries"] * 2
    assert lines[0].startswith(f"{poison.id}  accounts  MoneyDeposited {poison.stream_id} v3 @")
    assert "  attempts=1  " in lines[0]
    assert lines[0].endswith(NEWER_THAN_CODE)
    assert lines[1].startswith(f"{blocked.id}  accounts  MoneyDeposited {blocked.stream_id} v4 @")
    assert "  attempts=0  " in lines[1]
    assert lines[1].endswith(BLOCKED)


@pytest.mark.slow
async def test_status_and_a_dry_run_rebuild_describe_the_projections(
    store: PostgresEventStore,
    service_environment: dict[str, str],
    database_url: str,
    nats_url: str,
    stream_names: StreamNames,
) -> None:
    """With a poison parked and two events published while no projector runs, `projections status`
    prints each projection's checkpoint, pending events, lag, dead letters and state;
    `projections rebuild accounts --dry-run` finds no differences (the live tables lag but are
    right) and exits 0, then names the table of a tampered row and exits 1; `dlq list` shows each
    parked event with its error and attempts."""
    environment = projector_environment(service_environment)
    ledger = Ledger(store)
    client = await nats.connect(servers=[nats_url], connect_timeout=5)
    js = client.jetstream()
    try:
        async with running_relay(environment), connect(database_url) as connection:
            parked = await _park_a_poison(ledger, environment, connection)
            checkpoint = await connection.fetchval("SELECT max(global_position) FROM events")
            await ledger.deposit(parked.other, 5)
            await ledger.deposit(parked.other, 6)

            async def published_and_acked() -> bool:
                if (await js.stream_info(stream_names.stream)).state.messages != 9:
                    return False
                for name in ("accounts", "owner_summaries"):
                    info = await js.consumer_info(stream_names.stream, f"projection-{name}")
                    if (info.num_pending, info.num_ack_pending) != (2, 0):
                        return False
                return True

            await wait_until(published_and_acked, 10, "the new events wait in JetStream")

            status, same, listed = await asyncio.gather(
                cqrs(environment, "projections", "status"),
                cqrs(environment, "projections", "rebuild", "accounts", "--dry-run"),
                cqrs(environment, "dlq", "list"),
            )
            assert status.returncode == 0, status.stderr
            _assert_status(status.stdout, checkpoint)

            assert same.returncode == 0, same.stderr
            assert same.stdout.startswith("accounts: 9 events in ")
            assert ", 2 parked" in same.stdout  # the poison and the event behind it, again
            assert "no differences: the rebuilt tables equal the live ones" in same.stdout
            assert await read_accounts(connection) == {parked.poisoned: (10, 2), parked.other: (3, 3)}

            assert listed.returncode == 0, listed.stderr
            _assert_listed(listed.stdout, *await letters(connection, "accounts"))

            await connection.execute(
                "UPDATE read.accounts SET name = 'x' WHERE account_id = $1", parked.other
            )
            differs = await cqrs(environment, "projections", "rebuild", "accounts", "--dry-run")
            assert differs.returncode == 1, differs.stderr
            lines = differs.stdout.splitlines()
            assert [line for line in lines if not line.startswith(" ")][1:] == [
                "accounts: 1 rows only live, 1 only rebuilt"
            ]
            [live_only] = [line for line in lines if line.startswith("  live only: ")]
            [rebuilt_only] = [line for line in lines if line.startswith("  rebuilt only: ")]
            assert f'"account_id":"{parked.other}"' in live_only
            assert '"name":"x"' in live_only
            assert f'"account_id":"{parked.other}"' in rebuilt_only
            assert '"name":"t"' in rebuilt_only
    finally:
        await client.close()


@pytest.mark.slow
async def test_dlq_retry_and_drop_report_what_they_did(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str
) -> None:
    """`dlq retry` with the same code fails again: exit 1, "0 applied, 2 still parked", attempts
    added. The ids listed before it name nothing now (a retry parks anew): `dlq drop` refuses them
    with exit 1 rather than dropping nothing. Dropping the event behind the poison is refused (exit
    1); dropping the poison works; `dlq retry` then applies the event behind it (exit 0)."""
    environment = projector_environment(service_environment)
    ledger = Ledger(store)
    async with running_relay(environment), connect(database_url) as connection:
        parked = await _park_a_poison(ledger, environment, connection)
        before = await letters(connection, "accounts")

        failed = await cqrs(environment, "dlq", "retry", "accounts")
        assert failed.returncode == 1, failed.stderr
        assert failed.stdout.strip() == "0 applied, 2 still parked"
        poison, blocked = await letters(connection, "accounts")
        assert [(x.version, x.attempts) for x in (poison, blocked)] == [(3, 2), (4, 0)]

        stale, refused = await asyncio.gather(
            cqrs(environment, "dlq", "drop", "accounts", *(str(x.id) for x in before)),
            cqrs(environment, "dlq", "drop", "accounts", str(blocked.id)),
        )
        assert stale.returncode == 1
        assert f"no dead letter {before[0].id}, {before[1].id} of accounts" in stale.stderr
        assert refused.returncode == 1
        assert f"dead letter {blocked.id} is version 4 of {parked.poisoned}" in refused.stderr
        assert "retry or drop the earlier ones first" in refused.stderr
        assert await letters(connection, "accounts") == [poison, blocked]

        dropped = await cqrs(environment, "dlq", "drop", "accounts", str(poison.id))
        assert dropped.returncode == 0, dropped.stderr
        assert dropped.stdout.strip() == "1 dead letter(s) dropped"
        assert await letters(connection, "accounts") == [blocked]

        retried = await cqrs(environment, "dlq", "retry", "accounts", str(blocked.id))
        assert retried.returncode == 0, retried.stderr
        assert retried.stdout.strip() == "1 applied, 0 still parked"
        assert await letters(connection, "accounts") == []
        assert await read_accounts(connection) == {parked.poisoned: (1010, 4), parked.other: (3, 3)}
        assert len(await letters(connection, "owner_summaries")) == 2  # another projection's, untouched


@pytest.mark.slow
async def test_an_unknown_or_never_run_projection_is_refused_clearly(
    service_environment: dict[str, str],
) -> None:
    """`projector run` and `dlq retry` (like every command taking a projection) name the projections
    there are and exit 1 when given one that is not; `dlq retry` of a projection that never ran
    says so (exit 1, no traceback)."""
    run, retry, never_ran = await asyncio.gather(
        cqrs(service_environment, "projector", "run", "nosuch"),
        cqrs(service_environment, "dlq", "retry", "nosuch"),
        cqrs(service_environment, "dlq", "retry", "accounts"),
    )
    for result in (run, retry):
        assert result.returncode == 1, result.args
        assert f"Error: {UNKNOWN}" in result.stderr, result.args
    assert never_ran.returncode == 1
    assert (
        never_ran.stderr.strip() == "Error: projection accounts has no checkpoint; start its projector once"
    )
