"""Every ledger command over HTTP against PostgreSQL: answers per contract.md, and what the store holds."""

from __future__ import annotations

import json
import uuid

import asyncpg
import httpx

from shared.consistency import decode_token
from tests.integration.command_api.conftest import (
    User,
    assert_problem,
    balance_of,
    deposit,
    open_account,
    stored_state,
    stream_events,
    table_counts,
    transfer,
    withdraw,
)


async def test_open_account_answers_201_with_ids_location_and_token(
    client: httpx.AsyncClient, alice: User
) -> None:
    """Opening an account answers 201 with account_id, version 1, a Location and the token twice."""
    response = await client.post(
        "/v1/accounts", json={"currency": "EUR", "name": "Savings"}, headers=alice.headers
    )

    assert response.status_code == 201, response.text
    body = response.json()
    account_id = uuid.UUID(body["account_id"])
    assert body["version"] == 1
    assert response.headers["location"] == f"/v1/accounts/{account_id}"
    assert response.headers["consistency-token"] == body["consistency_token"]
    assert decode_token(body["consistency_token"]) == {account_id: 1}
    assert response.headers["content-type"].startswith("application/json")


async def test_deposit_and_withdrawal_answer_201_with_entry_and_increasing_version(
    client: httpx.AsyncClient, alice: User
) -> None:
    """A deposit and then a withdrawal each answer 201 with an entry_id, and the version goes 2 then 3."""
    account_id = await open_account(client, alice.headers)

    deposited = await client.post(
        f"/v1/accounts/{account_id}/deposits",
        json={"amount": 500, "reference": "salary"},
        headers=alice.headers,
    )
    withdrawn = await withdraw(client, alice.headers, account_id, 200)

    assert deposited.status_code == 201, deposited.text
    assert withdrawn.status_code == 201, withdrawn.text
    first, second = deposited.json(), withdrawn.json()
    assert first["account_id"] == second["account_id"] == account_id
    assert (first["version"], second["version"]) == (2, 3)
    assert uuid.UUID(first["entry_id"]) != uuid.UUID(second["entry_id"])
    for response, body in ((deposited, first), (withdrawn, second)):
        assert response.headers["consistency-token"] == body["consistency_token"]
        assert decode_token(body["consistency_token"]) == {uuid.UUID(account_id): body["version"]}


async def test_transfer_answers_201_with_both_versions(client: httpx.AsyncClient, alice: User) -> None:
    """A transfer answers 201 with transfer_id, from_version, to_version and a token naming both."""
    source = await open_account(client, alice.headers)
    target = await open_account(client, alice.headers)
    await deposit(client, alice.headers, source, 1_000)

    response = await transfer(client, alice.headers, source, target, 300)

    assert response.status_code == 201, response.text
    body = response.json()
    uuid.UUID(body["transfer_id"])
    assert (body["from_account_id"], body["to_account_id"]) == (source, target)
    assert (body["from_version"], body["to_version"]) == (3, 2)
    assert response.headers["consistency-token"] == body["consistency_token"]
    assert decode_token(body["consistency_token"]) == {uuid.UUID(source): 3, uuid.UUID(target): 2}


