"""Access-token verification: pinned algorithm, required claims, and a cache that never outlives a token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from query_api.settings import QueryApiSettings
from shared.auth.keys import load_key_set, thumbprint
from shared.auth.tokens import REQUIRED_CLAIMS, AccessTokenIssuer, AccessTokenVerifier, InvalidToken
from shared.settings import SettingsError, load_settings
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


# The JWT attack list, at the verifier: each token is valid but for one thing.

_OTHER_KEY = Ed25519PrivateKey.generate()
_OTHER_KID = thumbprint(_OTHER_KEY.public_key())
_DEV_KEY = serialization.load_pem_private_key(DEV_JWT_PRIVATE_KEY.encode(), password=None)
assert isinstance(_DEV_KEY, Ed25519PrivateKey)
_KEY_URL = "http://127.0.0.1:9/jwks.json"  # the discard port: nothing may ever be fetched from it
_HOSTILE_KIDS: dict[str, object] = {
    "kid-path-traversal": "../../etc/passwd",
    "kid-sql": "' OR 1=1 --",
    "kid-10kb": "k" * 10_240,
    "kid-int": 1,
    "kid-object": {"kid": DEV_KID},
    "kid-list": [DEV_KID],
    "kid-null": None,
    "kid-empty": "",
    "kid-of-an-unconfigured-key": _OTHER_KID,
}


def _claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "roles": ["user"],
    }
    claims.update(changes)
    return claims


def _signed(
    header: Mapping[str, object], claims: Mapping[str, object], key: Ed25519PrivateKey = _DEV_KEY
) -> str:
    """An EdDSA token with exactly this header, signed by hand (PyJWT refuses to write some of them)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(key.sign(signing_input.encode()))}"


def _with(**header: object) -> str:
    """A token signed with the right key, its header changed."""
    return _signed({"alg": "EdDSA", "typ": "at+jwt", "kid": DEV_KID, **header}, _claims())


def _without(claim: str) -> str:
    claims = _claims()
    del claims[claim]
    return _signed({"alg": "EdDSA", "typ": "at+jwt", "kid": DEV_KID}, claims)


def _attacker_jwk() -> dict[str, str]:
    x = _OTHER_KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64(x), "kid": _OTHER_KID}


def _attack_tokens() -> dict[str, str]:
    header = {"alg": "EdDSA", "typ": "at+jwt", "kid": DEV_KID}
    signed = _with()
    head, payload, _ = signed.split(".")
    other_signature = _with().split(".")[2]
    attacker = {"alg": "EdDSA", "typ": "at+jwt", "kid": _OTHER_KID}
    tokens = {
        "alg-none": _handmade("none", _claims()),
        "alg-none-capitalised": _handmade("None", _claims()),
        "hs256-keyed-with-the-public-key": _handmade("HS256", _claims(), hmac_key=_PUBLIC_PEM),
        "wrong-audience": _signed(header, _claims(aud="someone-else")),
        "audience-list-without-ours": _signed(header, _claims(aud=["someone-else", "another"])),
        "wrong-issuer": _signed(header, _claims(iss="https://evil.example")),
        "expired-beyond-leeway": _signed(header, _claims(exp=int(time.time()) - 11)),
        "issued-in-the-future": _signed(header, _claims(iat=int(time.time()) + 3600)),
        "stripped-signature": f"{head}.{payload}.",
        "no-signature-part": f"{head}.{payload}",
        "signature-of-another-token": f"{head}.{payload}.{other_signature}",
        "signed-by-an-unconfigured-key": _signed(attacker, _claims(), key=_OTHER_KEY),
        "jku": _signed({**attacker, "jku": _KEY_URL}, _claims(), key=_OTHER_KEY),
        "x5u": _signed({**attacker, "x5u": _KEY_URL}, _claims(), key=_OTHER_KEY),
        "jku-with-the-right-key": _with(jku=_KEY_URL),
        "x5u-with-the-right-key": _with(x5u=_KEY_URL),
        "embedded-jwk": _signed({**attacker, "jwk": _attacker_jwk()}, _claims(), key=_OTHER_KEY),
        "x5c": _with(x5c=["MIIB"]),
        "crit": _with(crit=["exp"]),
        "no-kid": _signed({"alg": "EdDSA", "typ": "at+jwt"}, _claims()),
        "refresh-token": "rt_" + _b64(b"\x00" * 32),
        "empty": "",
        **{f"missing-{claim}": _without(claim) for claim in REQUIRED_CLAIMS},
        **{name: _with(kid=kid) for name, kid in _HOSTILE_KIDS.items()},
    }
    return tokens


ATTACK_TOKENS = _attack_tokens()


