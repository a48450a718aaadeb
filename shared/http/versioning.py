"""API versions side by side: `/v1` and `/v2` of an endpoint, the older one announced as deprecated.

A deprecated route keeps working until its sunset, and every answer it gives
says so (errors included): `Deprecation` (RFC 9745: when it was deprecated,
`@<unix seconds>`), `Sunset` (RFC 8594: the HTTP date after which it may go)
and `Link` to its successor (`rel="successor-version"`). The OpenAPI document
marks it deprecated. docs/extending.md shows the steps.

    @get("/accounts/{account_id:uuid}", **deprecated_route(Deprecation(
        since=datetime(2027, 1, 1, tzinfo=UTC), sunset=datetime(2027, 7, 1, tzinfo=UTC),
        successor="/v2/accounts/{account_id}")))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from litestar import Request

from shared.http.request_context import RESPONSE_HEADERS


@dataclass(frozen=True, slots=True)
class Deprecation:
    since: datetime
    sunset: datetime | None = None
    # Where clients should go instead: a path or URL; `{name}` parts are filled from the request's path.
    successor: str | None = None

    def __post_init__(self) -> None:
        for moment in (self.since, self.sunset):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("deprecation dates need a time zone")
        if self.sunset is not None and self.sunset < self.since:
            raise ValueError("a route cannot sunset before it is deprecated")

    def headers(self, path_params: dict[str, Any]) -> list[tuple[bytes, bytes]]:
        found = [(b"deprecation", f"@{int(self.since.timestamp())}".encode())]
        if self.sunset is not None:
            found.append((b"sunset", format_datetime(self.sunset, usegmt=True).encode()))
        if self.successor is not None:
            target = self.successor.format(**path_params)
            found.append((b"link", f'<{target}>; rel="successor-version"'.encode()))
        return found


def deprecated_route(deprecation: Deprecation) -> dict[str, Any]:
    """Keyword arguments for a route decorator: deprecated in OpenAPI, and announced on every answer."""

    async def announce(request: Request[Any, Any, Any]) -> None:
        headers = deprecation.headers(dict(request.path_params))
        request.scope["state"].setdefault(RESPONSE_HEADERS, []).extend(headers)

    return {"deprecated": True, "before_request": announce}
