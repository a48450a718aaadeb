"""GET /v1/accounts/{id} and GET /v1/accounts: accounts from the `read.accounts` projection.

A user sees their own accounts, an admin everyone's. Another user's account
answers 404, as an unknown one does, so that ids cannot be probed.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, ClassVar, Final
from uuid import UUID

import asyncpg
import msgspec
from litestar import Request, get
from litestar.params import FromPath

from query_api.answers import SMALL_ANSWER_OPT, JsonAnswer, cached_answer
from query_api.ledger.account_list import ACCOUNT_COLUMNS, AccountListQuery, list_sql
from query_api.pagination import (
    CURSOR_PARAMETER,
    LIMIT_PARAMETER,
    invalid,
    parse_limit,
    parse_sort,
    query_values,
)
from query_api.runtime import runtime_of
from shared.auth.principal import LEDGER_READ, Principal
from shared.cache.tags import projection_tag
from shared.http.openapi import ANSWER, PARAMETERS, QueryParameter
from shared.http.problems import problem
from shared.infrastructure.postgres import Connection

PROJECTION: Final = "accounts"
# Shared by the ledger routes: msgspec encoders are built once and reused.
JSON: Final = msgspec.json.Encoder()

_ONE: Final = f"SELECT {ACCOUNT_COLUMNS} FROM read.accounts WHERE account_id = $1"  # noqa: S608 - constants
ACCEPTED_LIST_PARAMETERS: Final = frozenset({"status", "currency", "sort", "limit", "cursor", "owner_id"})
# Public sort field -> column; the only names that ever reach the SQL text.
SORTS: Final = {"opened_at": "opened_at", "name": "name", "balance": "balance", "updated_at": "updated_at"}
DEFAULT_SORT: Final = "opened_at"
STATUSES: Final = frozenset({"open", "closed"})
_CURRENCY: Final = re.compile(r"[A-Z]{3}")
LIST_PARAMETERS: Final = (
    QueryParameter("status", "Only accounts in this status.", {"type": "string", "enum": sorted(STATUSES)}),
    QueryParameter(
        "currency", "Only accounts in this currency (ISO 4217).", {"type": "string", "pattern": "^[A-Z]{3}$"}
    ),
    QueryParameter(
        "sort",
        f"The order (default `{DEFAULT_SORT}`); `-` in front for descending.",
        {"type": "string", "enum": [*sorted(SORTS), *(f"-{name}" for name in sorted(SORTS))]},
    ),
    LIMIT_PARAMETER,
    CURSOR_PARAMETER,
    QueryParameter(
        "owner_id",
        "Only this owner's accounts (an admin's filter: a user sees only their own).",
        {"type": "string", "format": "uuid"},
    ),
)


class AccountAnswer(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {
        "account_id": "0192f5e4-7c3a-7d2e-9b1a-3f4e5d6c7b8a",
        "owner_id": "0192f5e1-2b3c-7d4e-8f5a-6b7c8d9e0f1a",
        "name": "Household",
        "currency": "EUR",
        "balance": 10500,
        "status": "open",
        "version": 3,
        "opened_at": "2026-11-02T09:15:00Z",
        "updated_at": "2026-11-24T17:42:10Z",
    }

    account_id: UUID
    owner_id: UUID
    name: str
    currency: str
    balance: int
    status: str
    version: int
    opened_at: datetime
    updated_at: datetime


class AccountsPage(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {"items": [AccountAnswer.example], "next_cursor": None}

    items: list[AccountAnswer]
    next_cursor: str | None


def account_answer(row: asyncpg.Record) -> AccountAnswer:
    return AccountAnswer(
        account_id=row["account_id"],
        owner_id=row["owner_id"],
        name=row["name"],
        currency=row["currency"],
        balance=row["balance"],
        status=row["status"],
        version=row["version"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
    )


async def visible_account(connection: Connection, account_id: UUID, principal: Principal) -> asyncpg.Record:
    """The account's row if the principal may see it; 404 alike for unknown and forbidden."""
    row = await connection.fetchrow(_ONE, account_id)
    if row is None or not principal.may_act_for(row["owner_id"]):
        raise problem(404, "No such account.")
    return row


