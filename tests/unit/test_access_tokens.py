"""Access-token verification: pinned algorithm, required claims, and a cache that never outlives a token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth.keys import load_key_set
from shared.auth.tokens import AccessTokenVerifier, InvalidToken
from shared.settings.dev_keys import DEV_JWT_PRIVATE_KEY
from tests.support.tokens import AUDIENCE, DEV_KID, ISSUER, mint


class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _verifier(clock: _Clock | None = None) -> AccessTokenVerifier:
    return AccessTokenVerifier(
        load_key_set("EdDSA", DEV_JWT_PRIVATE_KEY, None),
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_seconds=10,
        clock=clock or time.time,
    )


def test_a_valid_token_gives_its_principal() -> None:
    """The subject, roles and tier of a valid token make the principal."""
    user = uuid.uuid4()
    principal = _verifier().verify(mint(user, roles=("user", "admin"), tier="pro"))
    assert principal.user_id == user
    assert principal.is_admin
    assert principal.tier == "pro"


_CLAIMS = {
    "sub": str(uuid.uuid4()),
    "iss": ISSUER,
    "aud": AUDIENCE,
    "iat": int(time.time()),
    "exp": 2**40,
    "jti": "x",
}
_AT_JWT = {"typ": "at+jwt", "kid": DEV_KID}
_PUBLIC_PEM = (
    serialization.load_pem_private_key(DEV_JWT_PRIVATE_KEY.encode(), password=None)
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _handmade(alg: str, claims: dict[str, object], hmac_key: bytes | None = None) -> str:
    """A token PyJWT would refuse to make: unsigned, or HMAC-keyed with a PEM."""
    header = {"alg": alg, "typ": "at+jwt", "kid": DEV_KID}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = _b64(hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()) if hmac_key else ""
    return f"{signing_input}.{signature}"


@pytest.mark.parametrize(
    "token",
    [
        mint(expires_in=-60),
        mint(overrides={"aud": "someone-else"}),
        mint(overrides={"iss": "someone-else"}),
        mint(headers={"typ": "JWT"}),
        # Right type and claims, wrong algorithm: refused by the pinned algorithm.
        jwt.encode(_CLAIMS, "x" * 32, algorithm="HS256", headers=_AT_JWT),
        # Key confusion: HMAC keyed with the public key a verifier might hold.
        _handmade("HS256", _CLAIMS, hmac_key=_PUBLIC_PEM),
        _handmade("none", _CLAIMS),
        "not-a-jwt",
    ],
    ids=["expired", "audience", "issuer", "typ", "hs256", "key-confusion", "alg-none", "garbage"],
)
def test_bad_tokens_are_refused(token: str) -> None:
    """Expired, foreign, mistyped, differently signed or malformed tokens are refused."""
    with pytest.raises(InvalidToken):
        _verifier().verify(token)


def test_a_token_signed_by_another_key_is_refused() -> None:
    """Only the configured key's signatures verify."""
    other = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidToken):
        _verifier().verify(mint(key=other.decode()))


def test_a_cached_token_still_expires() -> None:
    """A token verified (and cached) earlier is refused once its expiry plus leeway has passed."""
    clock = _Clock()
    verifier = _verifier(clock)
    token = mint(expires_in=60)
    verifier.verify(token)
    clock.now += 65
    verifier.verify(token)  # within the 10 s leeway
    clock.now += 10
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)


def test_a_tampered_copy_of_a_cached_token_is_refused() -> None:
    """Changing one character of a cached token misses the cache and fails verification."""
    verifier = _verifier()
    token = mint()
    verifier.verify(token)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(InvalidToken):
        verifier.verify(tampered)
