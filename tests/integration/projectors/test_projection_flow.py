"""Events flow from the store through the relay and JetStream into every projection, exactly once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
from redis.asyncio import Redis

from contexts.catalogue import REGISTRY
from contexts.ledger.events import AccountClosed, AccountOpened, MoneyDeposited
from projectors.envelope import Envelope
from projectors.ledger.owner_summaries import OwnerSummariesProjection
from shared.cache.tags import tag_version_key
from shared.eventsourcing.store import NewEvent, StreamWrite
from shared.infrastructure.event_store import PostgresEventStore
from tests.integration.projectors.helpers import (
    dry_run,
    projected_versions,
    running_projectors,
    running_relay,
    wait_until,
)
from tests.integration.relay.helpers import append_accounts


async def test_projections_follow_the_store_and_equal_a_rebuild(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str
) -> None:
    await append_accounts(store, accounts=20, deposits=5)
    async with running_relay(service_environment), running_projectors(service_environment):

        async def caught_up() -> bool:
            versions = await projected_versions(database_url, "accounts")
            summaries = await projected_versions(database_url, "owner_summaries")
            return len(versions) == 20 and set(versions.values()) == {6} and len(summaries) == 20

        await wait_until(caught_up, 30, "both ledger projections apply every event")
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        balances = await connection.fetch("SELECT balance, version FROM read.accounts")
        entries = await connection.fetchval("SELECT count(*) FROM read.account_entries")
        total = await connection.fetchval("SELECT sum(balance) FROM read.owner_summaries")
    finally:
        await connection.close()
    assert {(row["balance"], row["version"]) for row in balances} == {(5, 6)}
    assert entries == 100
    assert total == 100
    for name in ("accounts", "owner_summaries", "users"):
        report = await dry_run(database_url, name)
        assert report.differences == [], name


async def test_each_commit_announces_the_tags_it_touched(
    store: PostgresEventStore, service_environment: dict[str, str], database_url: str, redis_url: str
) -> None:
    """After its commit a projector sets new versions for the cache tags of what changed, and only those."""
    prefix = service_environment["CQRS_REDIS_KEY_PREFIX"]
    redis = Redis.from_url(redis_url, socket_timeout=5)

    async def versions(tags: list[str]) -> list[bytes | None]:
        return list(await redis.mget([tag_version_key(prefix, tag) for tag in tags]))

    try:
        await append_accounts(store, accounts=2, deposits=1)
        async with running_relay(service_environment), running_projectors(service_environment) as runners:

            async def projected(count: int) -> bool:
                # Both projections that announce these tags applied everything and announced
                # it: a later announcement would look like a change of the untouched account.
                totals = [
                    sum((await projected_versions(database_url, name)).values())
                    for name in ("accounts", "owner_summaries")
                ]
                return totals == [count, count] and all(runner.owed_tags == 0 for runner in runners)

            await wait_until(lambda: projected(4), 30, "both accounts projected")
            connection = await asyncpg.connect(database_url, timeout=10)
            try:
                rows = await connection.fetch(
                    "SELECT account_id, owner_id FROM read.accounts ORDER BY account_id"
                )
            finally:
                await connection.close()
            (first, first_owner), (second, second_owner) = [(r["account_id"], r["owner_id"]) for r in rows]
            tags = [f"account:{first}", f"owner:{first_owner}", f"account:{second}", f"owner:{second_owner}"]

            async def announced() -> bool:
                return None not in await versions(tags)

            # Announced after the commit: poll for it rather than assume it came with the rows.
            await wait_until(announced, 10, "the tags are announced")
            before = await versions(tags)
            await store.append(
                [StreamWrite(first, "account", 2, 3, b"{}")],
                [
                    NewEvent(
                        event_id=uuid.uuid4(),
                        stream_id=first,
                        stream_type="account",
                        version=3,
                        event_type="MoneyDeposited",
                        schema_version=1,
                        data=REGISTRY.encode(
                            MoneyDeposited(
                                account_id=first, entry_id=uuid.uuid4(), amount=1, reference="again"
                            )
                        ),
                    )
                ],
            )

            async def first_changed() -> bool:
                now = await versions(tags)
                return now[0] != before[0] and now[1] != before[1]

            await wait_until(first_changed, 30, "the deposit's tags get new versions")
            after = await versions(tags)
            assert after[2:] == before[2:]  # the other account's tags are untouched
            ttl = await redis.ttl(tag_version_key(prefix, tags[0]))
            assert 0 < ttl <= 7 * 24 * 3600
    finally:
        await redis.aclose()


async def test_owner_summary_rows_do_not_depend_on_how_events_are_batched(database_url: str) -> None:
    """An account opened and closed in one batch leaves the same (owner, currency) row as in two
    batches: a rebuild cuts the store into other chunks than the live projector's batches."""
    owner = uuid.uuid4()

    def envelope(account_id: uuid.UUID, version: int, event: object) -> Envelope:
        return Envelope(
            global_position=version,
            event_id=uuid.uuid4(),
            stream_id=account_id,
            stream_type="account",
            version=version,
            event_type=type(event).__name__,
            schema_version=1,
            recorded_at=datetime.now(UTC),
            data=b"{}",
            event=event,  # type: ignore[arg-type]
        )

    def opened_and_closed(account_id: uuid.UUID, currency: str) -> list[Envelope]:
        return [
            envelope(
                account_id,
                1,
                AccountOpened(account_id=account_id, owner_id=owner, currency=currency, name="x"),
            ),
            envelope(account_id, 2, AccountClosed(account_id=account_id)),
        ]

    projection = OwnerSummariesProjection()
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        together, apart = opened_and_closed(uuid.uuid4(), "EUR"), opened_and_closed(uuid.uuid4(), "USD")
        async with connection.transaction():
            await projection.apply(connection, together)
        for one in apart:
            async with connection.transaction():
                await projection.apply(connection, [one])
        rows = await connection.fetch(
            "SELECT currency, open_accounts, balance FROM read.owner_summaries WHERE owner_id = $1 "
            "ORDER BY 1",
            owner,
        )
    finally:
        await connection.close()
    assert [tuple(row.values()) for row in rows] == [("EUR", 0, 0), ("USD", 0, 0)]
