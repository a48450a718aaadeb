"""GET /v1/accounts/{id} and GET /v1/accounts: who sees which accounts, filters, sorts and cursors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from tests.integration.command_api.conftest import (
    CommandClient,
    assert_problem,
    deposit,
    open_account,
    register,
    register_admin,
)
from tests.integration.query_api.conftest import People
from tests.integration.query_api.ledger_helpers import (
    account_row,
    field_errors,
    insert_accounts,
    project,
)

ACCOUNT_FIELDS = {
    "account_id",
    "owner_id",
    "name",
    "currency",
    "balance",
    "status",
    "version",
    "opened_at",
    "updated_at",
}
VALIDATION = "/problems/validation-error"


def _flipped(text: str) -> str:
    return ("B" if text[0] == "A" else "A") + text[1:]


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["account_id"] for item in response.json()["items"]]


async def test_an_account_is_seen_by_its_owner_and_admins_only(
    commands: CommandClient,
    queries: httpx.AsyncClient,
    service_environment: dict[str, str],
    database_url: str,
    people: People,
) -> None:
    """The owner and an admin read the projected account; another user gets the 404 of an unknown id."""
    alice, bob, admin = people
    account_id = await open_account(commands, alice.headers, currency="CHF", name="house")
    await deposit(commands, alice.headers, account_id, 250)
    await project(service_environment, database_url, "accounts", {account_id: 2})

    own = await queries.get(f"/v1/accounts/{account_id}", headers=alice.headers)
    by_admin = await queries.get(f"/v1/accounts/{account_id}", headers=admin.headers)
    by_other = await queries.get(f"/v1/accounts/{account_id}", headers=bob.headers)
    unknown = await queries.get(f"/v1/accounts/{uuid.uuid4()}", headers=alice.headers)

    assert own.status_code == 200, own.text
    body = own.json()
    assert set(body) == ACCOUNT_FIELDS
    assert body["account_id"] == account_id
    assert body["owner_id"] == str(alice.user_id)
    assert (body["name"], body["currency"], body["balance"], body["status"], body["version"]) == (
        "house",
        "CHF",
        250,
        "open",
        2,
    )
    assert datetime.fromisoformat(body["opened_at"]) <= datetime.fromisoformat(body["updated_at"])
    assert own.headers["etag"]
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json() == body
    assert assert_problem(by_other, 404)["detail"] == assert_problem(unknown, 404)["detail"]
    assert (await queries.get(f"/v1/accounts/{account_id}")).status_code == 401
    refused = await queries.get(f"/v1/accounts/{account_id}?x=1", headers=alice.headers)
    assert_problem(refused, 422, VALIDATION)
    assert field_errors(refused) == ["x"]


async def test_an_api_key_needs_the_ledger_read_scope(
    commands: CommandClient,
    queries: httpx.AsyncClient,
    db: asyncpg.Connection,
) -> None:
    """A key with ledger:read lists its user's accounts; one with only ledger:write gets 403."""
    alice = await register(commands)
    keys = {}
    for scope in ("ledger:read", "ledger:write"):
        created = await commands.post(
            "/v1/api-keys", json={"name": scope, "scopes": [scope]}, headers=alice.headers
        )
        assert created.status_code == 201, created.text
        keys[scope] = {"X-API-Key": created.json()["key"]}
    row = account_row(alice.user_id, opened_at=datetime.now(UTC))
    await insert_accounts(db, [row])

    reader = await queries.get("/v1/accounts", headers=keys["ledger:read"])
    writer = await queries.get("/v1/accounts", headers=keys["ledger:write"])

    assert _ids(reader) == [str(row["account_id"])]
    assert_problem(writer, 403, "/problems/insufficient-scope")


