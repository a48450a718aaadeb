"""HTTP request metrics: count, duration and server errors per route and status, and requests in flight.

The names and labels are those of litestar's Prometheus plugin (its
`PrometheusController` serves them at /metrics), but they are recorded by
the request-context middleware, in the one layer that already wraps every
request, rather than by the plugin's own middleware: on a cached GET a second
wrapping layer cost about 15% of the throughput under load (docs/benchmarks.md,
queries), and bound label children are kept per (method, route, status)
instead of being looked up on every request.
"""

from __future__ import annotations

from typing import Any, Final

from prometheus_client import Counter, Gauge, Histogram

FIRST_ERROR_STATUS: Final = 500
UNMATCHED_ROUTE: Final = "unmatched"  # a path no route matched: one label value, whatever the path
# A client may send any method token; labels take only these, so it cannot grow the series.
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD: Final = "OTHER"

_LABELS: Final = ("method", "path", "status_code", "app_name")
REQUESTS: Final = Counter("cqrs_requests_total", "Total requests", _LABELS)
DURATION: Final = Histogram("cqrs_request_duration_seconds", "Request duration, in seconds", _LABELS)
ERRORS: Final = Counter("cqrs_requests_error_total", "Total errors in requests", _LABELS)
IN_PROGRESS: Final = Gauge("cqrs_requests_in_progress", "Requests being answered", ("method", "app_name"))


class HttpMetrics:
    """One app's view of the request metrics (its `app_name` label), with label children bound once."""

    def __init__(self, *, app_name: str, excluded_prefixes: tuple[str, ...] = ()) -> None:
        self._app_name = app_name
        self._excluded = excluded_prefixes
        self._finished: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._running: dict[str, Any] = {}

    @staticmethod
    def method_label(method: str) -> str:
        return method if method in METHODS else OTHER_METHOD

    def started(self, method: str) -> Any:
        """The in-flight gauge of this method label, raised by one; lower it when the request ends."""
        gauge = self._running.get(method)
        if gauge is None:
            gauge = IN_PROGRESS.labels(method, self._app_name)
            self._running[method] = gauge
        gauge.inc()
        return gauge

    def finished(self, method: str, route: str | None, status: int, seconds: float) -> None:
        """Count one answered request; `route` is the matched route's template (None: no match)."""
        route = UNMATCHED_ROUTE if route is None else route
        if route.startswith(self._excluded):
            return
        key = (method, route, status)
        children = self._finished.get(key)
        if children is None:
            values = (method, route, status, self._app_name)
            errors = ERRORS.labels(*values) if status >= FIRST_ERROR_STATUS else None
            children = (REQUESTS.labels(*values), DURATION.labels(*values), errors)
            self._finished[key] = children
        count, duration, errors = children
        count.inc()
        duration.observe(seconds)
        if errors is not None:
            errors.inc()
