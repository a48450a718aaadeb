"""API keys: their format, and what is stored of them (a lookup prefix and a hash, never the key).

A key is `cqrs_<prefix>_<secret>`: the prefix (12 hex characters, random)
finds the row by an index, the secret (256 random bits) proves possession.
The stored hash is SHA-256 of the whole key: with that much entropy a slow
password hash buys nothing, and checking a key must stay cheap because it
happens on every request that carries one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

KEY_PREFIX: Final = "cqrs_"
_FORMAT = re.compile(r"^cqrs_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


class MalformedApiKey(ValueError):
    """Not a key this system could have issued."""


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key: str  # shown to its owner once, never stored
    lookup_prefix: str
    key_hash: bytes


def generate_api_key() -> NewApiKey:
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return NewApiKey(key=key, lookup_prefix=prefix, key_hash=hash_api_key(key))


def lookup_prefix(key: str) -> str:
    match = _FORMAT.match(key)
    if match is None:
        raise MalformedApiKey("not an API key")
    return match.group(1)


def hash_api_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_matches(key: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_api_key(key), stored_hash)
