"""Idempotency-Key handling at the HTTP edge (draft-ietf-httpapi-idempotency-key-header)."""

from __future__ import annotations

import hashlib
import re
from typing import Final

IDEMPOTENCY_HEADER: Final = "idempotency-key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
# Printable ASCII without spaces, as a header value and a log field allow.
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class InvalidIdempotencyKey(ValueError):
    """The key is present but unusable."""


def parse_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _VALID_KEY.match(value):
        raise InvalidIdempotencyKey("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return value


def fingerprint(method: str, path: str, body: bytes) -> bytes:
    """What makes two requests "the same" for a key: method, path and the exact body."""
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", body):
        digest.update(part)
    return digest.digest()
