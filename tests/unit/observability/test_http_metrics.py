"""The Prometheus middleware with bound label children exports what litestar's own does."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.plugins.prometheus import PrometheusConfig
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from shared.observability.http_metrics import BoundLabelsPrometheusMiddleware

PREFIX = "boundtest"


@get("/items/{item_id:int}", sync_to_thread=False)
def item(item_id: FromPath[int]) -> dict[str, int]:
    if item_id == 0:
        raise RuntimeError("boom")
    return {"id": item_id}


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"app_name": "bound-app", **labels})


@pytest.fixture
async def client() -> Any:
    config = PrometheusConfig(
        app_name="bound-app", prefix=PREFIX, group_path=True, middleware_class=BoundLabelsPrometheusMiddleware
    )
    app = Litestar([item], middleware=[config.middleware])
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def test_requests_are_counted_and_timed_per_route_template_and_status(client: Any) -> None:
    route = {"method": "GET", "path": "/items/{item_id}"}
    before_ok = _value(f"{PREFIX}_requests_total", **route, status_code="200") or 0.0
    before_errors = _value(f"{PREFIX}_requests_error_total", **route, status_code="500") or 0.0

    for item_id in (1, 2, 3):
        assert (await client.get(f"/items/{item_id}")).status_code == 200
    assert (await client.get("/items/0")).status_code == 500

    assert _value(f"{PREFIX}_requests_total", **route, status_code="200") == before_ok + 3
    assert _value(f"{PREFIX}_request_duration_seconds_count", **route, status_code="200") == before_ok + 3
    assert _value(f"{PREFIX}_requests_error_total", **route, status_code="500") == before_errors + 1
    assert _value(f"{PREFIX}_requests_error_total", **route, status_code="200") is None
    # Labelled by template, never by the raw path.
    assert _value(f"{PREFIX}_requests_total", method="GET", path="/items/1", status_code="200") is None
    # The stock middleware labels the gauge with status 200; every request is over.
    assert _value(f"{PREFIX}_requests_in_progress", **route, status_code="200") == 0


def test_options_whose_labels_vary_by_request_are_refused() -> None:
    config = PrometheusConfig(prefix=PREFIX, group_path=False, middleware_class=BoundLabelsPrometheusMiddleware)
    with pytest.raises(ValueError, match="group_path"):
        Litestar([item], middleware=[config.middleware])
