"""What the identity routes share: reading a user's state, refusing, deciding on one user."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final
from uuid import UUID

import msgspec

from command_api.answers import problem_answer, refused
from command_api.execution.executor import Answer, Decide, Outcome, StreamChange
from contexts.identity import decider, errors
from contexts.identity.commands import UserCommand
from contexts.identity.decider import User, fold
from contexts.identity.events import AGGREGATE, UserEvent
from shared.eventsourcing.store import SideWrite, StreamState

_user_decoder = msgspec.json.Decoder(User)

REFUSAL_STATUS: Final[Mapping[type[errors.IdentityError], int]] = {
    errors.UserNotFound: 404,
    errors.ApiKeyNotFound: 404,
    errors.UserAlreadyExists: 409,
    errors.UnknownRole: 422,
    errors.UnknownScope: 422,
}


def user_of(states: Mapping[UUID, StreamState], user_id: UUID) -> User | None:
    """The user's state; None when the id is no user."""
    row = states.get(user_id)
    if row is None or row.stream_type != AGGREGATE:
        return None
    return _user_decoder.decode(row.state)


def decode_user(state: bytes) -> User:
    return _user_decoder.decode(state)


def change(user_id: UUID, state: User | None, events: list[UserEvent]) -> StreamChange:
    new_state = fold(events, state)
    if new_state is None:  # pragma: no cover - a decider never returns no event with no state
        raise ValueError("no state after the events")
    return StreamChange(stream_id=user_id, stream_type=AGGREGATE, events=events, state=new_state)


def refusal(error: errors.IdentityError) -> Outcome:
    return refused(problem_answer(REFUSAL_STATUS.get(type(error), 409), error.code, str(error)))


def plan_on_user(
    user_id: UUID,
    command: UserCommand,
    respond: Callable[[User, int | None, str], Answer],
    side_writes: Callable[[User], list[SideWrite]] = lambda user: [],
) -> tuple[list[UUID], Decide]:
    """Decide one command on one user; answer with its new state and version (None: nothing changed)."""

    def decide(states: Mapping[UUID, StreamState]) -> Outcome:
        state = user_of(states, user_id)
        try:
            events = decider.decide(state, command)
        except errors.IdentityError as error:
            return refusal(error)
        new_state = fold(events, state)
        if new_state is None:  # pragma: no cover - only registration starts from nothing
            raise ValueError("no user after the events")
        return Outcome(
            [change(user_id, state, events)] if events else [],
            lambda versions, token: respond(new_state, versions.get(user_id), token),
            side_writes=side_writes(new_state) if events else [],
        )

    return [user_id], decide