async def test_lists_hold_own_accounts_and_admins_choose_the_owner(
    commands: CommandClient,
    queries: httpx.AsyncClient,
    service_environment: dict[str, str],
    database_url: str,
    people: People,
) -> None:
    """A user lists their own accounts; an admin lists all or one owner's; a user naming an owner gets 403."""
    alice, bob, admin = people
    alice_main = await open_account(commands, alice.headers, currency="EUR", name="main")
    alice_usd = await open_account(commands, alice.headers, currency="USD", name="travel")
    bob_main = await open_account(commands, bob.headers, currency="EUR", name="bob")
    closed = await commands.post(f"/v1/accounts/{alice_usd}/close", headers=alice.headers)
    assert closed.status_code == 200, closed.text
    await project(service_environment, database_url, "accounts", {alice_main: 1, alice_usd: 2, bob_main: 1})

    own = await queries.get("/v1/accounts", headers=alice.headers)
    assert own.json()["next_cursor"] is None
    assert set(own.json()) == {"items", "next_cursor"}
    assert all(set(item) == ACCOUNT_FIELDS for item in own.json()["items"])
    # Default sort: opened_at ascending.
    assert _ids(own) == [alice_main, alice_usd]
    assert _ids(await queries.get("/v1/accounts", headers=bob.headers)) == [bob_main]
    everyone = _ids(await queries.get("/v1/accounts", headers=admin.headers))
    assert set(everyone) == {alice_main, alice_usd, bob_main}
    by_owner = await queries.get(f"/v1/accounts?owner_id={alice.user_id}", headers=admin.headers)
    assert _ids(by_owner) == [alice_main, alice_usd]
    for owner in (bob.user_id, alice.user_id):
        refused = await queries.get(f"/v1/accounts?owner_id={owner}", headers=alice.headers)
        assert_problem(refused, 403, "/problems/forbidden")

    filters = {
        "status=open": [alice_main],
        "status=closed": [alice_usd],
        "currency=USD": [alice_usd],
        "currency=EUR&status=closed": [],
        "currency=GBP": [],
        "sort=-opened_at": [alice_usd, alice_main],
        "sort=name": [alice_main, alice_usd],
        "sort=-name&limit=1": [alice_usd],
    }
    for query, expected in filters.items():
        assert _ids(await queries.get(f"/v1/accounts?{query}", headers=alice.headers)) == expected, query


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("sort=owner_id", "sort"),
        ("sort=-", "sort"),
        ("sort=name,balance", "sort"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("status=frozen", "status"),
        ("currency=eur", "currency"),
        ("currency=EURO", "currency"),
        ("owner=x", "owner"),
        ("limit=5&limit=6", "limit"),
        ("cursor=abc", "cursor"),
        ("owner_id=not-a-uuid", "owner_id"),
    ],
)
async def test_anything_outside_the_whitelist_is_a_422_naming_its_field(
    commands: CommandClient,
    queries: httpx.AsyncClient,
    service_environment: dict[str, str],
    query: str,
    field: str,
) -> None:
    admin = await register_admin(commands, service_environment)

    response = await queries.get(f"/v1/accounts?{query}", headers=admin.headers)

    assert_problem(response, 422, VALIDATION)
    assert field_errors(response) == [field]


async def test_a_cursor_is_refused_when_tampered_with_or_used_for_another_query(
    commands: CommandClient, queries: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Only the query that made a cursor takes it back (with any page size); anything else is a 422."""
    alice = await register(commands)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [account_row(alice.user_id, opened_at=start + timedelta(minutes=n)) for n in range(3)]
    await insert_accounts(db, rows)
    first = await queries.get("/v1/accounts?limit=1&status=open", headers=alice.headers)
    cursor = first.json()["next_cursor"]
    assert isinstance(cursor, str)
    body, mac = cursor.split(".")

    second = await queries.get(f"/v1/accounts?limit=2&status=open&cursor={cursor}", headers=alice.headers)
    assert _ids(second) == [str(row["account_id"]) for row in rows[1:]]
    assert second.json()["next_cursor"] is None

    # The first character of each part: every one of its bits counts (the last may hold filler bits).
    tampered = [f"{_flipped(body)}.{mac}", f"{body}.{_flipped(mac)}", body, f"{cursor}x"]
    refused = [f"status=open&cursor={bad}" for bad in tampered] + [
        f"{other}cursor={cursor}"
        for other in ("", "status=closed&", "sort=-opened_at&status=open&", "currency=EUR&status=open&")
    ]
    for query in refused:
        response = await queries.get(f"/v1/accounts?{query}", headers=alice.headers)
        assert_problem(response, 422, VALIDATION)
        assert field_errors(response) == ["cursor"], query
