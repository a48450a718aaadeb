"""`GET /.well-known/jwks.json`: the public keys that verify access tokens (RFC 7517)."""

from __future__ import annotations

from typing import Any, ClassVar, Final

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from shared.auth.keys import KeySet
from shared.http.openapi import ANSWER, describe_from_opt

JWKS_PATH: Final = "/.well-known/jwks.json"
# Verifiers elsewhere may cache the set this long. A new key is published at
# least this long before it signs (docs/operations.md, key rotation), so a
# cached set never makes a valid token unverifiable.
JWKS_CACHE_SECONDS: Final = 300


class JsonWebKeySet(msgspec.Struct, frozen=True):
    """RFC 7517 §5; each key as RFC 8037 (Ed25519) or RFC 7518 (RSA) spells it."""

    example: ClassVar[dict[str, Any]] = {
        "keys": [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": "vnvRWGuFGDpJOmwHMlKmhyQId-2SXBYDICJaudWnIo4",
                "kid": "dGNvmb766vadeQJKHfAIMLgtl7w7hac-nJ7XzNMeZXY",
                "alg": "EdDSA",
                "use": "sig",
            }
        ]
    }

    keys: list[dict[str, str]]


def jwks_route(keys: KeySet) -> HTTPRouteHandler:
    body = keys.jwks()

    @get(
        JWKS_PATH,
        summary="Public keys of access tokens (JWKS)",
        operation_id="getJwks",
        tags=["identity"],
        media_type="application/jwk-set+json",
        sync_to_thread=False,
        opt={ANSWER: JsonWebKeySet},
    )
    def jwks() -> Response[dict[str, list[object]]]:
        return Response(
            dict(body),  # type: ignore[arg-type]
            media_type="application/jwk-set+json",
            headers={"Cache-Control": f"public, max-age={JWKS_CACHE_SECONDS}"},
        )

    describe_from_opt(jwks)
    return jwks
