"""POST /v1/auth/login: email and password for an access token and a new refresh-token family."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException

from command_api.http_commands import read_command
from command_api.identity.answers import TokenPair
from command_api.identity.bodies import LoginBody
from command_api.identity.credentials import LoginRecord
from command_api.identity.runtime import IdentityRuntime
from contexts.identity.decider import User
from contexts.identity.emails import normalise_email
from shared.auth.passwords import PasswordCheckBusy
from shared.http.auth import REALM
from shared.http.openapi import ANSWER, REQUEST_BODY

_decoder = msgspec.json.Decoder(LoginBody)
_json = msgspec.json.Encoder()
# RFC 6749 §5.1: token answers are never cached.
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@post(
    "/auth/login",
    opt={REQUEST_BODY: LoginBody, ANSWER: TokenPair},
    status_code=200,
    summary="Log in",
    operation_id="login",
    security=[],
)
async def login(
    request: Request[Any, Any, Any], identity: NamedDependency[IdentityRuntime]
) -> Response[bytes]:
    await identity.admit_anonymous(request)
    body, _ = await read_command(request, _decoder)
    email_key = normalise_email(body.email)
    record = await identity.credentials.find_login(email_key)
    # An unknown email is checked against a dummy hash: the same work, the same answer.
    stored_hash = record.password_hash if record else None
    checked = await identity.throttled_verify(
        email_key, identity.client_ip(request), stored_hash, body.password
    )
    if record is None or not checked.ok:
        raise NotAuthorizedException(
            detail="The email or password is wrong.", headers={"WWW-Authenticate": REALM}
        )
    if checked.needs_rehash:
        await _rehash(identity, record, body.password)
    refresh_token = await identity.sessions.start(record.user_id)
    return token_response(identity, record.user, refresh_token)


async def _rehash(identity: IdentityRuntime, record: LoginRecord, password: str) -> None:
    """Upgrade an old hash; when hashing is busy, leave it for a later login rather than fail this one."""
    try:
        new_hash = await identity.passwords.hash(password)
    except PasswordCheckBusy:
        return
    await identity.credentials.rehash(record.user_id, record.password_hash, new_hash)


def token_response(identity: IdentityRuntime, user: User, refresh_token: str) -> Response[bytes]:
    access = identity.issuer.issue(user.user_id, user.roles)
    pair = TokenPair(
        access_token=access.token,
        refresh_token=refresh_token,
        token_type="Bearer",  # noqa: S106 - the RFC 6749 token type
        expires_in=access.expires_in,
    )
    return Response(_json.encode(pair), status_code=200, media_type="application/json", headers=NO_STORE)
