"""Registering a user: the event, the email reservation and the password hash, committed together."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from uuid_utils.compat import uuid7

from command_api.answers import problem_answer, success
from command_api.execution.executor import Outcome
from command_api.identity.answers import UserRegisteredAnswer
from command_api.identity.users import change, refusal, user_of
from command_api.identity.write_side import reserve_email, store_credentials
from command_api.runtime import Plan
from contexts.identity import decider, errors
from contexts.identity.commands import GrantRole, RegisterUser
from contexts.identity.emails import normalise_email
from contexts.identity.events import UserEvent
from shared.eventsourcing.store import StreamState


def registration_plan(
    email: str, display_name: str, password_hash: str, *, extra_roles: tuple[str, ...] = ()
) -> Plan:
    """Register a new user (with `extra_roles` granted at once: the first admin)."""
    user_id = UUID(bytes=uuid7().bytes)
    email_key = normalise_email(email)

    def decide(states: Mapping[UUID, StreamState]) -> Outcome:
        state = user_of(states, user_id)
        try:
            events: list[UserEvent] = decider.decide(
                state, RegisterUser(user_id=user_id, email=email, display_name=display_name)
            )
            user = decider.fold(events, state)
            for role in extra_roles:
                granted = decider.decide(user, GrantRole(user_id=user_id, role=role))
                user = decider.fold(granted, user)
                events += granted
        except errors.IdentityError as error:
            return refusal(error)
        return Outcome(
            [change(user_id, state, events)],
            lambda versions, token: success(
                201,
                UserRegisteredAnswer(user_id=user_id, version=versions[user_id], consistency_token=token),
            ),
            side_writes=[reserve_email(email_key, user_id), store_credentials(user_id, password_hash)],
            on_rejected=lambda side_write: problem_answer(
                409, "email-taken", "A user with this email address exists."
            ),
        )

    return [user_id], decide