def test_the_attack_tokens_are_valid_but_for_their_one_flaw() -> None:
    """The control of the attack list: the same hand-signing, with nothing wrong, is accepted."""
    principal = _verifier().verify(_with())

    assert principal.roles == frozenset({"user"})


@pytest.mark.parametrize("case", sorted(ATTACK_TOKENS))
def test_an_attack_token_is_refused_without_echoing_it(case: str) -> None:
    """Each attack of the list is an InvalidToken whose message repeats nothing of the token's header."""
    with pytest.raises(InvalidToken) as refused:
        _verifier().verify(ATTACK_TOKENS[case])

    message = str(refused.value)
    assert len(message) < 80
    for kid in _HOSTILE_KIDS.values():
        if isinstance(kid, str) and kid:
            assert kid[:8] not in message
    assert "127.0.0.1" not in message


def test_an_expired_token_is_accepted_within_the_leeway_only() -> None:
    """With 10 s of leeway a token expired 5 s ago is accepted; with none, or 15 s late, it is refused."""
    now = int(time.time())
    five_ago = _signed({"alg": "EdDSA", "typ": "at+jwt", "kid": DEV_KID}, _claims(exp=now - 5))
    fifteen_ago = _signed({"alg": "EdDSA", "typ": "at+jwt", "kid": DEV_KID}, _claims(exp=now - 15))
    strict = AccessTokenVerifier(
        load_key_set("EdDSA", DEV_JWT_PRIVATE_KEY, None), issuer=ISSUER, audience=AUDIENCE, leeway_seconds=0
    )

    _verifier().verify(five_ago)
    with pytest.raises(InvalidToken, match="expired"):
        strict.verify(five_ago)
    with pytest.raises(InvalidToken, match="expired"):
        _verifier().verify(fifteen_ago)


@pytest.mark.parametrize(("leeway", "accepted"), [(0, True), (30, True), (31, False), (-1, False)])
def test_the_leeway_setting_is_at_most_30_seconds(leeway: int, accepted: bool) -> None:
    """CQRS_JWT_LEEWAY_SECONDS takes 0 to 30; 31 (or a negative value) stops start-up naming the variable."""
    environment = {
        "CQRS_PROFILE": "test",
        "CQRS_DATABASE_URL": "postgresql://db.internal:5432/cqrs",
        "CQRS_NATS_URLS": "nats://n1:4222",
        "CQRS_REDIS_URL": "redis://cache:6379/0",
        "CQRS_JWT_LEEWAY_SECONDS": str(leeway),
    }

    if accepted:
        assert load_settings(QueryApiSettings, environment).jwt_leeway_seconds == leeway
    else:
        with pytest.raises(SettingsError, match="CQRS_JWT_LEEWAY_SECONDS"):
            load_settings(QueryApiSettings, environment)


def test_a_verifier_with_several_keys_picks_the_one_its_kid_names() -> None:
    """During a rotation tokens of either key verify, and a signature only verifies under its own kid."""
    other_pem = _OTHER_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keys = load_key_set("EdDSA", DEV_JWT_PRIVATE_KEY, other_pem.decode())
    verifier = AccessTokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=10)
    by_dev = _signed({"alg": "EdDSA", "typ": "at+jwt", "kid": DEV_KID}, _claims())
    by_other = _signed({"alg": "EdDSA", "typ": "at+jwt", "kid": _OTHER_KID}, _claims(), key=_OTHER_KEY)
    by_other_claiming_dev = _signed(
        {"alg": "EdDSA", "typ": "at+jwt", "kid": DEV_KID}, _claims(), key=_OTHER_KEY
    )

    verifier.verify(by_dev)
    verifier.verify(by_other)
    with pytest.raises(InvalidToken):
        verifier.verify(by_other_claiming_dev)
    with pytest.raises(InvalidToken, match="unknown key"):
        _verifier().verify(by_other)


def test_an_hs256_token_is_refused_by_an_eddsa_verifier_and_accepted_by_an_hs256_one() -> None:
    """HS256 works only where it is the configured algorithm: its verifier accepts, EdDSA's refuses."""
    secret = "0123456789abcdef0123456789abcdef"  # noqa: S105 - a test value
    hs256 = load_key_set("HS256", secret, None)
    token = AccessTokenIssuer(hs256, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=60).issue(uuid.uuid4(), [])
    relabelled = jwt.encode(_claims(), secret, algorithm="HS256", headers={"typ": "at+jwt", "kid": DEV_KID})

    AccessTokenVerifier(hs256, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=0).verify(token.token)
    with pytest.raises(InvalidToken):
        _verifier().verify(token.token)
    with pytest.raises(InvalidToken):
        _verifier().verify(relabelled)
