"""Keyset cursors and list parameters: a client can neither forge a cursor nor reuse it elsewhere."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from litestar.plugins.problem_details import ProblemDetailsException

from query_api.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    CursorSigner,
    parse_limit,
    parse_sort,
    query_values,
)

BINDING = "GET /v1/accounts owner=* status= currency= sort=opened_at"
SORTS = {"opened_at": "opened_at", "name": "name_column"}


def _refused(error: pytest.ExceptionInfo[ProblemDetailsException], *fields: str) -> None:
    assert error.value.status_code == 422
    assert error.value.extra is not None
    assert isinstance(error.value.extra, dict)
    assert [e["field"] for e in error.value.extra["errors"]] == list(fields)


def _signer() -> CursorSigner:
    return CursorSigner(b"k" * 32)


def test_a_cursor_round_trips_its_payload() -> None:
    account_id = uuid4()
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    cursor = _signer().encode({"after": at, "account_id": account_id}, bound_to=BINDING)

    payload = _signer().decode(cursor, bound_to=BINDING)

    assert payload == {"after": "2026-01-02T03:04:05.678901Z", "account_id": str(account_id)}
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def _forged(cursor: str, payload: dict[str, Any]) -> str:
    _, mac = cursor.split(".")
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{body}.{mac}"


def _flip_mac_bit(cursor: str) -> str:
    # The MAC's first character: all six of its bits are MAC bits, whereas the last
    # character of unpadded base64 also holds filler bits that decoding ignores.
    payload, mac = cursor.split(".")
    return f"{payload}.{'B' if mac[0] == 'A' else 'A'}{mac[1:]}"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: _forged(c, {"after": 0, "account_id": "x"}),
        _flip_mac_bit,
        lambda c: c[:-2],
        lambda c: c.split(".")[0],
        lambda c: c + ".x",
        lambda c: c.replace(".", ".!"),
        lambda c: "",
        lambda c: "a" * 5000,
        lambda c: "\u00e9." + c.split(".")[1],
    ],
    ids=[
        "payload-changed",
        "mac-bit",
        "mac-truncated",
        "no-mac",
        "extra-part",
        "bad-alphabet",
        "empty",
        "huge",
        "non-ascii",
    ],
)
def test_a_tampered_cursor_is_a_422_naming_cursor(tamper: Any) -> None:
    cursor = _signer().encode({"after": 5, "account_id": str(uuid4())}, bound_to=BINDING)

    with pytest.raises(ProblemDetailsException) as error:
        _signer().decode(tamper(cursor), bound_to=BINDING)

    _refused(error, "cursor")


def test_a_cursor_of_another_query_is_refused() -> None:
    cursor = _signer().encode({"after": 5}, bound_to=BINDING)

    with pytest.raises(ProblemDetailsException) as error:
        _signer().decode(cursor, bound_to=BINDING.replace("sort=opened_at", "sort=-opened_at"))

    _refused(error, "cursor")


def test_a_cursor_signed_with_another_secret_is_refused() -> None:
    cursor = CursorSigner(b"other" * 8).encode({"after": 5}, bound_to=BINDING)

    with pytest.raises(ProblemDetailsException) as error:
        _signer().decode(cursor, bound_to=BINDING)

    _refused(error, "cursor")


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        CursorSigner(b"")


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, DEFAULT_LIMIT), ("1", 1), ("500", MAX_LIMIT), ("42", 42)]
)
def test_limits_from_1_to_500(raw: str | None, expected: int) -> None:
    assert parse_limit(raw) == expected


@pytest.mark.parametrize("raw", ["0", "501", "", "-1", "+5", " 5", "5_0", "1e2", "\u0665", "050", "abc"])
def test_other_limits_are_a_422_naming_limit(raw: str) -> None:
    with pytest.raises(ProblemDetailsException) as error:
        parse_limit(raw)

    _refused(error, "limit")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, ("opened_at", False)), ("name", ("name_column", False)), ("-name", ("name_column", True))],
)
def test_whitelisted_sorts_map_to_their_columns(raw: str | None, expected: tuple[str, bool]) -> None:
    assert parse_sort(raw, SORTS, default="opened_at") == expected


@pytest.mark.parametrize(
    "raw", ["", "-", "--name", "name_column", "Name", "name,opened_at", "+name", "owner_id"]
)
def test_other_sorts_are_a_422_naming_sort(raw: str) -> None:
    with pytest.raises(ProblemDetailsException) as error:
        parse_sort(raw, SORTS, default="opened_at")

    _refused(error, "sort")


def test_known_parameters_pass_once_each() -> None:
    assert query_values([("limit", "5"), ("sort", "name")], {"limit", "sort", "cursor"}) == {
        "limit": "5",
        "sort": "name",
    }


def test_unknown_and_repeated_parameters_are_each_named() -> None:
    with pytest.raises(ProblemDetailsException) as error:
        query_values([("limit", "5"), ("limt", "5"), ("limit", "6"), ("x", "")], {"limit"})

    _refused(error, "limt", "limit", "x")
