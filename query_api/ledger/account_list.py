"""The account list's keyset query: its validated parameters, its cursor and its SQL.

Rows are ordered by the sort column, then by account id to break ties, both
in the same direction; a page starts strictly after the (value, id) pair of
the previous page's last row. Rows inserted or removed meanwhile therefore
never shift the rows of a later page, unlike OFFSET.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

import asyncpg
import msgspec

from query_api.pagination import CursorSigner, bad_cursor

ACCOUNT_COLUMNS: Final = (
    "account_id, owner_id, name, currency, balance, status, version, opened_at, updated_at"
)
# Per sortable column: the Python type its cursor value decodes to, and the SQL type
# of the parameter (a row comparison does not infer it from the column).
_CURSOR_TYPES: Final[dict[str, tuple[type, str]]] = {
    "opened_at": (datetime, "timestamptz"),
    "updated_at": (datetime, "timestamptz"),
    "name": (str, "text"),
    "balance": (int, "bigint"),
}
ALL_OWNERS: Final = "*"


@dataclass(frozen=True, slots=True)
class AccountListQuery:
    # None: every owner's (an admin's list).
    owner_id: UUID | None
    status: str | None
    currency: str | None
    # As the client wrote it ("-balance"); `column` and `descending` are what it means.
    sort: str
    column: str
    descending: bool
    limit: int
    cursor: str | None

    def normalised(self) -> dict[str, str]:
        """Every parameter that shapes the answer, defaults included: the cache key's query part."""
        values = {"sort": self.sort, "limit": str(self.limit)}
        if self.owner_id is not None:
            values["owner_id"] = str(self.owner_id)
        if self.status is not None:
            values["status"] = self.status
        if self.currency is not None:
            values["currency"] = self.currency
        if self.cursor is not None:
            values["cursor"] = self.cursor
        return values

    def binding(self) -> str:
        """What a cursor is valid for: the route, the owner, the filters and the sort, not the page size."""
        owner = ALL_OWNERS if self.owner_id is None else str(self.owner_id)
        return (
            f"GET /v1/accounts owner={owner} status={self.status or ''} "
            f"currency={self.currency or ''} sort={self.sort}"
        )

    def after(self, signer: CursorSigner) -> tuple[object, UUID] | None:
        """The (sort value, account id) the page starts after, from the verified cursor."""
        if self.cursor is None:
            return None
        payload = signer.decode(self.cursor, bound_to=self.binding())
        value_type, _ = _CURSOR_TYPES[self.column]
        try:
            return (
                msgspec.convert(payload.get("after"), value_type),
                msgspec.convert(payload.get("account_id"), UUID),
            )
        except msgspec.ValidationError as error:
            raise bad_cursor() from error

    def cursor_after(self, signer: CursorSigner, row: asyncpg.Record) -> str:
        return signer.encode(
            {"after": row[self.column], "account_id": row["account_id"]}, bound_to=self.binding()
        )


def list_sql(query: AccountListQuery, after: tuple[object, UUID] | None) -> tuple[str, list[object]]:
    """The SELECT of one page (limit + 1 rows: the extra one tells whether a next page exists)."""
    conditions: list[str] = []
    arguments: list[object] = []

    def parameter(value: object, sql_type: str) -> str:
        arguments.append(value)
        return f"${len(arguments)}::{sql_type}"

    if query.owner_id is not None:
        conditions.append(f"owner_id = {parameter(query.owner_id, 'uuid')}")
    if query.status is not None:
        conditions.append(f"status = {parameter(query.status, 'text')}")
    if query.currency is not None:
        conditions.append(f"currency = {parameter(query.currency, 'text')}")
    if after is not None:
        value, account_id = after
        comparison = "<" if query.descending else ">"
        value_parameter = parameter(value, _CURSOR_TYPES[query.column][1])
        conditions.append(
            f"({query.column}, account_id) {comparison} ({value_parameter}, {parameter(account_id, 'uuid')})"
        )
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    direction = "DESC" if query.descending else "ASC"
    limit = parameter(query.limit + 1, "int")
    # Column names come from the whitelist (AccountListQuery.column), values only as parameters.
    sql = (
        f"SELECT {ACCOUNT_COLUMNS} FROM read.accounts {where} "  # noqa: S608
        f"ORDER BY {query.column} {direction}, account_id {direction} LIMIT {limit}"
    )
    return sql, arguments
