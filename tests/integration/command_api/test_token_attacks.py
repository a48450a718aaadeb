"""The JWT attack list against the command API over HTTP: each is a 401 with a challenge, and stores nothing.

Every forged token is valid but for its one flaw (the control test proves the
forging itself is sound), and goes to `POST /v1/accounts`, a route that would
write events if it let the token through.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth.keys import thumbprint
from shared.settings.dev_keys import DEV_JWT_PRIVATE_KEY
from tests.integration.command_api.conftest import User, assert_problem, table_counts
from tests.support.tokens import AUDIENCE, DEV_KID, ISSUER, bearer

OPEN_ACCOUNT = {"currency": "EUR", "name": "attack"}

_DEV_KEY = serialization.load_pem_private_key(DEV_JWT_PRIVATE_KEY.encode(), password=None)
assert isinstance(_DEV_KEY, Ed25519PrivateKey)
DEV_KEY: Ed25519PrivateKey = _DEV_KEY
DEV_PUBLIC_PEM = DEV_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
ATTACKER_KEY = Ed25519PrivateKey.generate()
ATTACKER_KID = thumbprint(ATTACKER_KEY.public_key())

HOSTILE_KIDS: dict[str, object] = {
    "kid-path-traversal": "../../etc/passwd",
    "kid-sql": "' OR 1=1 --",
    "kid-10kb": "k" * 10_240,
    "kid-int": 7,
    "kid-object": {"kid": DEV_KID},
    "kid-of-an-unconfigured-key": ATTACKER_KID,
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(user_id: uuid.UUID, **changes: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "roles": ["user"],
    }
    claims.update(changes)
    return claims


def _header(**changes: object) -> dict[str, object]:
    return {"alg": "EdDSA", "typ": "at+jwt", "kid": DEV_KID, **changes}


def _signed(
    header: Mapping[str, object], claims: Mapping[str, object], key: Ed25519PrivateKey = DEV_KEY
) -> str:
    """A token with exactly this header, signed by hand: PyJWT refuses to write some of these."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(key.sign(signing_input.encode()))}"


def _unsigned(alg: str, claims: dict[str, object], hmac_key: bytes | None = None) -> str:
    """`alg: none` without a signature, or an HMAC keyed with whatever the attacker chose."""
    signing_input = f"{_b64(json.dumps(_header(alg=alg)).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest() if hmac_key else b""
    return f"{signing_input}.{_b64(signature)}"


def _stripped(user_id: uuid.UUID) -> str:
    head, payload, _ = _signed(_header(), _claims(user_id)).split(".")
    return f"{head}.{payload}."


def _without_exp(user_id: uuid.UUID) -> str:
    claims = _claims(user_id)
    del claims["exp"]
    return _signed(_header(), claims)


def _with_kid(kid: object) -> Callable[[User], str]:
    """An attack signed with the right key, naming this kid."""
    return lambda user: _signed(_header(kid=kid), _claims(user.user_id))


# Each builds its token from the victim (a real, logged-in user); the names say the one flaw.
ATTACKS: dict[str, Callable[[User], str]] = {
    "alg-none": lambda user: _unsigned("none", _claims(user.user_id)),
    "hs256-keyed-with-the-public-key": lambda user: _unsigned(
        "HS256", _claims(user.user_id), hmac_key=DEV_PUBLIC_PEM
    ),
    "wrong-audience": lambda user: _signed(_header(), _claims(user.user_id, aud="someone-else")),
    "wrong-issuer": lambda user: _signed(_header(), _claims(user.user_id, iss="https://evil.example")),
    "missing-exp": lambda user: _without_exp(user.user_id),
    "expired-beyond-leeway": lambda user: _signed(
        _header(), _claims(user.user_id, exp=int(time.time()) - 15)
    ),
    "stripped-signature": lambda user: _stripped(user.user_id),
    "signed-by-an-unconfigured-key": lambda user: _signed(
        _header(kid=ATTACKER_KID), _claims(user.user_id), key=ATTACKER_KEY
    ),
    "refresh-token-as-access-token": lambda user: user.refresh_token,
    **{name: _with_kid(kid) for name, kid in HOSTILE_KIDS.items()},
}


