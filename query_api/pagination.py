"""What every list query shares: its query string checked, and keyset cursors a client cannot forge.

A cursor is the last row's sort key, handed to the client and back. It is
signed so that a client cannot point it at rows of its choosing (the key
goes into SQL as parameters, but an invented key could still probe the
ordering of rows it may not see), and bound to the query it came from: a
cursor of one sort or filter means nothing in another and is refused rather
than silently skipping or repeating rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

import msgspec
from litestar.plugins.problem_details import ProblemDetailsException

from shared.http.openapi import QueryParameter
from shared.http.problems import VALIDATION_TYPE, problem

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500
# Far above any cursor this API makes: a longer one is refused before any work.
MAX_CURSOR_CHARS: Final = 1024
_LIMIT: Final = re.compile(r"[1-9][0-9]{0,2}")
LIMIT_PARAMETER: Final = QueryParameter(
    "limit",
    f"Items per page (default {DEFAULT_LIMIT}).",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
)
CURSOR_PARAMETER: Final = QueryParameter(
    "cursor",
    "The `next_cursor` of the previous page, as it was given (signed: an altered one is refused).",
    {"type": "string", "maxLength": MAX_CURSOR_CHARS},
)
_json = msgspec.json.Encoder()


def invalid(field: str, message: str) -> ProblemDetailsException:
    """The 422 problem for one bad query parameter, naming it."""
    return problem(
        422,
        f"The query is invalid: {field}: {message}.",
        type_=VALIDATION_TYPE,
        title="Invalid request",
        errors=[{"field": field, "message": message}],
    )


def query_values(items: Iterable[tuple[str, str]], allowed: Collection[str]) -> dict[str, str]:
    """The query string as one value per name; an unknown or repeated name is a 422.

    Unknown names are refused rather than ignored: a misspelt filter would
    otherwise answer with everything, which looks like a right answer.
    """
    values: dict[str, str] = {}
    errors: list[dict[str, str]] = []
    for name, value in items:
        if name not in allowed:
            errors.append({"field": name, "message": "is not a parameter of this query"})
        elif name in values:
            errors.append({"field": name, "message": "is given more than once"})
        else:
            values[name] = value
    if errors:
        fields = ", ".join(sorted({error["field"] for error in errors}))
        raise problem(
            422,
            f"The query is invalid: {fields}.",
            type_=VALIDATION_TYPE,
            title="Invalid request",
            errors=errors,
        )
    return values


def parse_limit(raw: str | None) -> int:
    """The page size: DEFAULT_LIMIT when absent, else 1..MAX_LIMIT written in plain digits."""
    if raw is None:
        return DEFAULT_LIMIT
    # A regular expression, not int(): int() also takes " 5", "+5", "5_0" and non-ASCII digits.
    if not _LIMIT.fullmatch(raw) or int(raw) > MAX_LIMIT:
        raise invalid("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def parse_sort(raw: str | None, allowed: Mapping[str, str], *, default: str) -> tuple[str, bool]:
    """(column, descending) for `field` or `-field`; only `allowed`'s fields, mapped to their columns."""
    sort = default if raw is None else raw
    field = sort.removeprefix("-")
    column = allowed.get(field)
    if column is None:
        names = ", ".join(sorted(allowed))
        raise invalid("sort", f"must be one of {names}, with '-' in front for descending")
    return column, sort.startswith("-")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    # validate=True: a character outside the alphabet is an error, not silently dropped.
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


class CursorSigner:
    """Opaque keyset cursors: base64url(JSON payload) "." base64url(HMAC-SHA256)."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("a cursor secret must not be empty")
        self._secret = secret

    def _mac(self, payload: bytes, bound_to: str) -> bytes:
        # The binding's digest has a fixed length, so no (binding, payload)
        # pair can be shifted into another with the same MAC input.
        binding = hashlib.sha256(bound_to.encode()).digest()
        return hmac.new(self._secret, binding + payload, hashlib.sha256).digest()

    def encode(self, payload: Mapping[str, Any], *, bound_to: str) -> str:
        body = _json.encode(dict(payload))
        return f"{_b64encode(body)}.{_b64encode(self._mac(body, bound_to))}"

    def decode(self, cursor: str, *, bound_to: str) -> dict[str, Any]:
        """The payload of a cursor this signer made for the same `bound_to`; anything else is a 422."""
        if len(cursor) > MAX_CURSOR_CHARS or cursor.count(".") != 1:
            raise bad_cursor()
        encoded_body, encoded_mac = cursor.split(".")
        try:
            body = _b64decode(encoded_body)
            mac = _b64decode(encoded_mac)
        except (binascii.Error, ValueError) as error:
            raise bad_cursor() from error
        if not hmac.compare_digest(mac, self._mac(body, bound_to)):
            raise bad_cursor()
        try:
            payload = msgspec.json.decode(body)
        except msgspec.DecodeError as error:
            raise bad_cursor() from error
        if not isinstance(payload, dict):
            raise bad_cursor()
        return payload


def bad_cursor() -> ProblemDetailsException:
    """The 422 for a cursor that is forged, damaged, of another query, or of a format no longer read."""
    # One message for every failure: which check failed is no business of the client's.
    return invalid("cursor", "is not a cursor of this query; start again without one")
