"""The user aggregate: given events, when a command, then events or a refusal."""

from __future__ import annotations

import uuid

import pytest

from contexts.identity.commands import GrantRole, IssueApiKey, RegisterUser, RevokeApiKey, RevokeRole
from contexts.identity.decider import User, decide, fold
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

USER = uuid.UUID("0190f0a0-0000-7000-8000-0000000000aa")
ADMIN = uuid.UUID("0190f0a0-0000-7000-8000-0000000000bb")
KEY = uuid.UUID("0190f0a0-0000-7000-8000-0000000000cc")
REGISTERED = UserRegistered(user_id=USER, email="alice@example.com", display_name="Alice")


def given(*events: UserEvent) -> User | None:
    return fold(events)


def test_registration_records_the_normalised_email() -> None:
    """A new user is registered with its email in normal form and the role user."""
    events = decide(None, RegisterUser(user_id=USER, email=" Alice@Example.COM ", display_name="Alice"))
    assert events == [REGISTERED]
    user = fold(events)
    assert user is not None
    assert user.roles == ("user",)


def test_width_and_case_variants_of_an_email_are_one_address() -> None:
    """NFKC and case folding make full-width and upper-case variants the same key."""
    assert normalise_email("\uff21lice@\uff25xample.com") == normalise_email("alice@example.com")
    assert normalise_email("STRASSE@example.com") == normalise_email("strasse@EXAMPLE.com")


def test_registering_an_existing_user_id_is_refused() -> None:
    """The same user id cannot be registered twice."""
    with pytest.raises(UserAlreadyExists):
        decide(given(REGISTERED), RegisterUser(user_id=USER, email="b@example.com", display_name="B"))


def test_granting_admin_records_who_granted_it() -> None:
    """Granting a role emits UserRoleGranted with the granting user."""
    events = decide(given(REGISTERED), GrantRole(user_id=USER, role="admin", by=ADMIN))
    assert events == [UserRoleGranted(user_id=USER, role="admin", granted_by=ADMIN)]
    user = fold(events, given(REGISTERED))
    assert user is not None
    assert user.roles == ("admin", "user")


def test_granting_a_held_role_changes_nothing() -> None:
    """A role already held is not granted again."""
    state = given(REGISTERED, UserRoleGranted(user_id=USER, role="admin"))
    assert decide(state, GrantRole(user_id=USER, role="admin")) == []


def test_unknown_roles_are_refused() -> None:
    """Only the roles user and admin exist."""
    with pytest.raises(UnknownRole):
        decide(given(REGISTERED), GrantRole(user_id=USER, role="root"))
    with pytest.raises(UnknownRole):
        decide(given(REGISTERED), RevokeRole(user_id=USER, role="root"))


def test_revoking_a_role_removes_it_and_revoking_it_again_changes_nothing() -> None:
    """Revoking a held role emits UserRoleRevoked; a role not held gives no event."""
    state = given(REGISTERED, UserRoleGranted(user_id=USER, role="admin"))
    events = decide(state, RevokeRole(user_id=USER, role="admin", by=ADMIN))
    assert events == [UserRoleRevoked(user_id=USER, role="admin", revoked_by=ADMIN)]
    after = fold(events, state)
    assert after is not None
    assert after.roles == ("user",)
    assert decide(after, RevokeRole(user_id=USER, role="admin")) == []


def test_an_api_key_is_issued_with_known_scopes_and_no_secret() -> None:
    """Issuing a key records its id, name, sorted scopes and its session's tier, and nothing secret."""
    command = IssueApiKey(
        user_id=USER, api_key_id=KEY, name="ci", scopes=("ledger:write", "ledger:read"), tier="pro"
    )
    events = decide(given(REGISTERED), command)
    assert events == [
        ApiKeyIssued(
            user_id=USER, api_key_id=KEY, name="ci", scopes=("ledger:read", "ledger:write"), tier="pro"
        )
    ]
    assert set(type(events[0]).__struct_fields__) == {"user_id", "api_key_id", "name", "scopes", "tier"}
    user = given(REGISTERED, *events)
    assert user is not None
    assert user.api_keys[KEY].tier == "pro"


@pytest.mark.parametrize("scopes", [(), ("ledger:admin",), ("ledger:read", "everything")])
def test_unknown_or_missing_scopes_are_refused(scopes: tuple[str, ...]) -> None:
    """A key needs at least one scope, and only known ones."""
    with pytest.raises(UnknownScope):
        decide(given(REGISTERED), IssueApiKey(user_id=USER, api_key_id=KEY, name="ci", scopes=scopes))


def test_revoking_a_key_marks_it_revoked_once() -> None:
    """Revoking a live key emits ApiKeyRevoked; revoking it again changes nothing."""
    state = given(
        REGISTERED,
        ApiKeyIssued(user_id=USER, api_key_id=KEY, name="ci", scopes=("ledger:read",), tier="free"),
    )
    events = decide(state, RevokeApiKey(user_id=USER, api_key_id=KEY))
    assert events == [ApiKeyRevoked(user_id=USER, api_key_id=KEY)]
    after = fold(events, state)
    assert after is not None
    assert after.api_keys[KEY].revoked
    assert decide(after, RevokeApiKey(user_id=USER, api_key_id=KEY)) == []


def test_revoking_an_unknown_key_is_refused() -> None:
    """A key the user does not have cannot be revoked."""
    with pytest.raises(ApiKeyNotFound):
        decide(given(REGISTERED), RevokeApiKey(user_id=USER, api_key_id=KEY))


@pytest.mark.parametrize(
    "command",
    [
        GrantRole(user_id=USER, role="admin"),
        RevokeRole(user_id=USER, role="admin"),
        IssueApiKey(user_id=USER, api_key_id=KEY, name="ci", scopes=("ledger:read",)),
        RevokeApiKey(user_id=USER, api_key_id=KEY),
    ],
    ids=["grant", "revoke", "issue-key", "revoke-key"],
)
def test_commands_on_a_missing_user_are_refused(command: object) -> None:
    """Every command but registration needs an existing user."""
    with pytest.raises(UserNotFound):
        decide(None, command)  # type: ignore[arg-type]


def test_a_state_of_another_user_is_a_caller_error() -> None:
    """Deciding with another user's state is a programming error, not a refusal."""
    with pytest.raises(ValueError, match="not the command's user"):
        decide(given(REGISTERED), GrantRole(user_id=uuid.uuid4(), role="admin"))
