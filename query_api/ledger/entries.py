"""GET /v1/accounts/{id}/entries: an account's money movements, newest first, a page at a time.

An entry's stream version orders the account's entries and is unique within
it, so the cursor is the last version shown and the next page reads the
(account_id, version) index backward from there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Final
from uuid import UUID

import asyncpg
import msgspec
from litestar import Request, get
from litestar.params import FromPath

from query_api.answers import JsonAnswer, cached_answer
from query_api.ledger.accounts import JSON, PROJECTION, visible_account
from query_api.pagination import (
    CURSOR_PARAMETER,
    LIMIT_PARAMETER,
    CursorSigner,
    bad_cursor,
    invalid,
    parse_limit,
    query_values,
)
from query_api.runtime import runtime_of
from shared.auth.principal import LEDGER_READ
from shared.http.openapi import ANSWER, PARAMETERS, QueryParameter

ACCEPTED_PARAMETERS: Final = frozenset({"limit", "cursor", "kind"})
KINDS: Final = frozenset({"deposit", "withdrawal", "transfer_in", "transfer_out"})
ENTRY_PARAMETERS: Final = (
    QueryParameter("kind", "Only entries of this kind.", {"type": "string", "enum": sorted(KINDS)}),
    LIMIT_PARAMETER,
    CURSOR_PARAMETER,
)
_SELECT: Final = """
SELECT entry_id, version, kind, amount, balance_after, transfer_id, counterparty_account_id,
       reference, recorded_at
  FROM read.account_entries
 WHERE account_id = $1"""
# One fixed statement per shape, rather than "$n IS NULL OR ...": a generic plan of
# that would filter the cursor's bound instead of starting the index scan at it,
# reading every newer entry again for each later page.
_PAGES: Final = {
    (False, False): f"{_SELECT} ORDER BY version DESC LIMIT $2",
    (True, False): f"{_SELECT} AND kind = $3 ORDER BY version DESC LIMIT $2",
    (False, True): f"{_SELECT} AND version < $3 ORDER BY version DESC LIMIT $2",
    (True, True): f"{_SELECT} AND kind = $3 AND version < $4 ORDER BY version DESC LIMIT $2",
}


class EntryAnswer(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {
        "entry_id": "0192f5e6-1a2b-7c3d-9e4f-5a6b7c8d9e0f",
        "kind": "deposit",
        "amount": 12500,
        "balance_after": 12500,
        "transfer_id": None,
        "counterparty_account_id": None,
        "reference": "salary November",
        "recorded_at": "2026-11-24T17:42:10Z",
    }

    entry_id: UUID
    kind: str
    amount: int
    balance_after: int
    transfer_id: UUID | None
    counterparty_account_id: UUID | None
    reference: str
    recorded_at: datetime


class EntriesPage(msgspec.Struct, frozen=True, kw_only=True):
    example: ClassVar[dict[str, Any]] = {
        "items": [EntryAnswer.example],
        "next_cursor": "eyJrIjpbIjIwMjYtMTEtMjQiXX0.c2ln",
    }

    items: list[EntryAnswer]
    next_cursor: str | None


def _entry_answer(row: asyncpg.Record) -> EntryAnswer:
    return EntryAnswer(
        entry_id=row["entry_id"],
        kind=row["kind"],
        amount=row["amount"],
        balance_after=row["balance_after"],
        transfer_id=row["transfer_id"],
        counterparty_account_id=row["counterparty_account_id"],
        reference=row["reference"],
        recorded_at=row["recorded_at"],
    )


def _binding(account_id: UUID, kind: str | None) -> str:
    return f"GET /v1/accounts/{account_id}/entries kind={kind or ''}"


def _before_version(signer: CursorSigner, cursor: str | None, binding: str) -> int | None:
    if cursor is None:
        return None
    payload = signer.decode(cursor, bound_to=binding)
    try:
        return msgspec.convert(payload.get("before_version"), int)
    except msgspec.ValidationError as error:
        raise bad_cursor() from error


@get(
    "/accounts/{account_id:uuid}/entries",
    summary="An account's entries",
    description=(
        "The account's deposits, withdrawals and transfers, newest first, each with the balance after "
        "it; `kind` filters (deposit, withdrawal, transfer_in, transfer_out), `limit` (1-500, default 50) "
        "per page; pass `next_cursor` back as `cursor` for the next page."
    ),
    operation_id="listAccountEntries",
    opt={ANSWER: EntriesPage, PARAMETERS: ENTRY_PARAMETERS},
    tags=["ledger"],
)
async def list_entries(request: Request[Any, Any, Any], account_id: FromPath[UUID]) -> JsonAnswer:
    runtime = runtime_of(request)
    principal = await runtime.authenticator.authenticate(request, scope=LEDGER_READ)
    values = query_values(request.query_params.multi_items(), ACCEPTED_PARAMETERS)
    kind = values.get("kind")
    if kind is not None and kind not in KINDS:
        raise invalid("kind", "must be one of " + ", ".join(sorted(KINDS)))
    limit = parse_limit(values.get("limit"))
    cursor = values.get("cursor")
    binding = _binding(account_id, kind)
    before = _before_version(runtime.cursors, cursor, binding)

    async def compute() -> bytes:
        async with runtime.pool.acquire(timeout=runtime.acquire_timeout_seconds) as connection:
            await visible_account(connection, account_id, principal)
            arguments = [value for value in (kind, before) if value is not None]
            sql = _PAGES[kind is not None, before is not None]
            rows = await connection.fetch(sql, account_id, limit + 1, *arguments)
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = runtime.cursors.encode({"before_version": page[-1]["version"]}, bound_to=binding)
        return JSON.encode(EntriesPage(items=[_entry_answer(row) for row in page], next_cursor=next_cursor))

    query = {"limit": str(limit)}
    if kind is not None:
        query["kind"] = kind
    if cursor is not None:
        query["cursor"] = cursor
    return await cached_answer(
        request,
        runtime,
        principal,
        projection=PROJECTION,
        query=query,
        tags=[f"account:{account_id}"],
        compute=compute,
    )
