"""The HTTP edge both APIs share, checked with no server running at all.

The clients connect lazily, so the apps start with every dependency down;
that is itself a behaviour under test (readiness then names all three).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import structlog
from litestar.testing import AsyncTestClient

from command_api.app import create_app as create_command_app
from command_api.settings import CommandApiSettings
from query_api.app import create_app as create_query_app
from query_api.settings import QueryApiSettings
from tests.support.tokens import bearer, mint
from tests.support.unreachable import unreachable_settings

AppFactory = Callable[[], Any]


def _unreachable() -> dict[str, Any]:
    return {**unreachable_settings(), "max_body_bytes": 1024}


@pytest.fixture(params=["command", "query"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[AsyncTestClient[Any]]:
    if request.param == "command":
        app = create_command_app(CommandApiSettings(**_unreachable()))
    else:
        app = create_query_app(QueryApiSettings(**_unreachable()))
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def test_liveness_answers_while_dependencies_are_down(client: AsyncTestClient[Any]) -> None:
    """/health/live is 200 as long as the process runs."""
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_names_every_failed_dependency(client: AsyncTestClient[Any]) -> None:
    """/health/ready is a 503 problem naming each dependency the process uses, when none answers."""
    response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    failed = {name for name, check in body["checks"].items() if check["status"] == "failed"}
    assert failed == set(body["checks"])
    assert "postgres" in failed
    assert "postgres" in body["detail"]


async def test_unknown_path_is_a_problem_404(client: AsyncTestClient[Any]) -> None:
    """A path no route matches gets an RFC 9457 problem with status 404."""
    response = await client.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["type"] == "about:blank"


async def test_wrong_method_is_a_problem_405(client: AsyncTestClient[Any]) -> None:
    """A known path with a wrong method gets a problem with status 405."""
    response = await client.delete("/health/live")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 405


async def test_a_request_id_is_made_when_none_is_sent(client: AsyncTestClient[Any]) -> None:
    """Every answer carries an X-Request-Id, made fresh when the client sent none."""
    first = await client.get("/health/live")
    second = await client.get("/health/live")
    assert first.headers["x-request-id"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_a_safe_request_id_is_echoed(client: AsyncTestClient[Any]) -> None:
    """A client's X-Request-Id is echoed so it can match logs on both sides."""
    response = await client.get("/v1/missing", headers={"X-Request-Id": "client-abc-123"})
    assert response.headers["x-request-id"] == "client-abc-123"


async def test_an_unsafe_request_id_is_replaced(client: AsyncTestClient[Any]) -> None:
    """An X-Request-Id with characters unfit for logs or headers is replaced."""
    response = await client.get("/health/live", headers={"X-Request-Id": "a b\tc" + "x" * 200})
    assert response.headers["x-request-id"] != "a b\tc" + "x" * 200


async def test_one_canonical_log_line_per_request(client: AsyncTestClient[Any]) -> None:
    """Each request logs exactly one line, with ids, route, status and duration."""
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        await client.get("/health/live", headers={"X-Request-Id": "r-42", "X-Correlation-Id": "c-7"})
    lines = [line for line in logs if line["event"] == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["status"] == 200
    assert line["route"] == "/health/live"
    assert line["method"] == "GET"
    assert line["duration_ms"] >= 0
    assert line["request_id"] == "r-42"
    assert line["correlation_id"] == "c-7"
    # Nothing of this request leaks into the next one's context.
    assert structlog.contextvars.get_contextvars() == {}


async def test_openapi_31_document_and_ui_are_served(client: AsyncTestClient[Any]) -> None:
    """/schema/openapi.json is an OpenAPI 3.1 document and /schema an HTML UI."""
    document = (await client.get("/schema/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert "/health/ready" in document["paths"]
    ui = await client.get("/schema")
    assert ui.status_code == 200
    assert "text/html" in ui.headers["content-type"]


async def test_metrics_are_served_in_prometheus_format(client: AsyncTestClient[Any]) -> None:
    """/metrics answers in Prometheus text format with the request counters."""
    await client.get("/health/live")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    counted = [line for line in response.text.splitlines() if line.startswith("cqrs_requests_total{")]
    assert any('path="/health/live"' in line and 'status_code="200"' in line for line in counted)


async def test_a_command_with_the_database_down_is_a_503_with_retry_after() -> None:
    """A command that cannot reach PostgreSQL gets 503 with Retry-After, never a 500."""
    app = create_command_app(CommandApiSettings(**_unreachable()))
    async with AsyncTestClient(app=app) as test_client:
        response = await test_client.post(
            "/v1/accounts", json={"currency": "EUR", "name": "x"}, headers=bearer(mint())
        )
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health/live", 200),
        ("GET", "/health/ready", 503),
        ("GET", "/no/such/route", 404),
        ("DELETE", "/health/live", 405),
    ],
)
async def test_every_answer_carries_the_security_headers(
    client: AsyncTestClient[Any], method: str, path: str, status: int
) -> None:
    """OWASP's REST headers on every answer, errors included; nothing without a cache policy is stored."""
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert response.headers["cache-control"] == "no-store"


async def test_an_answer_with_its_own_cache_policy_keeps_it(client: AsyncTestClient[Any]) -> None:
    """The JWKS may be cached by anyone for a while: its policy is not replaced by no-store."""
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers.get_list("cache-control") == [response.headers["cache-control"]]
    assert response.headers["cache-control"].startswith("public")
