"""Requests refused at the edge: malformed, invalid, oversized or of the wrong type, and never stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.command_api.conftest import (
    User,
    assert_problem,
    changes_since,
    command_client,
    deposit,
    keyed,
    open_account,
    table_counts,
)

DEFAULT_MAX_BODY_BYTES = 65536


@pytest.fixture
async def account_id(client: httpx.AsyncClient, alice: User) -> str:
    """An open EUR account of alice's holding 1000."""
    account = await open_account(client, alice.headers)
    await deposit(client, alice.headers, account, 1_000)
    return account


async def test_an_unknown_field_is_422_naming_it(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, account_id: str
) -> None:
    """A body with a field the command does not know is a 422 whose first error names that field."""
    before = await table_counts(db)

    response = await client.post(
        f"/v1/accounts/{account_id}/deposits",
        json={"amount": 10, "reference": "x", "memo": "extra"},
        headers=alice.headers,
    )

    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "memo", body
    assert body["errors"][0]["message"]
    assert await table_counts(db) == before


async def test_an_unknown_field_on_a_command_without_fields_is_422(
    client: httpx.AsyncClient, alice: User, account_id: str
) -> None:
    """Even close, which takes no fields, refuses an unknown one with a 422 naming it."""
    response = await client.post(
        f"/v1/accounts/{account_id}/close", json={"force": True}, headers=alice.headers
    )

    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "force", body


@pytest.mark.parametrize(
    "amount",
    [
        pytest.param("100", id="string"),
        pytest.param(1.5, id="float"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="null"),
        pytest.param(0, id="zero"),
        pytest.param(-5, id="negative"),
        pytest.param(10**15 + 1, id="above-max"),
    ],
)
async def test_a_bad_amount_is_422_naming_amount(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, account_id: str, amount: Any
) -> None:
    """An amount of the wrong type, zero, negative or above the maximum is a 422 naming `amount`."""
    before = await table_counts(db)

    response = await client.post(
        f"/v1/accounts/{account_id}/withdrawals",
        json={"amount": amount, "reference": "x"},
        headers=alice.headers,
    )

    body = assert_problem(response, 422, "/problems/validation-error")
    assert body["errors"][0]["field"] == "amount", body
    assert await table_counts(db) == before


async def test_a_missing_field_is_422_naming_it(
    client: httpx.AsyncClient, alice: User, account_id: str
) -> None:
    """A deposit without `amount` is a 422 whose first error names `amount`."""
    response = await client.post(
        f"/v1/accounts/{account_id}/deposits", json={"reference": "x"}, headers=alice.headers
    )

    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "amount", body


async def test_a_bad_transfer_account_id_is_422_naming_it(
    client: httpx.AsyncClient, alice: User, account_id: str
) -> None:
    """A transfer whose `to_account_id` is not a UUID is a 422 naming `to_account_id`."""
    response = await client.post(
        "/v1/transfers",
        json={"from_account_id": account_id, "to_account_id": "nope", "amount": 1, "reference": "x"},
        headers=alice.headers,
    )

    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "to_account_id", body


async def test_malformed_json_is_400(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, account_id: str
) -> None:
    """A body that is not JSON at all is a 400 problem and stores nothing."""
    before = await table_counts(db)

    response = await client.post(
        f"/v1/accounts/{account_id}/deposits",
        content=b'{"amount": 10, "reference": ',
        headers={**alice.headers, "Content-Type": "application/json"},
    )

    assert_problem(response, 400)
    assert await table_counts(db) == before


async def test_a_non_json_content_type_is_415(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, account_id: str
) -> None:
    """A valid JSON body sent as text/plain is a 415 problem and stores nothing."""
    before = await table_counts(db)

    response = await client.post(
        f"/v1/accounts/{account_id}/deposits",
        content=json.dumps({"amount": 10, "reference": "x"}).encode(),
        headers={**alice.headers, "Content-Type": "text/plain"},
    )

    assert_problem(response, 415)
    assert await table_counts(db) == before


async def test_a_body_over_the_limit_is_413(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, account_id: str
) -> None:
    """A body larger than CQRS_MAX_BODY_BYTES (64 KiB by default) is a 413 problem and stores nothing."""
    before = await table_counts(db)
    oversized = json.dumps({"amount": 10, "reference": "x" * DEFAULT_MAX_BODY_BYTES}).encode()
    assert len(oversized) > DEFAULT_MAX_BODY_BYTES

    response = await client.post(
        f"/v1/accounts/{account_id}/deposits",
        content=oversized,
        headers={**keyed(alice.headers, "big-one"), "Content-Type": "application/json"},
    )

    assert_problem(response, 413)
    assert await table_counts(db) == before


