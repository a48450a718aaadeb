"""`GET /.well-known/jwks.json`: the public keys that verify access tokens (RFC 7517)."""

from __future__ import annotations

from typing import Final

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from shared.auth.keys import KeySet

JWKS_PATH: Final = "/.well-known/jwks.json"
# Verifiers elsewhere may cache the set this long. A new key is published at
# least this long before it signs (docs/operations.md, key rotation), so a
# cached set never makes a valid token unverifiable.
JWKS_CACHE_SECONDS: Final = 300


def jwks_route(keys: KeySet) -> HTTPRouteHandler:
    body = keys.jwks()

    @get(
        JWKS_PATH,
        summary="Public keys of access tokens (JWKS)",
        operation_id="getJwks",
        tags=["identity"],
        media_type="application/jwk-set+json",
        sync_to_thread=False,
    )
    def jwks() -> Response[dict[str, list[object]]]:
        return Response(
            dict(body),  # type: ignore[arg-type]
            media_type="application/jwk-set+json",
            headers={"Cache-Control": f"public, max-age={JWKS_CACHE_SECONDS}"},
        )

    return jwks