async def test_close_at_zero_balance_answers_200(client: httpx.AsyncClient, alice: User) -> None:
    """Closing an account whose balance is back to zero answers 200 with the new version."""
    account_id = await open_account(client, alice.headers)
    await deposit(client, alice.headers, account_id, 50)
    assert (await withdraw(client, alice.headers, account_id, 50)).status_code == 201

    response = await client.post(f"/v1/accounts/{account_id}/close", headers=alice.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["account_id"] == account_id
    assert body["version"] == 4
    assert response.headers["consistency-token"] == body["consistency_token"]


async def test_a_flow_is_stored_as_events_with_outbox_rows_and_a_matching_state_row(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """Each command of a flow stores one event with an outbox row, and the state row keeps in step."""
    account_id = await open_account(client, alice.headers)
    other = await open_account(client, alice.headers)
    await deposit(client, alice.headers, account_id, 700)
    assert (await withdraw(client, alice.headers, account_id, 200)).status_code == 201
    assert (await transfer(client, alice.headers, account_id, other, 500)).status_code == 201
    assert (await client.post(f"/v1/accounts/{account_id}/close", headers=alice.headers)).status_code == 200

    rows = await db.fetch(
        "SELECT event_type, version FROM events WHERE stream_id=$1 ORDER BY version", uuid.UUID(account_id)
    )
    assert [(row["event_type"], row["version"]) for row in rows] == [
        ("AccountOpened", 1),
        ("MoneyDeposited", 2),
        ("MoneyWithdrawn", 3),
        ("TransferSent", 4),
        ("AccountClosed", 5),
    ]
    assert all(row["queued"] for row in await stream_events(db, account_id)), "an event has no outbox row"
    version, state = await stored_state(db, account_id)
    assert version == 5
    assert state["balance"] == 0
    assert state["status"] == "closed"
    assert [(row["event_type"], row["version"]) for row in await stream_events(db, other)] == [
        ("AccountOpened", 1),
        ("TransferReceived", 2),
    ]
    assert await balance_of(db, other) == 500


async def test_withdrawing_more_than_the_balance_is_409_insufficient_funds(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """A withdrawal above the balance is a 409 insufficient-funds problem and stores no event."""
    account_id = await open_account(client, alice.headers)
    await deposit(client, alice.headers, account_id, 100)
    before = await table_counts(db)

    response = await withdraw(client, alice.headers, account_id, 101)

    assert_problem(response, 409, "/problems/insufficient-funds")
    assert "consistency-token" not in response.headers
    assert await table_counts(db) == before
    assert await balance_of(db, account_id) == 100


async def test_an_unknown_currency_is_422(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """Opening an account in "XYZ", which is no ISO 4217 currency, is a 422 and stores nothing."""
    before = await table_counts(db)

    response = await client.post(
        "/v1/accounts", json={"currency": "XYZ", "name": "odd"}, headers=alice.headers
    )

    assert_problem(response, 422, "/problems/unknown-currency")
    assert await table_counts(db) == before


async def test_a_transfer_between_currencies_is_422(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """A transfer from a EUR account to a USD account is a 422 currency-mismatch and moves nothing."""
    euros = await open_account(client, alice.headers, "EUR")
    dollars = await open_account(client, alice.headers, "USD")
    await deposit(client, alice.headers, euros, 1_000)
    before = await table_counts(db)

    response = await transfer(client, alice.headers, euros, dollars, 10)

    assert_problem(response, 422, "/problems/currency-mismatch")
    assert await table_counts(db) == before
    assert (await balance_of(db, euros), await balance_of(db, dollars)) == (1_000, 0)


async def test_a_transfer_to_the_same_account_is_422(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """A transfer whose source and target are the same account is a 422 and stores nothing."""
    account_id = await open_account(client, alice.headers)
    await deposit(client, alice.headers, account_id, 1_000)
    before = await table_counts(db)

    response = await transfer(client, alice.headers, account_id, account_id, 10)

    assert_problem(response, 422, "/problems/same-account")
    assert await table_counts(db) == before


async def test_closing_with_a_balance_is_409(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """Closing an account that still holds money is a 409 balance-not-zero and leaves it open."""
    account_id = await open_account(client, alice.headers)
    await deposit(client, alice.headers, account_id, 1)
    before = await table_counts(db)

    response = await client.post(f"/v1/accounts/{account_id}/close", headers=alice.headers)

    assert_problem(response, 409, "/problems/balance-not-zero")
    assert await table_counts(db) == before
    _, state = await stored_state(db, account_id)
    assert state["status"] == "open"


async def test_depositing_into_a_closed_account_is_409(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """A deposit into a closed account is a 409 account-closed and stores no event."""
    account_id = await open_account(client, alice.headers)
    assert (await client.post(f"/v1/accounts/{account_id}/close", headers=alice.headers)).status_code == 200
    before = await table_counts(db)

    response = await client.post(
        f"/v1/accounts/{account_id}/deposits", json={"amount": 10, "reference": "late"}, headers=alice.headers
    )

    assert_problem(response, 409, "/problems/account-closed")
    assert await table_counts(db) == before
    assert [row["event_type"] for row in await stream_events(db, account_id)] == [
        "AccountOpened",
        "AccountClosed",
    ]


async def test_a_command_on_a_missing_account_is_404(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """A deposit into an account id that was never opened is a 404 problem and stores nothing."""
    before = await table_counts(db)

    response = await client.post(
        f"/v1/accounts/{uuid.uuid4()}/deposits", json={"amount": 10, "reference": "x"}, headers=alice.headers
    )

    assert_problem(response, 404)
    assert await table_counts(db) == before


async def test_events_carry_the_requests_correlation_causation_and_trace(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """An event's metadata names the request's correlation id, its request id as cause, its traceparent."""
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = {
        **alice.headers,
        "X-Request-Id": "req-0001",
        "X-Correlation-Id": "corr-0001",
        "traceparent": traceparent,
    }

    account_id = await open_account(client, headers)

    metadata = await db.fetchval(
        "SELECT metadata::text FROM events WHERE stream_id = $1", uuid.UUID(account_id)
    )
    assert json.loads(metadata) == {
        "correlation_id": "corr-0001",
        "causation_id": "req-0001",
        "traceparent": traceparent,
    }