async def _assert_refused(client: httpx.AsyncClient, db: asyncpg.Connection, token: str) -> str:
    """The token gets a 401 problem with an invalid_token challenge and writes nothing; returns the detail."""
    before = await table_counts(db)

    response = await client.post("/v1/accounts", json=OPEN_ACCOUNT, headers=bearer(token))

    problem = assert_problem(response, 401)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="cqrs"'), challenge
    assert 'error="invalid_token"' in challenge, challenge
    assert await table_counts(db) == before
    return str(problem["detail"])


async def test_the_forging_is_sound(client: httpx.AsyncClient, alice: User) -> None:
    """The control: a hand-signed token for alice with nothing wrong opens an account (201)."""
    response = await client.post(
        "/v1/accounts", json=OPEN_ACCOUNT, headers=bearer(_signed(_header(), _claims(alice.user_id)))
    )

    assert response.status_code == 201, response.text


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_an_attack_token_is_401(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, attack: str
) -> None:
    """Each attack on alice's identity is a 401 with WWW-Authenticate, stores nothing, and echoes no kid."""
    detail = await _assert_refused(client, db, ATTACKS[attack](alice))

    for kid in HOSTILE_KIDS.values():
        if isinstance(kid, str):
            assert kid[:8] not in detail, detail


async def test_an_expired_token_is_accepted_within_the_leeway(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """With the default 10 s leeway, a token expired 5 s ago is a 201; one expired 15 s ago a 401."""
    now = int(time.time())
    within = _signed(_header(), _claims(alice.user_id, exp=now - 5))
    beyond = _signed(_header(), _claims(alice.user_id, exp=now - 15))

    accepted = await client.post("/v1/accounts", json=OPEN_ACCOUNT, headers=bearer(within))
    detail = await _assert_refused(client, db, beyond)

    assert accepted.status_code == 201, accepted.text
    assert "expired" in detail


@dataclass
class KeyServer:
    """An HTTP server on 127.0.0.1 that would hand out the attacker's JWKS, recording every request line."""

    url: str
    requests: list[str] = field(default_factory=list)


@contextlib.contextmanager
def key_server() -> Iterator[KeyServer]:
    """Serve the attacker's key set from a thread, so that even a blocking fetch would be answered."""
    jwks = json.dumps({"keys": [_attacker_jwk()]}).encode()
    lock = threading.Lock()
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                seen.append(self.requestline)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(jwks)))
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="attacker-key-server", daemon=True)
    thread.start()
    state = KeyServer(url=f"http://127.0.0.1:{server.server_address[1]}", requests=seen)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _attacker_jwk() -> dict[str, str]:
    x = ATTACKER_KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64(x), "kid": ATTACKER_KID, "alg": "EdDSA", "use": "sig"}


def _pointing_tokens(user_id: uuid.UUID, url: str) -> dict[str, str]:
    """Tokens whose header points at a key URL: signed by the attacker's key there, or by the real key."""
    jwks_url = f"{url}/jwks.json"
    cert_url = f"{url}/cert.pem"
    attacker = _header(kid=ATTACKER_KID)
    return {
        "jku-attacker-key": _signed({**attacker, "jku": jwks_url}, _claims(user_id), key=ATTACKER_KEY),
        "x5u-attacker-key": _signed({**attacker, "x5u": cert_url}, _claims(user_id), key=ATTACKER_KEY),
        "jku-no-kid": _signed(
            {"alg": "EdDSA", "typ": "at+jwt", "jku": jwks_url}, _claims(user_id), key=ATTACKER_KEY
        ),
        "jku-real-key": _signed(_header(jku=jwks_url), _claims(user_id)),
        "x5u-real-key": _signed(_header(x5u=cert_url), _claims(user_id)),
    }


async def test_jku_and_x5u_are_refused_and_never_fetched(
    client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
) -> None:
    """Tokens pointing at a key URL are 401s, and the server at that URL receives no request at all.

    The server answers in a thread of its own, so a fetch (blocking or not) would be served and
    recorded. A probe sent afterwards proves the server was listening and recording: it must be
    the only request it ever saw.
    """
    with key_server() as server:
        for name, token in _pointing_tokens(alice.user_id, server.url).items():
            detail = await _assert_refused(client, db, token)
            assert server.url not in detail, (name, detail)

        async with httpx.AsyncClient(base_url=server.url) as probe:
            answer = await probe.get("/probe")

        assert answer.status_code == 200
        assert answer.json()["keys"][0]["kid"] == ATTACKER_KID
        assert server.requests == ["GET /probe HTTP/1.1"]
