"""Token keys: RFC 7638 thumbprints as kids, EdDSA and ES256 keys, refusals that never show a key."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from command_api.settings import CommandApiSettings
from query_api.settings import QueryApiSettings
from shared.auth.keys import HS256_KEY_ID, InvalidKeyConfiguration, load_key_set, thumbprint
from shared.auth.tokens import AccessTokenIssuer, AccessTokenVerifier
from shared.settings import SettingsError, load_settings

# RFC 8037, Appendix A.1 (the Ed25519 key) and A.3 (its RFC 7638 thumbprint).
RFC_8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC_8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC_8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

BASE_ENV = {
    "CQRS_PROFILE": "prod",
    "CQRS_DATABASE_URL": "postgresql://db.internal:5432/cqrs",
    "CQRS_NATS_URLS": "nats://n1:4222",
    "CQRS_REDIS_URL": "redis://cache:6379/0",
}
HS256_SECRET = "0123456789abcdef0123456789abcdef"  # noqa: S105 - exactly 32 bytes, a test value


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _private_pem(key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _public_pem(key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _rfc_8037_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_b64decode(RFC_8037_D))


def _key_body_lines(pem: str) -> list[str]:
    """The lines of a PEM but its armour: the key material a message must never carry."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def _assert_no_key_material(message: str, *texts: str) -> None:
    """No line of the configured text (beyond its PEM armour), nor the start of one, is in the message."""
    for text in texts:
        for line in _key_body_lines(text):
            assert line not in message, message
            assert line[:16] not in message, message


def test_the_thumbprint_of_the_rfc_8037_key_is_the_rfcs() -> None:
    """RFC 8037 Appendix A.3: the thumbprint of the example Ed25519 public key is kPrK_qmx...S4k."""
    public = Ed25519PublicKey.from_public_bytes(_b64decode(RFC_8037_X))

    assert thumbprint(public) == RFC_8037_THUMBPRINT


def test_a_configured_key_is_named_by_its_thumbprint_and_published_without_its_secret() -> None:
    """The RFC 8037 private key loads with the RFC's thumbprint as kid; its JWK holds public members only."""
    private = _rfc_8037_private_key()
    assert _b64(private.public_key().public_bytes_raw()) == RFC_8037_X  # the test vector itself is right

    keys = load_key_set("EdDSA", _private_pem(private), None)

    assert keys.signing is not None
    assert keys.signing.kid == RFC_8037_THUMBPRINT
    assert list(keys.verification) == [RFC_8037_THUMBPRINT]
    assert keys.jwks() == {
        "keys": [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": RFC_8037_X,
                "kid": RFC_8037_THUMBPRINT,
                "alg": "EdDSA",
                "use": "sig",
            }
        ]
    }
    assert RFC_8037_D not in json.dumps(keys.jwks())


def test_es256_p256_keys_load_sign_and_verify() -> None:
    """A P-256 private key signs ES256 tokens that a verifier holding only its public PEM accepts.

    The kid is checked against a thumbprint computed here from the curve point, independently of
    the code under test.
    """
    private = ec.generate_private_key(ec.SECP256R1())
    numbers = private.public_key().public_numbers()
    member = {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }
    expected_kid = _b64(hashlib.sha256(json.dumps(member, separators=(",", ":")).encode()).digest())

    signer = load_key_set("ES256", _private_pem(private), None)
    verifier_keys = load_key_set("ES256", None, _public_pem(private))
    user = uuid.uuid4()
    issued = AccessTokenIssuer(signer, issuer="i", audience="a", ttl_seconds=60).issue(user, ["user"])
    principal = AccessTokenVerifier(verifier_keys, issuer="i", audience="a", leeway_seconds=0).verify(
        issued.token
    )

    assert signer.signing is not None
    assert signer.signing.kid == expected_kid
    assert list(verifier_keys.verification) == [expected_kid]
    assert verifier_keys.signing is None
    assert verifier_keys.jwks()["keys"] == [{**member, "kid": expected_kid, "alg": "ES256", "use": "sig"}]
    assert principal.user_id == user


