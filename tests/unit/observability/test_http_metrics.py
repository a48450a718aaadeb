"""Request metrics, recorded by the request-context middleware around the whole app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from shared.http.request_context import RequestContextMiddleware
from shared.observability.http_metrics import HttpMetrics

APP = "metrics-test-app"  # the metrics are process-wide; this label keeps the test's series apart
ROUTE = {"method": "GET", "path": "/items/{item_id}"}


@get("/items/{item_id:int}", sync_to_thread=False)
def item(item_id: FromPath[int]) -> dict[str, int]:
    if item_id == 0:
        raise RuntimeError("boom")
    return {"id": item_id}


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(f"cqrs_{name}", {"app_name": APP, **labels}) or 0.0


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Any]]:
    metrics = HttpMetrics(app_name=APP, excluded_prefixes=("/schema",))
    app = RequestContextMiddleware(Litestar([item]), metrics)
    async with AsyncTestClient(app=app) as test_client:  # type: ignore[arg-type]
        yield test_client


async def test_requests_are_counted_and_timed_per_route_and_status(client: AsyncTestClient[Any]) -> None:
    before = _value("requests_total", **ROUTE, status_code="200")
    before_errors = _value("requests_error_total", **ROUTE, status_code="500")

    for item_id in (1, 2, 3):
        assert (await client.get(f"/items/{item_id}")).status_code == 200
    assert (await client.get("/items/0")).status_code == 500

    assert _value("requests_total", **ROUTE, status_code="200") == before + 3
    assert _value("request_duration_seconds_count", **ROUTE, status_code="200") == before + 3
    assert _value("requests_error_total", **ROUTE, status_code="500") == before_errors + 1
    assert _value("requests_error_total", **ROUTE, status_code="200") == 0
    # Labelled by template, never by the raw path.
    assert _value("requests_total", method="GET", path="/items/1", status_code="200") == 0
    assert _value("requests_in_progress", method="GET") == 0


async def test_unmatched_paths_and_unknown_methods_share_one_series(client: AsyncTestClient[Any]) -> None:
    before = _value("requests_total", method="OTHER", path="unmatched", status_code="404")
    for path in ("/nothing/1", "/nothing/2", "/.env"):
        assert (await client.request("BREW", path)).status_code == 404
    assert _value("requests_total", method="OTHER", path="unmatched", status_code="404") == before + 3
    assert _value("requests_total", method="BREW", path="unmatched", status_code="404") == 0
    assert _value("requests_total", method="OTHER", path="/.env", status_code="404") == 0


async def test_excluded_routes_are_not_counted(client: AsyncTestClient[Any]) -> None:
    assert (await client.get("/schema/openapi.json")).status_code == 200
    assert _value("requests_total", method="GET", path="/schema/openapi.json", status_code="200") == 0
