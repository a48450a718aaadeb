"""Consistency tokens: what a write produced, so a later read can wait for it.

The token names each stream a command changed and the version it reached.
A read model reflects the write once it has applied those versions. It is
opaque to clients (base64url of JSON) and versioned for later change.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from uuid import UUID

import msgspec


class _Token(msgspec.Struct, frozen=True):
    v: int
    streams: dict[UUID, int]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Token)


class InvalidConsistencyToken(ValueError):
    """The token was not made by this system."""


def encode_token(stream_versions: Mapping[UUID, int]) -> str:
    raw = _encoder.encode(_Token(v=1, streams=dict(stream_versions)))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_token(token: str) -> dict[UUID, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = _decoder.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidConsistencyToken("malformed consistency token") from exc
    if decoded.v != 1:
        raise InvalidConsistencyToken("unknown consistency token version")
    return decoded.streams