def _wrong_keys() -> list[tuple[str, str, str | None, str | None]]:
    """(id, algorithm, private PEM, public PEM): each key the wrong type or curve for the algorithm."""
    ed25519 = Ed25519PrivateKey.generate()
    p256 = ec.generate_private_key(ec.SECP256R1())
    p384 = ec.generate_private_key(ec.SECP384R1())
    return [
        ("eddsa-with-p256-private", "EdDSA", _private_pem(p256), None),
        ("es256-with-ed25519-private", "ES256", _private_pem(ed25519), None),
        ("es256-with-p384-private", "ES256", _private_pem(p384), None),
        ("eddsa-with-p256-public", "EdDSA", None, _public_pem(p256)),
        ("es256-with-ed25519-public", "ES256", None, _public_pem(ed25519)),
        ("es256-with-p384-public", "ES256", None, _public_pem(p384)),
    ]


WRONG_KEYS = _wrong_keys()


@pytest.mark.parametrize(
    ("algorithm", "private", "public"),
    [case[1:] for case in WRONG_KEYS],
    ids=[case[0] for case in WRONG_KEYS],
)
def test_a_key_of_the_wrong_type_is_refused_without_showing_it(
    algorithm: str, private: str | None, public: str | None
) -> None:
    """A key that does not fit the algorithm is refused, naming the fitting type and none of the key."""
    with pytest.raises(InvalidKeyConfiguration) as refused:
        load_key_set(algorithm, private, public)

    message = str(refused.value)
    assert f"does not fit {algorithm} (EdDSA: Ed25519, ES256: P-256)" in message
    _assert_no_key_material(message, *(pem for pem in (private, public) if pem))


@pytest.mark.parametrize(("algorithm", "private", "public"), [case[1:] for case in WRONG_KEYS[:3]])
def test_the_settings_refuse_a_wrong_key_naming_the_variable_and_not_the_key(
    algorithm: str, private: str, public: str | None
) -> None:
    """At start-up the refusal names CQRS_JWT_PRIVATE_KEY and the algorithm, never the key's text."""
    environment = {**BASE_ENV, "CQRS_JWT_ALGORITHM": algorithm, "CQRS_JWT_PRIVATE_KEY": private}

    with pytest.raises(SettingsError) as refused:
        load_settings(CommandApiSettings, environment)

    message = str(refused.value)
    assert "CQRS_JWT_PRIVATE_KEY" in message
    assert f"does not fit {algorithm}" in message
    _assert_no_key_material(message, private)
    assert refused.value.__cause__ is None or private not in str(refused.value.__cause__)


def test_a_broken_pem_is_refused_without_showing_it() -> None:
    """A private key that is not PEM, or a damaged public PEM, is refused without echoing its text."""
    damaged_private = "-----BEGIN PRIVATE KEY-----\nTOPSECRETTOPSECRETTOPSECRET\n-----END PRIVATE KEY-----\n"
    damaged_public = "-----BEGIN PUBLIC KEY-----\nNOTAKEYNOTAKEYNOTAKEY\n-----END PUBLIC KEY-----\n"

    with pytest.raises(InvalidKeyConfiguration, match="not an unencrypted PEM private key") as private:
        load_key_set("EdDSA", damaged_private, None)
    with pytest.raises(InvalidKeyConfiguration, match="not a PEM public key") as public:
        load_key_set("EdDSA", None, damaged_public)

    _assert_no_key_material(str(private.value), damaged_private)
    _assert_no_key_material(str(public.value), damaged_public)


def test_several_public_keys_in_one_string_all_load() -> None:
    """Concatenated public PEMs, with or without blank lines between them, each become a verification key."""
    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    pems = [_public_pem(key) for key in keys]
    text = pems[0] + "\n\n" + pems[1].rstrip("\n") + pems[2]

    loaded = load_key_set("EdDSA", None, text)

    expected = {thumbprint(key.public_key()) for key in keys}
    assert set(loaded.verification) == expected
    assert {jwk["kid"] for jwk in loaded.jwks()["keys"]} == expected
    assert loaded.signing is None


def test_duplicate_keys_collapse_into_one() -> None:
    """The signing key's public half and a key listed twice appear once, in verification and in the JWKS."""
    current = Ed25519PrivateKey.generate()
    other = Ed25519PrivateKey.generate()
    public = _public_pem(current) + _public_pem(other) + _public_pem(other)

    loaded = load_key_set("EdDSA", _private_pem(current), public)

    kids = [jwk["kid"] for jwk in loaded.jwks()["keys"]]
    assert kids == [thumbprint(current.public_key()), thumbprint(other.public_key())]
    assert sorted(loaded.verification) == sorted(kids)


