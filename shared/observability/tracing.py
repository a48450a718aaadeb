"""OpenTelemetry tracing, off by default: one setting (`CQRS_OTLP_ENDPOINT`) turns on OTLP export.

One trace follows a write: the HTTP request (litestar's OpenTelemetry plugin),
the command's append to the store and outbox (its `traceparent` is stored
with each event), the relay's publish to NATS (the message carries the
publish span's `traceparent`) and each projector's apply. The packages are an
optional extra (`uv sync --extra tracing`); they are imported only when
tracing is on, and nothing is traced, or costs anything, when it is off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

TRACEPARENT = "traceparent"


class TracingUnavailable(RuntimeError):
    """Tracing was asked for, but the `tracing` extra is not installed."""


@dataclass(frozen=True)
class Tracing:
    """A process's tracer; its spans are children of the `traceparent` they are given."""

    # opentelemetry's TracerProvider and Tracer; typed loosely because the extra may be absent, and
    # litestar resolves the annotations of the runtimes it injects.
    provider: Any
    tracer: Any

    @contextlib.contextmanager
    def span(
        self, name: str, *, parent: str | None = None, kind: str = "INTERNAL", **attributes: Any
    ) -> Iterator[Any]:
        """A span, current while the block runs; a child of `parent` (a traceparent) when given,
        else of the current span."""
        from opentelemetry import trace  # noqa: PLC0415 - only when tracing is on
        from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
            TraceContextTextMapPropagator,
        )

        context = TraceContextTextMapPropagator().extract({TRACEPARENT: parent}) if parent else None
        with self.tracer.start_as_current_span(
            name, context=context, kind=getattr(trace.SpanKind, kind), attributes=attributes
        ) as span:
            yield span

    def record(self, name: str, *, parent: str, start: datetime, end: datetime, **attributes: Any) -> None:
        """A finished span of work already done (a batch applied), child of `parent`."""
        from opentelemetry.trace import SpanKind  # noqa: PLC0415
        from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
            TraceContextTextMapPropagator,
        )

        context = TraceContextTextMapPropagator().extract({TRACEPARENT: parent})
        span = self.tracer.start_span(
            name,
            context=context,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            start_time=int(start.timestamp() * 1e9),
        )
        span.end(end_time=int(end.timestamp() * 1e9))

    @staticmethod
    def current_traceparent() -> str | None:
        """The current span's traceparent, to store with an event or send with a message."""
        from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
            TraceContextTextMapPropagator,
        )

        carrier: MutableMapping[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        return carrier.get(TRACEPARENT)


def start_tracing(
    service_name: str, *, endpoint: str | None, exporter: SpanExporter | None = None
) -> Tracing | None:
    """The process's tracing: OTLP/HTTP export to `endpoint`, or to `exporter` (tests); None when
    neither is given. The provider is the process's own, passed where spans are made."""
    if endpoint is None and exporter is None:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
            BatchSpanProcessor,
            SimpleSpanProcessor,
        )
    except ImportError as error:
        raise TracingUnavailable(
            "CQRS_OTLP_ENDPOINT is set but OpenTelemetry is not installed: `uv sync --extra tracing`"
        ) from error
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return Tracing(provider, provider.get_tracer("cqrs"))


def traceparent_of(headers: Mapping[str, str] | None) -> str | None:
    return headers.get(TRACEPARENT) if headers else None
