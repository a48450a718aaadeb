"""Token keys: the one that signs, the ones that verify, and their public JWKS.

Each asymmetric key is named by its RFC 7638 thumbprint (the JWT `kid`), so
no operator ever has to invent or keep key ids in step between processes.

Rotation (docs/operations.md): publish the new public key to every verifier
first (`jwt_public_keys`), then let it sign (`jwt_private_key`) while the old
public key stays in `jwt_public_keys` until the longest access token signed
with it has expired, then drop it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ec import (
    SECP256R1,
    EllipticCurvePrivateKey,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

HS256_KEY_ID: Final = "hs256"
MIN_HS256_SECRET_BYTES: Final = 32
_PEM_BLOCK = re.compile(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)

PublicKey = Ed25519PublicKey | EllipticCurvePublicKey
PrivateKey = Ed25519PrivateKey | EllipticCurvePrivateKey


class InvalidKeyConfiguration(ValueError):
    """A configured key is unusable; the message names why, never the key."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: str
    key: PrivateKey | bytes


@dataclass(frozen=True, slots=True)
class KeySet:
    """The keys of one process: maybe one to sign with, always at least one to verify with."""

    algorithm: str
    verification: Mapping[str, PublicKey | bytes]
    signing: SigningKey | None = None
    public_jwks: tuple[Mapping[str, str], ...] = field(default=())

    def verification_key(self, kid: str) -> PublicKey | bytes | None:
        return self.verification.get(kid)

    def jwks(self) -> dict[str, list[Mapping[str, str]]]:
        """The JSON Web Key Set of the public keys (empty for HS256: a shared secret is never published)."""
        return {"keys": list(self.public_jwks)}


def load_key_set(algorithm: str, private_key: str | None, public_keys: str | None) -> KeySet:
    """Keys from PEM text: a private key that signs (optional), public keys that only verify."""
    if algorithm == "HS256":
        return _hs256_key_set(private_key, public_keys)
    signing: SigningKey | None = None
    public: list[PublicKey] = []
    if private_key:
        private = _private_key(algorithm, private_key)
        public.append(private.public_key())
        signing = SigningKey(kid=thumbprint(private.public_key()), algorithm=algorithm, key=private)
    for block in _public_blocks(public_keys or ""):
        public.append(_public_key(algorithm, block))
    if not public:
        raise InvalidKeyConfiguration("no key to verify tokens with: set a private key or public keys")
    verification: dict[str, PublicKey | bytes] = {}
    jwks: list[Mapping[str, str]] = []
    for key in public:
        kid = thumbprint(key)
        if kid in verification:
            continue  # the signing key's public half listed again: harmless
        verification[kid] = key
        jwks.append({**_jwk(key), "kid": kid, "alg": algorithm, "use": "sig"})
    return KeySet(algorithm=algorithm, verification=verification, signing=signing, public_jwks=tuple(jwks))


def thumbprint(key: PublicKey) -> str:
    """RFC 7638: SHA-256 over the required members of the JWK, sorted, without whitespace."""
    jwk = _jwk(key)
    required = ("crv", "kty", "x") if jwk["kty"] == "OKP" else ("crv", "kty", "x", "y")
    canonical = json.dumps({name: jwk[name] for name in required}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _jwk(key: PublicKey) -> dict[str, str]:
    raw: Any
    if isinstance(key, Ed25519PublicKey):
        raw = OKPAlgorithm.to_jwk(key, as_dict=True)
    else:
        raw = ECAlgorithm.to_jwk(key, as_dict=True)
    return {name: str(value) for name, value in raw.items()}


def _private_key(algorithm: str, pem: str) -> PrivateKey:
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as error:
        raise InvalidKeyConfiguration("the private key is not an unencrypted PEM private key") from error
    if isinstance(key, Ed25519PrivateKey | EllipticCurvePrivateKey) and _fits(algorithm, key.public_key()):
        return key
    raise InvalidKeyConfiguration(f"the private key does not fit {algorithm} (EdDSA: Ed25519, ES256: P-256)")


def _public_blocks(text: str) -> list[str]:
    """The PEM public key blocks of the text, refusing anything else in it.

    Text that is no public key (a typo, a JWK, an RSA PEM, a private key
    pasted into the wrong variable) would otherwise be skipped without a word,
    and the key the operator meant to publish would never verify anything.
    """
    leftover = _PEM_BLOCK.sub("", text)
    if "PRIVATE KEY" in leftover:
        raise InvalidKeyConfiguration("the public keys hold a private key; give only its public half")
    if leftover.strip():
        raise InvalidKeyConfiguration(
            "the public keys hold text that is no PEM public key (only '-----BEGIN PUBLIC KEY-----' blocks)"
        )
    return list(_PEM_BLOCK.findall(text))


def _public_key(algorithm: str, pem: str) -> PublicKey:
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as error:
        raise InvalidKeyConfiguration("a public key is not a PEM public key") from error
    if isinstance(key, Ed25519PublicKey | EllipticCurvePublicKey) and _fits(algorithm, key):
        return key
    raise InvalidKeyConfiguration(f"a public key does not fit {algorithm} (EdDSA: Ed25519, ES256: P-256)")


def _fits(algorithm: str, key: PublicKey) -> bool:
    if algorithm == "EdDSA":
        return isinstance(key, Ed25519PublicKey)
    is_p256 = isinstance(key, EllipticCurvePublicKey) and isinstance(key.curve, SECP256R1)
    return algorithm == "ES256" and is_p256


def _hs256_key_set(secret: str | None, public_keys: str | None) -> KeySet:
    if not secret or len(secret.encode()) < MIN_HS256_SECRET_BYTES:
        raise InvalidKeyConfiguration(
            f"HS256 needs a shared secret of at least {MIN_HS256_SECRET_BYTES} bytes"
        )
    if public_keys and public_keys.strip():
        # Ignoring them would let an operator believe a rotation was under way.
        raise InvalidKeyConfiguration("HS256 has no public keys (the shared secret verifies): unset them")
    key = secret.encode()
    return KeySet(
        algorithm="HS256",
        verification={HS256_KEY_ID: key},
        signing=SigningKey(kid=HS256_KEY_ID, algorithm="HS256", key=key),
    )
