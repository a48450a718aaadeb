"""What a command's answer reveals: nothing about accounts the caller cannot see."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import asyncpg
import httpx

from shared.consistency import decode_token
from tests.integration.command_api.conftest import (
    CommandClient,
    User,
    assert_problem,
    balance_of,
    deposit,
    open_account,
    table_counts,
    transfer,
    withdraw,
)


async def _deposit_raw(
    client: httpx.AsyncClient, headers: Mapping[str, str], account_id: str, amount: int
) -> httpx.Response:
    return await client.post(
        f"/v1/accounts/{account_id}/deposits", json={"amount": amount, "reference": "x"}, headers=headers
    )


async def test_a_transfer_to_another_user_hides_the_receiving_version(
    client: CommandClient, alice: User, bob: User
) -> None:
    """The answer and the token carry the sender's version only, when the receiver is someone else's."""
    source = await open_account(client, alice.headers)
    target = await open_account(client, bob.headers)
    await deposit(client, alice.headers, source, 100)
    response = await transfer(client, alice.headers, source, target, 40)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["to_version"] is None
    assert body["from_version"] == 3
    assert set(decode_token(body["consistency_token"])) == {uuid.UUID(source)}


async def test_a_transfer_between_own_accounts_shows_both_versions(
    client: CommandClient, alice: User
) -> None:
    """Between the caller's own accounts both versions are in the answer and the token."""
    source = await open_account(client, alice.headers)
    target = await open_account(client, alice.headers)
    await deposit(client, alice.headers, source, 100)
    body = (await transfer(client, alice.headers, source, target, 40)).json()
    assert body["to_version"] == 2
    assert set(decode_token(body["consistency_token"])) == {uuid.UUID(source), uuid.UUID(target)}


async def test_a_currency_refusal_does_not_name_the_receivers_currency(
    client: CommandClient, alice: User, bob: User
) -> None:
    """Refusing a cross-currency transfer says that the currencies differ, not which one the receiver has."""
    source = await open_account(client, alice.headers, currency="EUR")
    target = await open_account(client, bob.headers, currency="JPY")
    await deposit(client, alice.headers, source, 100)
    body = assert_problem(await transfer(client, alice.headers, source, target, 40), 422)
    assert "JPY" not in body["detail"]


async def test_a_malformed_traceparent_is_not_stored(
    client: CommandClient, alice: User, db: asyncpg.Connection
) -> None:
    """Only a well-formed W3C traceparent reaches the event's metadata."""
    headers = {**alice.headers, "traceparent": "00-zz\r\nInjected: yes-not-a-trace"}
    account = await open_account(client, headers)
    metadata = await db.fetchval("SELECT metadata::text FROM events WHERE stream_id = $1", uuid.UUID(account))
    assert "traceparent" not in metadata


async def test_a_transfer_to_an_id_of_another_aggregate_is_a_404(
    client: CommandClient, alice: User, db: asyncpg.Connection
) -> None:
    """An id whose stream belongs to another kind of aggregate is no account: 404, not a 500."""
    other = uuid.uuid4()
    await db.execute(
        "INSERT INTO aggregate_states (stream_id, stream_type, version, state)"
        " VALUES ($1, 'gadget', 1, '{}')",
        other,
    )
    source = await open_account(client, alice.headers)
    await deposit(client, alice.headers, source, 100)
    before = await table_counts(db)
    assert_problem(await transfer(client, alice.headers, source, str(other), 10), 404)
    assert await table_counts(db) == before
    assert await balance_of(db, source) == 100


async def test_a_users_own_stream_is_no_account(
    client: CommandClient, alice: User, db: asyncpg.Connection
) -> None:
    """A registered user's id names a stream of type 'user': as an account id it is a 404 everywhere."""
    user_stream = await db.fetchval(
        "SELECT stream_type FROM aggregate_states WHERE stream_id = $1", alice.user_id
    )
    assert user_stream == "user"
    source = await open_account(client, alice.headers)
    await deposit(client, alice.headers, source, 100)
    before = await table_counts(db)

    into_user = await transfer(client, alice.headers, source, str(alice.user_id), 10)
    out_of_user = await transfer(client, alice.headers, str(alice.user_id), source, 10)
    deposited = await _deposit_raw(client, alice.headers, str(alice.user_id), 10)
    withdrawn = await withdraw(client, alice.headers, str(alice.user_id), 10)
    closed = await client.post(f"/v1/accounts/{alice.user_id}/close", headers=alice.headers)

    for response in (into_user, out_of_user, deposited, withdrawn, closed):
        assert_problem(response, 404)
    assert await table_counts(db) == before
    assert await balance_of(db, source) == 100
