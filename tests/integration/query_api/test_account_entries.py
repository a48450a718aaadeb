"""GET /v1/accounts/{id}/entries: the projected money movements, newest first, to the account's readers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.command_api.conftest import (
    CommandClient,
    assert_problem,
    deposit,
    open_account,
    register,
    transfer,
    withdraw,
)
from tests.integration.query_api.conftest import People
from tests.integration.query_api.ledger_helpers import field_errors, project

ENTRY_FIELDS = {
    "entry_id",
    "kind",
    "amount",
    "balance_after",
    "transfer_id",
    "counterparty_account_id",
    "reference",
    "recorded_at",
}


def _page(response: httpx.Response) -> tuple[list[tuple[str, int, int]], str | None]:
    """(kind, amount, balance_after) of each item, and the next cursor."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"items", "next_cursor"}
    assert all(set(item) == ENTRY_FIELDS for item in body["items"])
    return [(i["kind"], i["amount"], i["balance_after"]) for i in body["items"]], body["next_cursor"]


async def test_entries_come_newest_first_with_the_balance_after_each(
    commands: CommandClient,
    queries: httpx.AsyncClient,
    service_environment: dict[str, str],
    database_url: str,
    people: People,
) -> None:
    """Deposits, withdrawals and transfers appear newest first; `kind` filters; pages follow cursors."""
    alice, bob, admin = people
    account = await open_account(commands, alice.headers)
    other = await open_account(commands, bob.headers)
    await deposit(commands, alice.headers, account, 100, reference="salary")
    assert (await withdraw(commands, alice.headers, account, 30)).status_code == 201
    await deposit(commands, alice.headers, account, 50)
    sent = await transfer(commands, alice.headers, account, other, 20, reference="rent")
    assert sent.status_code == 201, sent.text
    await project(service_environment, database_url, "accounts", {account: 5, other: 2})
    url = f"/v1/accounts/{account}/entries"

    everything = await queries.get(url, headers=alice.headers)
    items, cursor = _page(everything)
    assert items == [
        ("transfer_out", 20, 100),
        ("deposit", 50, 120),
        ("withdrawal", 30, 70),
        ("deposit", 100, 100),
    ]
    assert cursor is None
    newest, oldest = everything.json()["items"][0], everything.json()["items"][-1]
    assert newest["transfer_id"] == sent.json()["transfer_id"]
    assert newest["counterparty_account_id"] == other
    assert newest["reference"] == "rent"
    assert (oldest["transfer_id"], oldest["counterparty_account_id"], oldest["reference"]) == (
        None,
        None,
        "salary",
    )
    assert newest["recorded_at"] >= oldest["recorded_at"]

    received, _ = _page(await queries.get(f"/v1/accounts/{other}/entries", headers=bob.headers))
    assert received == [("transfer_in", 20, 20)]
    deposits, cursor = _page(await queries.get(f"{url}?kind=deposit&limit=1", headers=alice.headers))
    assert deposits == [("deposit", 50, 120)]
    assert cursor is not None
    rest, last = _page(
        await queries.get(f"{url}?kind=deposit&limit=1&cursor={cursor}", headers=alice.headers)
    )
    assert (rest, last) == ([("deposit", 100, 100)], None)
    assert _page(await queries.get(url, headers=admin.headers))[0] == items

    assert_problem(await queries.get(url, headers=bob.headers), 404)
    # Another filter's or another account's cursor means nothing here.
    for wrong in (f"{url}?cursor={cursor}", f"/v1/accounts/{other}/entries?kind=deposit&cursor={cursor}"):
        refused = await queries.get(wrong, headers=admin.headers)
        assert_problem(refused, 422, "/problems/validation-error")
        assert field_errors(refused) == ["cursor"]


async def test_walking_entries_page_by_page_sees_each_once(
    commands: CommandClient,
    queries: httpx.AsyncClient,
    service_environment: dict[str, str],
    database_url: str,
) -> None:
    alice = await register(commands)
    account = await open_account(commands, alice.headers)
    for amount in range(1, 8):
        await deposit(commands, alice.headers, account, amount)
    await project(service_environment, database_url, "accounts", {account: 8})

    seen: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        items, cursor = _page(
            await queries.get(f"/v1/accounts/{account}/entries?{query}", headers=alice.headers)
        )
        seen += [amount for _, amount, _ in items]
        if cursor is None:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]


@pytest.mark.parametrize(
    ("query", "field"), [("kind=refund", "kind"), ("limit=501", "limit"), ("sort=x", "sort")]
)
async def test_entry_query_outside_the_whitelist_is_a_422(
    commands: CommandClient, queries: httpx.AsyncClient, query: str, field: str
) -> None:
    alice = await register(commands)
    account = await open_account(commands, alice.headers)

    response = await queries.get(f"/v1/accounts/{account}/entries?{query}", headers=alice.headers)

    assert_problem(response, 422, "/problems/validation-error")
    assert field_errors(response) == [field]
