"""Idempotency-Key on commands: one execution per key, stored answers replayed, misuse refused."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import httpx
import pytest

from tests.integration.command_api.conftest import (
    CommandClient,
    User,
    assert_problem,
    balance_of,
    changes_since,
    command_client,
    deposit,
    keyed,
    open_account,
    stream_events,
    table_counts,
    withdraw,
)

REPLAYED = "idempotent-replayed"


def _deposit_path(account_id: str) -> str:
    return f"/v1/accounts/{account_id}/deposits"


async def _event_types(db: asyncpg.Connection, account_id: str) -> list[str]:
    return [row["event_type"] for row in await stream_events(db, account_id)]


async def test_the_same_request_sent_20_times_at_once_executes_once(
    client: CommandClient, db: asyncpg.Connection, alice: User
) -> None:
    """Twenty concurrent deposits with one key and body store one event; the others replay it or get 409."""
    account_id = await open_account(client, alice.headers)
    headers = keyed(alice.headers, "pay-once-2026-11-24")
    body = {"amount": 250, "reference": "invoice 17"}

    responses = await asyncio.gather(
        *(client.post(_deposit_path(account_id), json=body, headers=headers) for _ in range(20))
    )

    assert client.in_flight.peak > 1, "the requests did not overlap"

    originals = [r for r in responses if r.status_code == 201 and REPLAYED not in r.headers]
    assert len(originals) == 1, [(r.status_code, dict(r.headers)) for r in responses]
    first = originals[0]
    for response in responses:
        if response is first:
            continue
        if response.status_code == 409:
            continue
        assert response.status_code == first.status_code, response.text
        assert response.content == first.content
        assert response.headers[REPLAYED] == "true"
        assert response.headers["consistency-token"] == first.headers["consistency-token"]
    assert (await _event_types(db, account_id)).count("MoneyDeposited") == 1
    assert await balance_of(db, account_id) == 250


async def test_concurrent_opens_with_one_key_open_one_account(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """Twenty concurrent openings with one key (each a new id, so no shared lock) open one account."""
    headers = keyed(alice.headers, "open-my-account")
    body = {"currency": "EUR", "name": "only one"}

    responses = await asyncio.gather(
        *(client.post("/v1/accounts", json=body, headers=headers) for _ in range(20))
    )

    successes = [r for r in responses if r.status_code == 201]
    assert all(r.status_code in (201, 409) for r in responses), [r.status_code for r in responses]
    assert len({r.json()["account_id"] for r in successes}) == 1
    assert sum(REPLAYED not in r.headers for r in successes) == 1
    assert await db.fetchval("SELECT count(*) FROM events WHERE event_type = 'AccountOpened'") == 1


async def test_the_same_request_through_two_app_instances_executes_once(
    service_environment: dict[str, str], db: asyncpg.Connection, alice: User
) -> None:
    """One key and body sent 10 times at once through each of two instances (no shared lock) executes once."""
    body = {"amount": 40, "reference": "double-click"}
    async with command_client(service_environment) as first, command_client(service_environment) as second:
        account_id = await open_account(first, alice.headers)
        headers = keyed(alice.headers, "across-processes")

        responses = await asyncio.gather(
            *(
                client.post(_deposit_path(account_id), json=body, headers=headers)
                for client in [first, second] * 10
            )
        )

    originals = [r for r in responses if r.status_code == 201 and REPLAYED not in r.headers]
    assert len(originals) == 1, [(r.status_code, r.text) for r in responses]
    for response in responses:
        assert response.status_code in (201, 409), response.text
        if response.status_code == 201:
            assert response.content == originals[0].content
    assert (await _event_types(db, account_id)).count("MoneyDeposited") == 1
    assert await balance_of(db, account_id) == 40


async def test_a_sequential_retry_replays_status_body_and_headers(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """Retrying an account opening with its key replays 201, the body, Location and Consistency-Token."""
    headers = keyed(alice.headers, "retry-me")
    body = {"currency": "EUR", "name": "retried"}
    before = await table_counts(db)

    first = await client.post("/v1/accounts", json=body, headers=headers)
    retry = await client.post("/v1/accounts", json=body, headers=headers)

    assert first.status_code == 201, first.text
    assert REPLAYED not in first.headers
    assert retry.status_code == 201
    assert retry.headers[REPLAYED] == "true"
    assert retry.content == first.content
    assert retry.headers["consistency-token"] == first.headers["consistency-token"]
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["content-type"] == first.headers["content-type"]
    # One execution: one event, its outbox and state rows, one record; the replay wrote nothing.
    assert await changes_since(db, before) == {
        "events": 1,
        "outbox": 1,
        "aggregate_states": 1,
        "idempotency_records": 1,
    }


async def test_the_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """Reusing a key for a different amount is a 422 idempotency-key-reused and executes nothing."""
    account_id = await open_account(client, alice.headers)
    headers = keyed(alice.headers, "k-1")
    first = await client.post(
        _deposit_path(account_id), json={"amount": 10, "reference": "a"}, headers=headers
    )
    assert first.status_code == 201, first.text
    before = await table_counts(db)

    response = await client.post(
        _deposit_path(account_id), json={"amount": 11, "reference": "a"}, headers=headers
    )

    assert_problem(response, 422, "/problems/idempotency-key-reused")
    assert await table_counts(db) == before
    assert await balance_of(db, account_id) == 10


async def test_the_same_key_on_another_route_is_422(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """The same key and body sent to withdrawals after deposits is a 422: the route is in the request."""
    account_id = await open_account(client, alice.headers)
    headers = keyed(alice.headers, "k-2")
    body = {"amount": 10, "reference": "a"}
    assert (await client.post(_deposit_path(account_id), json=body, headers=headers)).status_code == 201

    response = await withdraw(client, headers, account_id, 10, reference="a")

    assert_problem(response, 422, "/problems/idempotency-key-reused")
    assert await balance_of(db, account_id) == 10


async def test_another_principal_with_the_same_key_executes_independently(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, bob: User
) -> None:
    """Keys are scoped per principal: alice and bob using one key both execute, neither sees a replay."""
    alices = await open_account(client, alice.headers)
    bobs = await open_account(client, bob.headers)
    body = {"amount": 5, "reference": "same"}

    by_alice = await client.post(_deposit_path(alices), json=body, headers=keyed(alice.headers, "shared-key"))
    by_bob = await client.post(_deposit_path(bobs), json=body, headers=keyed(bob.headers, "shared-key"))

    assert (by_alice.status_code, by_bob.status_code) == (201, 201), (by_alice.text, by_bob.text)
    assert REPLAYED not in by_alice.headers
    assert REPLAYED not in by_bob.headers
    assert by_alice.json()["entry_id"] != by_bob.json()["entry_id"]
    assert (await balance_of(db, alices), await balance_of(db, bobs)) == (5, 5)
    assert (
        await db.fetchval("SELECT count(*) FROM idempotency_records WHERE idempotency_key = 'shared-key'")
        == 2
    )


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 300, id="300-chars"),
        pytest.param("has a space", id="space"),
        pytest.param("", id="empty"),
        pytest.param("tab\there", id="control-char"),
    ],
)
async def test_an_invalid_key_is_400(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, key: str
) -> None:
    """A key too long, empty, or not printable ASCII without spaces is a 400 and nothing runs."""
    account_id = await open_account(client, alice.headers)
    before = await table_counts(db)

    response = await client.post(
        _deposit_path(account_id), json={"amount": 1, "reference": "x"}, headers=keyed(alice.headers, key)
    )

    assert_problem(response, 400)
    assert await table_counts(db) == before


async def test_a_255_character_key_is_accepted(client: httpx.AsyncClient, alice: User) -> None:
    """The longest allowed key (255 printable characters) is accepted: the limit is not off by one."""
    account_id = await open_account(client, alice.headers)

    response = await client.post(
        _deposit_path(account_id),
        json={"amount": 1, "reference": "x"},
        headers=keyed(alice.headers, "k" * 255),
    )

    assert response.status_code == 201, response.text


async def test_a_refusal_is_replayed_even_after_the_world_changed(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """A keyed withdrawal refused for lack of funds replays its 409 after a deposit: the stored one wins."""
    account_id = await open_account(client, alice.headers)
    headers = keyed(alice.headers, "too-early")

    refused = await withdraw(client, headers, account_id, 100)
    assert_problem(refused, 409, "/problems/insufficient-funds")
    await deposit(client, alice.headers, account_id, 1_000)
    retry = await withdraw(client, headers, account_id, 100)

    assert retry.status_code == 409
    assert retry.headers[REPLAYED] == "true"
    assert retry.content == refused.content
    assert retry.headers["content-type"].startswith("application/problem+json")
    assert await balance_of(db, account_id) == 1_000
    assert "MoneyWithdrawn" not in await _event_types(db, account_id)


async def test_an_expired_record_no_longer_replays(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """Once its record has expired, the same key and body execute again and store a fresh record."""
    account_id = await open_account(client, alice.headers)
    headers = keyed(alice.headers, "short-lived")
    body = {"amount": 30, "reference": "monthly"}
    first = await client.post(_deposit_path(account_id), json=body, headers=headers)
    assert first.status_code == 201, first.text
    await db.execute(
        "UPDATE idempotency_records SET expires_at = now() - interval '1 second' WHERE idempotency_key = $1",
        "short-lived",
    )

    again = await client.post(_deposit_path(account_id), json=body, headers=headers)

    assert again.status_code == 201, again.text
    assert REPLAYED not in again.headers
    assert again.json()["entry_id"] != first.json()["entry_id"]
    assert again.json()["version"] == first.json()["version"] + 1
    assert (await _event_types(db, account_id)).count("MoneyDeposited") == 2
    assert await balance_of(db, account_id) == 60
    assert await db.fetchval(
        "SELECT expires_at > now() FROM idempotency_records WHERE idempotency_key = 'short-lived'"
    )
    replay = await client.post(_deposit_path(account_id), json=body, headers=headers)
    assert replay.headers[REPLAYED] == "true"
    assert replay.content == again.content


async def test_the_record_is_written_with_the_events_in_one_transaction(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """A keyed deposit leaves a 'completed' record of its 201, written in the transaction of its event."""
    account_id = await open_account(client, alice.headers)

    response = await client.post(
        _deposit_path(account_id),
        json={"amount": 7, "reference": "x"},
        headers=keyed(alice.headers, "atomic"),
    )

    assert response.status_code == 201, response.text
    record = await db.fetchrow(
        """
        SELECT state, response_status, response_body, response_headers::text AS headers,
               created_at, expires_at
          FROM idempotency_records WHERE principal = $1 AND idempotency_key = 'atomic'
        """,
        f"user:{alice.user_id}",
    )
    assert record is not None
    assert record["state"] == "completed"
    assert record["response_status"] == 201
    assert bytes(record["response_body"]) == response.content
    assert json.loads(record["headers"])["Consistency-Token"] == response.headers["consistency-token"]
    # now() is the start time of the transaction: equal stamps mean one transaction wrote both rows.
    recorded_at = await db.fetchval(
        "SELECT recorded_at FROM events WHERE stream_id = $1 AND event_type = 'MoneyDeposited'",
        uuid.UUID(account_id),
    )
    assert record["created_at"] == recorded_at
    assert 23 * 3600 < (record["expires_at"] - record["created_at"]).total_seconds() <= 24 * 3600
