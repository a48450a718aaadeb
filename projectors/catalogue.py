"""Every projection, by name: adding one is its module plus one line here (and its migration)."""

from __future__ import annotations

from typing import Final

from projectors.identity.users import UsersProjection
from projectors.ledger.accounts import AccountsProjection
from projectors.ledger.owner_summaries import OwnerSummariesProjection
from projectors.projection import Projection

PROJECTIONS: Final[dict[str, type[Projection]]] = {
    projection.name: projection
    for projection in (
        AccountsProjection,
        OwnerSummariesProjection,
        UsersProjection,
    )
}


class UnknownProjection(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no projection named {name!r}; known: {', '.join(sorted(PROJECTIONS))}")


def projection_class(name: str) -> type[Projection]:
    try:
        return PROJECTIONS[name]
    except KeyError:
        raise UnknownProjection(name) from None
