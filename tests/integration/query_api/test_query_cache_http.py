"""The query API's cache and consistency tokens over HTTP, with the real relay and projectors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from prometheus_client import REGISTRY

from tests.integration.command_api.conftest import (
    CommandClient,
    deposit,
    open_account,
    register,
)
from tests.integration.query_api.ledger_helpers import (
    account_row,
    insert_accounts,
    projecting,
)


def _cache_hits() -> float:
    """Answers the query cache served (in-process tier or Redis) in this process so far."""
    return sum(
        REGISTRY.get_sample_value("cqrs_query_cache_lookups_total", {"result": r}) or 0.0
        for r in ("local_hit", "hit")
    )


async def test_read_your_writes_a_query_with_the_token_always_sees_the_write(
    commands: CommandClient, queries: httpx.AsyncClient, service_environment: dict[str, str]
) -> None:
    user = await register(commands)
    async with projecting(service_environment, "accounts"):
        account = await open_account(commands, user.headers)
        expected = 0
        for amount in range(1, 21):
            written = await deposit(commands, user.headers, account, amount)
            expected += amount
            # The previous round cached this account's answer: the token must not be served it.
            response = await queries.get(
                f"/v1/accounts/{account}",
                headers={**user.headers, "Consistency-Token": written["consistency_token"]},
            )
            assert response.status_code == 200, response.text
            assert response.json()["balance"] == expected
            entries = await queries.get(
                f"/v1/accounts/{account}/entries",
                headers={**user.headers, "Consistency-Token": written["consistency_token"]},
            )
            assert entries.status_code == 200, entries.text
            assert entries.json()["items"][0]["balance_after"] == expected


async def test_through_the_cache_a_user_never_receives_another_users_body(
    commands: CommandClient, queries: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    alice, bob = await register(commands), await register(commands)
    now = datetime.now(UTC)
    await insert_accounts(
        db,
        [
            account_row(alice.user_id, opened_at=now, name="alice's"),
            account_row(bob.user_id, opened_at=now + timedelta(seconds=1), name="bob's"),
        ],
    )
    for round_ in range(2):
        served_before = _cache_hits()
        mine = await queries.get("/v1/accounts", headers=alice.headers)
        theirs = await queries.get("/v1/accounts", headers=bob.headers)
        assert [a["name"] for a in mine.json()["items"]] == ["alice's"]
        assert [a["name"] for a in theirs.json()["items"]] == ["bob's"]
        # The query API runs in this process: its cache counter says where the answers came from.
        assert _cache_hits() - served_before == (2 if round_ else 0)
    alices_account = mine.json()["items"][0]["account_id"]
    assert (await queries.get(f"/v1/accounts/{alices_account}", headers=alice.headers)).status_code == 200
    assert (await queries.get(f"/v1/accounts/{alices_account}", headers=bob.headers)).status_code == 404


async def test_an_etag_on_every_answer_and_304_for_if_none_match(
    commands: CommandClient, queries: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await register(commands)
    await insert_accounts(db, [account_row(user.user_id, opened_at=datetime.now(UTC))])
    first = await queries.get("/v1/accounts", headers=user.headers)
    etag = first.headers["ETag"]
    again = await queries.get("/v1/accounts", headers={**user.headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    other = await queries.get("/v1/accounts", headers={**user.headers, "If-None-Match": '"something-else"'})
    assert other.status_code == 200
    assert other.headers["ETag"] == etag


async def test_large_answers_are_compressed_as_negotiated(
    commands: CommandClient, queries: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await register(commands)
    now = datetime.now(UTC)
    await insert_accounts(
        db, [account_row(user.user_id, opened_at=now + timedelta(seconds=i), name=f"a{i}") for i in range(60)]
    )
    plain = await queries.get(
        "/v1/accounts?limit=60", headers={**user.headers, "Accept-Encoding": "identity"}
    )
    brotli = await queries.get("/v1/accounts?limit=60", headers={**user.headers, "Accept-Encoding": "br"})
    gzipped = await queries.get("/v1/accounts?limit=60", headers={**user.headers, "Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert brotli.headers["content-encoding"] == "br"
    assert gzipped.headers["content-encoding"] == "gzip"
    # httpx decodes both; the bodies are the same answer.
    assert brotli.json() == gzipped.json() == plain.json()
    assert int(brotli.headers["content-length"]) < len(plain.content) / 3


async def test_a_token_the_read_model_cannot_reach_in_time_is_a_503_with_retry_after(
    commands: CommandClient, queries: httpx.AsyncClient
) -> None:
    """No projector runs here: the write never reaches the read model within the bound."""
    user = await register(commands)
    account = await open_account(commands, user.headers)
    written = await deposit(commands, user.headers, account, 5)
    response = await queries.get(
        f"/v1/accounts/{account}", headers={**user.headers, "Consistency-Token": written["consistency_token"]}
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_forged_consistency_token_is_a_400(
    commands: CommandClient, queries: httpx.AsyncClient
) -> None:
    user = await register(commands)
    response = await queries.get(
        f"/v1/accounts/{uuid.uuid4()}", headers={**user.headers, "Consistency-Token": "forged"}
    )
    assert response.status_code == 400