@get(
    "/accounts/{account_id:uuid}",
    summary="One account",
    description="The account's balance and status as the `accounts` projection holds them.",
    operation_id="getAccount",
    tags=["ledger"],
    opt={SMALL_ANSWER_OPT: True, ANSWER: AccountAnswer},
)
async def get_account(request: Request[Any, Any, Any], account_id: FromPath[UUID]) -> JsonAnswer:
    runtime = runtime_of(request)
    principal = await runtime.authenticator.authenticate(request, scope=LEDGER_READ)
    query_values(request.query_params.multi_items(), ())

    async def compute() -> bytes:
        async with runtime.pool.acquire(timeout=runtime.acquire_timeout_seconds) as connection:
            row = await visible_account(connection, account_id, principal)
        return JSON.encode(account_answer(row))

    return await cached_answer(
        request,
        runtime,
        principal,
        projection=PROJECTION,
        query={},
        tags=[f"account:{account_id}"],
        compute=compute,
    )


@get(
    "/accounts",
    summary="List accounts",
    description=(
        "The caller's accounts (an admin's: everyone's, or one owner's with `owner_id`), "
        "filtered by `status` (open, closed) and `currency`, sorted by `sort` (opened_at, name, "
        "balance, updated_at; `-` in front for descending), `limit` (1-500, default 50) per page; "
        "pass `next_cursor` back as `cursor` for the next page."
    ),
    operation_id="listAccounts",
    tags=["ledger"],
    opt={ANSWER: AccountsPage, PARAMETERS: LIST_PARAMETERS},
)
async def list_accounts(request: Request[Any, Any, Any]) -> JsonAnswer:
    runtime = runtime_of(request)
    principal = await runtime.authenticator.authenticate(request, scope=LEDGER_READ)
    query = _parse_list(query_values(request.query_params.multi_items(), ACCEPTED_LIST_PARAMETERS), principal)
    after = query.after(runtime.cursors)

    async def compute() -> bytes:
        sql, arguments = list_sql(query, after)
        async with runtime.pool.acquire(timeout=runtime.acquire_timeout_seconds) as connection:
            rows = await connection.fetch(sql, *arguments)
        page = rows[: query.limit]
        next_cursor = query.cursor_after(runtime.cursors, page[-1]) if len(rows) > query.limit else None
        return JSON.encode(AccountsPage(items=[account_answer(row) for row in page], next_cursor=next_cursor))

    tags = [projection_tag(PROJECTION)] if query.owner_id is None else [f"owner:{query.owner_id}"]
    return await cached_answer(
        request,
        runtime,
        principal,
        projection=PROJECTION,
        query=query.normalised(),
        tags=tags,
        compute=compute,
    )


def _parse_list(values: dict[str, str], principal: Principal) -> AccountListQuery:
    status = values.get("status")
    if status is not None and status not in STATUSES:
        raise invalid("status", "must be open or closed")
    currency = values.get("currency")
    if currency is not None and not _CURRENCY.fullmatch(currency):
        raise invalid("currency", "must be an ISO 4217 code: three capital letters")
    column, descending = parse_sort(values.get("sort"), SORTS, default=DEFAULT_SORT)
    return AccountListQuery(
        owner_id=_owner_filter(values.get("owner_id"), principal),
        status=status,
        currency=currency,
        sort=values.get("sort", DEFAULT_SORT),
        column=column,
        descending=descending,
        limit=parse_limit(values.get("limit")),
        cursor=values.get("cursor"),
    )


def _owner_filter(raw: str | None, principal: Principal) -> UUID | None:
    """Whose accounts to list: the caller's own, unless an admin asks for one owner's or for all (None)."""
    if not principal.is_admin:
        if raw is not None:
            raise problem(
                403, "Only an admin may list another owner's accounts.", type_="/problems/forbidden"
            )
        return principal.user_id
    if raw is None:
        return None
    try:
        return UUID(raw)
    except ValueError as error:
        raise invalid("owner_id", "must be a UUID") from error
