"""The password strength rule at the HTTP edge: a weak password is a 422 naming its field."""

from __future__ import annotations

from shared.auth.passwords import password_problems
from shared.http.problems import problem


def refuse_weak_password(password: str, *, field: str, user_inputs: tuple[str, ...] = ()) -> None:
    weaknesses = password_problems(password, user_inputs=user_inputs)
    if weaknesses:
        message = "; ".join(weaknesses)
        raise problem(
            422,
            f"The password is too weak: {message}.",
            type_="/problems/weak-password",
            title="Weak password",
            errors=[{"field": field, "message": message}],
        )