async def test_a_streamed_body_over_the_limit_is_413(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, account_id: str
) -> None:
    """A body over the limit sent chunked, with no Content-Length to refuse it by, is still a 413."""
    before = await table_counts(db)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"amount": 10, "reference": "'
        for _ in range(DEFAULT_MAX_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    response = await client.post(
        f"/v1/accounts/{account_id}/deposits",
        content=chunks(),
        headers={**alice.headers, "Content-Type": "application/json"},
    )

    assert "content-length" not in response.request.headers
    assert_problem(response, 413)
    assert await table_counts(db) == before


async def test_a_rejected_request_with_a_key_stores_neither_events_nor_a_record(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, account_id: str
) -> None:
    """An invalid command sent with an Idempotency-Key stores nothing: the key stays free for a fix."""
    before = await table_counts(db)
    headers = keyed(alice.headers, "fix-me-then-retry")

    rejected = await client.post(
        f"/v1/accounts/{account_id}/deposits", json={"amount": -1, "reference": "x"}, headers=headers
    )

    assert_problem(rejected, 422)
    assert await table_counts(db) == before
    fixed = await client.post(
        f"/v1/accounts/{account_id}/deposits", json={"amount": 1, "reference": "x"}, headers=headers
    )
    assert fixed.status_code == 201, fixed.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"currency": "eur", "name": "x"}, "currency", id="lowercase-currency"),
        pytest.param({"currency": "EURO", "name": "x"}, "currency", id="four-letter-currency"),
        pytest.param({"currency": "EUR", "name": ""}, "name", id="empty-name"),
        pytest.param({"currency": "EUR"}, "name", id="missing-name"),
        pytest.param({"currency": "EUR", "name": "a\u0000b"}, "name", id="nul-in-name"),
        pytest.param({"currency": "EUR", "name": "tab\there"}, "name", id="control-in-name"),
    ],
)
async def test_a_bad_open_account_body_is_422_naming_the_field(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, body: dict[str, str], field: str
) -> None:
    """An account opening with a malformed currency or name is a 422 naming that field; nothing is stored."""
    before = await table_counts(db)

    response = await client.post("/v1/accounts", json=body, headers=alice.headers)

    problem = assert_problem(response, 422)
    assert problem["errors"][0]["field"] == field, problem
    assert await table_counts(db) == before


async def test_an_empty_reference_is_422(client: httpx.AsyncClient, alice: User, account_id: str) -> None:
    """A deposit with an empty `reference` is a 422 naming `reference`."""
    response = await client.post(
        f"/v1/accounts/{account_id}/deposits", json={"amount": 1, "reference": ""}, headers=alice.headers
    )

    problem = assert_problem(response, 422)
    assert problem["errors"][0]["field"] == "reference", problem


async def test_a_nul_in_a_reference_is_422_and_stores_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, account_id: str
) -> None:
    """PostgreSQL cannot store a NUL: refused at the edge, not a 500 at the write."""
    before = await table_counts(db)
    response = await client.post(
        f"/v1/accounts/{account_id}/deposits",
        json={"amount": 1, "reference": "r\u0000"},
        headers=alice.headers,
    )

    problem = assert_problem(response, 422)
    assert problem["errors"][0]["field"] == "reference", problem
    assert await table_counts(db) == before


async def test_a_deployment_requiring_keys_refuses_a_command_without_one(
    service_environment: dict[str, str], db: asyncpg.Connection, alice: User
) -> None:
    """With CQRS_REQUIRE_IDEMPOTENCY_KEY=true a command without a key is a 400 and one with a key runs."""
    environment = {**service_environment, "CQRS_REQUIRE_IDEMPOTENCY_KEY": "true"}
    body = {"currency": "EUR", "name": "strict"}
    before = await table_counts(db)
    async with command_client(environment) as strict:
        without = await strict.post("/v1/accounts", json=body, headers=alice.headers)
        changes_after_refusal = await changes_since(db, before)
        with_key = await strict.post("/v1/accounts", json=body, headers=keyed(alice.headers, "strict-1"))

    assert_problem(without, 400)
    assert changes_after_refusal == {}
    assert with_key.status_code == 201, with_key.text
    assert await changes_since(db, before) == {
        "events": 1,
        "outbox": 1,
        "aggregate_states": 1,
        "idempotency_records": 1,
    }
