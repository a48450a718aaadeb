"""What a command's answer reveals: nothing about accounts the caller cannot see."""

from __future__ import annotations

import uuid

import asyncpg

from shared.consistency import decode_token
from tests.integration.command_api.conftest import (
    CommandClient,
    User,
    assert_problem,
    deposit,
    open_account,
    transfer,
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
    assert_problem(await transfer(client, alice.headers, source, str(other), 10), 404)
