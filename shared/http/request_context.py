"""ASGI middleware around the whole app: request and correlation ids, security headers, the request
metrics, one log line.

The wrapping is outside litestar on purpose: litestar runs middleware only
for matched routes, and a 404 or 405 must still get a request id, a log line
and a count. Everything per request happens in this one layer, with one
wrapper of `send`: each further layer cost a cached GET measurable throughput.
"""

from __future__ import annotations

import random
import re
import time
from typing import Final

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from shared.observability.http_metrics import HttpMetrics

REQUEST_ID_HEADER: Final = b"x-request-id"
CORRELATION_ID_HEADER: Final = b"x-correlation-id"
# OWASP's REST security cheat sheet: on every answer. An API's answers are never framed nor
# sniffed as another type, and HTTPS is sticky (ignored by browsers over plain HTTP).
SECURITY_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
)
CACHE_CONTROL: Final = b"cache-control"
# For answers that set no cache policy of their own: nothing stores them (OWASP), so no
# shared cache keeps an authenticated answer. Answers that may be kept say so themselves.
NO_STORE: Final = (CACHE_CONTROL, b"no-store")
# Where a route puts headers for whatever answer its request gets, errors included
# (the rate limits' headers): a list of (name, value) byte pairs in the scope's state.
RESPONSE_HEADERS: Final = "response_headers"
# An id a client sends is echoed, so it must be harmless in a header and a log line.
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")

_log = structlog.get_logger("http")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name and _SAFE_ID.match(value):
            return str(value.decode("ascii"))
    return None


class RequestContextMiddleware:
    """Binds ids into the logging context, adds the headers every answer has, counts and times
    the request, logs it once answered."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        # 128 random bits, as many as a UUID4 has, without its cost or a getrandom() system call
        # per request: an id must be unique, not unpredictable (random reseeds after a fork).
        request_id = _header(scope, REQUEST_ID_HEADER) or f"{random.getrandbits(128):032x}"
        correlation_id = _header(scope, CORRELATION_ID_HEADER) or request_id
        # The server runs each request in a task with a copy of its own context, so no other
        # request's ids are in it; resetting the tokens at the end restores that copy.
        bound = structlog.contextvars.bind_contextvars(request_id=request_id, correlation_id=correlation_id)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["correlation_id"] = correlation_id

        method = self._metrics.method_label(scope["method"])
        in_flight = self._metrics.started(method)
        status = 500
        started = time.perf_counter()
        answered = started

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    *message.get("headers", ()),
                    *state.get(RESPONSE_HEADERS, ()),
                    *SECURITY_HEADERS,
                    (REQUEST_ID_HEADER, request_id.encode("ascii")),
                ]
                if not any(name.lower() == CACHE_CONTROL for name, _ in headers):
                    headers.append(NO_STORE)
                message["headers"] = headers
            elif message["type"] == "http.response.body":
                answered = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            in_flight.dec()
            # Unmatched paths have no template; the raw path would let a scanner flood the
            # route dimension of metrics and log queries, so neither ever labels by it.
            route = scope.get("path_template")
            self._metrics.finished(method, route, status, answered - started)
            _log.info(
                "request",
                method=scope.get("method"),
                path=scope.get("path"),
                route=route,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.reset_contextvars(**bound)
