"""Building command answers: a success body, or a refusal as a stored problem."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from command_api.execution.executor import Answer, Outcome
from shared.http.problems import PROBLEM_MEDIA_TYPE

_json = msgspec.json.Encoder()


def success(status: int, body: msgspec.Struct, headers: Mapping[str, str] | None = None) -> Answer:
    return Answer(status=status, body=_json.encode(body), headers=dict(headers or {}))


def problem_answer(status: int, code: str, detail: str) -> Answer:
    """An RFC 9457 problem as a command answer, so that it is kept for replay like any other."""
    body = {
        "type": f"/problems/{code}",
        "title": code.replace("-", " ").capitalize(),
        "status": status,
        "detail": detail,
    }
    return Answer(status=status, body=_json.encode(body), headers={"Content-Type": PROBLEM_MEDIA_TYPE})


def refused(answer: Answer) -> Outcome:
    """A refused command changes nothing and answers with its problem."""
    return Outcome(changes=[], respond=lambda versions, token: answer)
