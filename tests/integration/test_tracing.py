"""Tracing on: one trace follows a write from the HTTP request to the projector's apply."""

from __future__ import annotations

import uuid

import asyncpg
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from command_api.app import create_app
from command_api.settings import CommandApiSettings
from shared.observability.tracing import start_tracing
from shared.settings import load_settings
from tests.integration.command_api.conftest import app_client
from tests.integration.projectors.helpers import running_projectors, running_relay, wait_until
from tests.support.tokens import bearer, mint


async def test_one_trace_spans_the_request_the_append_the_publish_and_the_apply(
    service_environment: dict[str, str], database_url: str
) -> None:
    exporter = InMemorySpanExporter()
    tracing = start_tracing("test", endpoint=None, exporter=exporter)
    assert tracing is not None
    app = create_app(load_settings(CommandApiSettings, service_environment), tracing=tracing)
    async with (
        app_client(app) as client,
        running_relay(service_environment, tracing),
        running_projectors(service_environment, ["accounts"], tracing),
    ):
        opened = await client.post(
            "/v1/accounts", json={"currency": "EUR", "name": "t"}, headers=bearer(mint())
        )
        assert opened.status_code == 201, opened.text
        account_id = uuid.UUID(opened.json()["account_id"])

        async def projected() -> bool:
            connection = await asyncpg.connect(database_url, timeout=5)
            try:
                found = await connection.fetchval(
                    "SELECT count(*) FROM read.accounts WHERE account_id = $1", account_id
                )
            finally:
                await connection.close()
            return bool(found) and any(
                span.name == "apply accounts" for span in exporter.get_finished_spans()
            )

        await wait_until(projected, 20, "the account is projected and its apply traced")

    spans = exporter.get_finished_spans()
    server = next(s for s in spans if s.kind == SpanKind.SERVER and "/v1/accounts" in s.name)
    trace = [s for s in spans if s.context.trace_id == server.context.trace_id]
    by_name = {s.name: s for s in trace}
    command = by_name["command open_account"]
    publish = by_name["publish AccountOpened"]
    apply = by_name["apply accounts"]
    # One chain: request -> the command's append -> the relay's publish -> the projector's apply.
    assert command.parent is not None
    assert command.parent.span_id == server.context.span_id
    assert publish.kind == SpanKind.PRODUCER
    assert publish.parent is not None
    assert publish.parent.span_id == command.context.span_id
    assert apply.kind == SpanKind.CONSUMER
    assert apply.parent is not None
    assert apply.parent.span_id == publish.context.span_id
    tracing.provider.shutdown()