def _not_public_keys() -> dict[str, str]:
    private = _private_pem(Ed25519PrivateKey.generate())
    good = _public_pem(Ed25519PrivateKey.generate())
    return {
        "typo": "-----BEGIN PUBLC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLC KEY-----",
        "jwk": json.dumps({"kty": "OKP", "crv": "Ed25519", "x": RFC_8037_X}),
        "rsa-pem": "-----BEGIN RSA PUBLIC KEY-----\nMEgCQQC\n-----END RSA PUBLIC KEY-----",
        "private-key": private,
        "private-after-a-public-key": good + private,
        "file-path": "/run/secrets/jwt_next.pub",
    }


NOT_PUBLIC_KEYS = _not_public_keys()


@pytest.mark.parametrize("case", sorted(NOT_PUBLIC_KEYS))
def test_public_keys_that_are_not_pem_public_keys_are_refused(case: str) -> None:
    """Anything but PEM public key blocks is refused loudly, even beside a valid signing key.

    Skipping it silently would leave the key an operator meant to publish unknown to every verifier.
    """
    text = NOT_PUBLIC_KEYS[case]

    with pytest.raises(InvalidKeyConfiguration, match="the public keys hold") as refused:
        load_key_set("EdDSA", _private_pem(Ed25519PrivateKey.generate()), text)

    _assert_no_key_material(str(refused.value), text)


def test_without_any_key_there_is_nothing_to_verify_with() -> None:
    """No private key and no public key (or only whitespace) is refused."""
    for public in (None, "", "  \n"):
        with pytest.raises(InvalidKeyConfiguration, match="no key to verify tokens with"):
            load_key_set("EdDSA", None, public)


def test_hs256_needs_a_secret_of_32_bytes_and_publishes_nothing() -> None:
    """HS256 refuses a missing or 31-byte secret, accepts 32 bytes, and its JWKS is empty."""
    for secret in (None, "", HS256_SECRET[:31]):
        with pytest.raises(InvalidKeyConfiguration, match="at least 32 bytes") as refused:
            load_key_set("HS256", secret, None)
        assert HS256_SECRET[:31] not in str(refused.value)

    keys = load_key_set("HS256", HS256_SECRET, None)

    assert keys.jwks() == {"keys": []}
    assert keys.signing is not None
    assert keys.signing.kid == HS256_KEY_ID
    assert keys.verification == {HS256_KEY_ID: HS256_SECRET.encode()}


def test_hs256_refuses_public_keys() -> None:
    """Public keys mean nothing to HS256: setting them is refused rather than ignored."""
    with pytest.raises(InvalidKeyConfiguration, match="HS256 has no public keys"):
        load_key_set("HS256", HS256_SECRET, _public_pem(Ed25519PrivateKey.generate()))


def test_hs256_is_only_used_when_chosen_explicitly() -> None:
    """A shared secret as key of the default algorithm (EdDSA) is refused; CQRS_JWT_ALGORITHM=HS256 takes it.

    The refusal names neither the secret nor any part of it.
    """
    secret_env = {**BASE_ENV, "CQRS_JWT_PRIVATE_KEY": HS256_SECRET}

    with pytest.raises(SettingsError, match="not an unencrypted PEM private key") as refused:
        load_settings(CommandApiSettings, secret_env)
    assert HS256_SECRET[:8] not in str(refused.value)

    settings = load_settings(CommandApiSettings, {**secret_env, "CQRS_JWT_ALGORITHM": "HS256"})

    assert settings.jwt_algorithm == "HS256"
    assert settings.key_set.jwks() == {"keys": []}
    with pytest.raises(SettingsError, match="at least 32 bytes"):
        load_settings(
            CommandApiSettings,
            {**secret_env, "CQRS_JWT_ALGORITHM": "HS256", "CQRS_JWT_PRIVATE_KEY": HS256_SECRET[:31]},
        )


def test_a_query_api_may_hold_public_keys_only() -> None:
    """With only CQRS_JWT_PUBLIC_KEYS a query API starts and verifies; the command API (it signs) refuses."""
    current, upcoming = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    environment = {**BASE_ENV, "CQRS_JWT_PUBLIC_KEYS": _public_pem(current) + _public_pem(upcoming)}

    query = load_settings(QueryApiSettings, {**environment, "CQRS_CURSOR_SECRET": "c" * 32})

    assert query.signing_key is None
    assert set(query.key_set.verification) == {
        thumbprint(current.public_key()),
        thumbprint(upcoming.public_key()),
    }
    with pytest.raises(SettingsError, match="the command API signs tokens"):
        load_settings(CommandApiSettings, environment)
