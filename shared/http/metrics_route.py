"""GET /metrics: litestar's Prometheus controller, documented as the text it answers."""

from __future__ import annotations

from litestar import Response, get
from litestar.plugins.prometheus import PrometheusController
from prometheus_client import CONTENT_TYPE_LATEST


class MetricsController(PrometheusController):
    @get(
        media_type=CONTENT_TYPE_LATEST,
        summary="Prometheus metrics",
        description="The process's metrics in Prometheus's text exposition format.",
        operation_id="getMetrics",
        tags=["operations"],
    )
    async def get(self) -> Response[bytes]:
        answer: Response[bytes] = await PrometheusController.get.fn(self)
        return answer
