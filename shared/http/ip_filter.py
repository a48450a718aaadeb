"""IP allow and deny lists, checked before anything else runs: 403 before authentication.

Deny wins over allow. With an allow list set, every other address is refused,
health and metrics included (a load balancer or Prometheus must be allowed by
network). The address is the client's as `ClientAddresses` resolves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from shared.http.client_address import ClientAddresses, parse_networks, within
from shared.http.problems import PROBLEM_MEDIA_TYPE

_REFUSED: Final = msgspec.json.encode(
    {
        "type": "/problems/address-refused",
        "title": "Forbidden",
        "status": 403,
        "detail": "Requests from this address are not allowed.",
    }
)


class IpFilter:
    def __init__(
        self, app: ASGIApp, addresses: ClientAddresses, *, allow: Sequence[str], deny: Sequence[str]
    ) -> None:
        self.app = app
        self._addresses = addresses
        self._allow = parse_networks(allow)
        self._deny = parse_networks(deny)

    def permits(self, scope: Scope) -> bool:
        address = self._addresses.of(scope)
        if address is None:
            return not self._allow
        if within(address, self._deny):
            return False
        return not self._allow or within(address, self._allow)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Both APIs speak plain HTTP only; lifespan messages pass.
        if scope["type"] != ScopeType.HTTP or self.permits(scope):
            await self.app(scope, receive, send)
            return
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(_REFUSED)).encode()),
            ],
        }
        body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": _REFUSED, "more_body": False}
        await send(start)
        await send(body)
