"""The user aggregate as pure functions: registration, roles and API keys.

Email uniqueness is not decided here: the store reserves the normalised
address in the same transaction as UserRegistered (a reservation table).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, assert_never
from uuid import UUID

import msgspec

from contexts.identity.commands import (
    GrantRole,
    IssueApiKey,
    RegisterUser,
    RevokeApiKey,
    RevokeRole,
    UserCommand,
)
from contexts.identity.emails import normalise_email
from contexts.identity.errors import (
    ApiKeyNotFound,
    UnknownRole,
    UnknownScope,
    UserAlreadyExists,
    UserNotFound,
)
from contexts.identity.events import (
    ApiKeyIssued,
    ApiKeyRevoked,
    UserEvent,
    UserRegistered,
    UserRoleGranted,
    UserRoleRevoked,
)

ROLES: Final = frozenset({"user", "admin"})
SCOPES: Final = frozenset({"ledger:read", "ledger:write"})


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    scopes: tuple[str, ...]
    tier: str = "free"
    revoked: bool = False


class User(msgspec.Struct, frozen=True, kw_only=True):
    user_id: UUID
    email: str
    display_name: str
    roles: tuple[str, ...] = ("user",)
    api_keys: dict[UUID, ApiKey] = msgspec.field(default_factory=dict)


def evolve(state: User | None, event: UserEvent) -> User:
    match event:
        case UserRegistered():
            return User(user_id=event.user_id, email=event.email, display_name=event.display_name)
        case UserRoleGranted():
            user = _existing(state)
            return msgspec.structs.replace(user, roles=tuple(sorted({*user.roles, event.role})))
        case UserRoleRevoked():
            user = _existing(state)
            return msgspec.structs.replace(user, roles=tuple(r for r in user.roles if r != event.role))
        case ApiKeyIssued():
            user = _existing(state)
            key = ApiKey(name=event.name, scopes=event.scopes, tier=event.tier)
            return msgspec.structs.replace(user, api_keys={**user.api_keys, event.api_key_id: key})
        case ApiKeyRevoked():
            user = _existing(state)
            revoked = msgspec.structs.replace(user.api_keys[event.api_key_id], revoked=True)
            return msgspec.structs.replace(user, api_keys={**user.api_keys, event.api_key_id: revoked})
        case _:
            assert_never(event)


def fold(events: Iterable[UserEvent], state: User | None = None) -> User | None:
    for event in events:
        state = evolve(state, event)
    return state


def decide(state: User | None, command: UserCommand) -> list[UserEvent]:
    if state is not None and state.user_id != command.user_id:
        raise ValueError("the state given is not the command's user")
    match command:
        case RegisterUser():
            return _register(state, command)
        case GrantRole():
            return _grant(_existing(state), command)
        case RevokeRole():
            return _revoke(_existing(state), command)
        case IssueApiKey():
            return _issue_key(_existing(state), command)
        case RevokeApiKey():
            return _revoke_key(_existing(state), command)
        case _:
            assert_never(command)


def _register(state: User | None, command: RegisterUser) -> list[UserEvent]:
    if state is not None:
        raise UserAlreadyExists("a user with this id exists")
    email = normalise_email(command.email)
    return [UserRegistered(user_id=command.user_id, email=email, display_name=command.display_name)]


def _grant(user: User, command: GrantRole) -> list[UserEvent]:
    _check_role(command.role)
    if command.role in user.roles:
        return []  # already granted: nothing happens, nothing to record
    return [UserRoleGranted(user_id=user.user_id, role=command.role, granted_by=command.by)]


def _revoke(user: User, command: RevokeRole) -> list[UserEvent]:
    _check_role(command.role)
    if command.role not in user.roles:
        return []
    return [UserRoleRevoked(user_id=user.user_id, role=command.role, revoked_by=command.by)]


def _issue_key(user: User, command: IssueApiKey) -> list[UserEvent]:
    unknown = sorted(set(command.scopes) - SCOPES)
    if unknown or not command.scopes:
        raise UnknownScope(f"scopes must be some of {sorted(SCOPES)}; unknown: {unknown}")
    scopes = tuple(sorted(set(command.scopes)))
    return [
        ApiKeyIssued(
            user_id=user.user_id,
            api_key_id=command.api_key_id,
            name=command.name,
            scopes=scopes,
            tier=command.tier,
        )
    ]


def _revoke_key(user: User, command: RevokeApiKey) -> list[UserEvent]:
    key = user.api_keys.get(command.api_key_id)
    if key is None:
        raise ApiKeyNotFound("no such API key")
    return [] if key.revoked else [ApiKeyRevoked(user_id=user.user_id, api_key_id=command.api_key_id)]


def _existing(state: User | None) -> User:
    if state is None:
        raise UserNotFound("no such user")
    return state


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UnknownRole(f"roles are {sorted(ROLES)}")
