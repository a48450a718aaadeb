"""Both OpenAPI 3.1 documents: every /v1 operation with its security and its problem answers, each with
an example, and the security schemes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from command_api.app import create_app as create_command_app
from command_api.settings import CommandApiSettings
from query_api.app import create_app as create_query_app
from query_api.ledger.accounts import ACCEPTED_LIST_PARAMETERS as ACCOUNT_LIST_PARAMETERS
from query_api.ledger.entries import ACCEPTED_PARAMETERS as ENTRY_PARAMETERS
from query_api.settings import QueryApiSettings
from shared.http.openapi import ANSWER, REQUEST_BODY
from tests.support.unreachable import unreachable_settings

PUBLIC = {"/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout"}


@pytest.fixture(params=["command", "query"])
async def document(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    if request.param == "command":
        app = create_command_app(CommandApiSettings(**unreachable_settings()))
    else:
        app = create_query_app(QueryApiSettings(**unreachable_settings()))
    async with AsyncTestClient(app=app) as client:
        yield (await client.get("/schema/openapi.json")).json()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, methods in document["paths"].items()
        if path.startswith("/v1/")
        for method, operation in methods.items()
    ]


async def test_it_is_openapi_3_1_with_both_security_schemes(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    schemes = document["components"]["securitySchemes"]
    assert schemes["BearerToken"]["scheme"] == "bearer"
    assert schemes["ApiKey"]["name"] == "X-API-Key"
    assert operations(document)


async def test_every_operation_says_how_it_is_authenticated(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        if path in PUBLIC:
            assert not operation.get("security"), f"{method} {path} is public"
        else:
            assert operation["security"] == [{"BearerToken": []}, {"ApiKey": []}], f"{method} {path}"


async def test_every_operation_lists_its_problem_answers_with_an_example(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        responses = operation["responses"]
        assert any(status.startswith("2") for status in responses), f"{method} {path}: no success answer"
        expected = {"400", "401", "422", "429", "503"} | ({"403", "404"} if path not in PUBLIC else set())
        assert expected <= set(responses), f"{method} {path}: {sorted(responses)}"
        for status in expected:
            content = responses[status]["content"]["application/problem+json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Problem"}
            (example,) = content["examples"].values()
            assert example["value"]["status"] == int(status)


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


async def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for ref in refs(document["paths"]):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


async def test_every_command_documents_its_body(document: dict[str, Any]) -> None:
    posts = [(path, op) for path, method, op in operations(document) if method == "post"]
    if "query API" in document["info"]["title"]:
        assert posts == []  # reads only
        return
    for path, operation in posts:
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body["type"] == "object", path
        assert body.get("additionalProperties") is False, f"{path}: unknown fields are refused (422)"
    deposit = next(op for path, op in posts if path.endswith("/deposits"))
    schema = deposit["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"amount", "reference"}
    assert schema["properties"]["amount"]["exclusiveMinimum"] == 0


def _routes() -> list[Any]:
    apps: list[Any] = [
        create_command_app(CommandApiSettings(**unreachable_settings())),
        create_query_app(QueryApiSettings(**unreachable_settings())),
    ]
    handlers = []
    for wrapped in apps:
        app = wrapped
        while not isinstance(app, Litestar):  # beneath the request-context middleware
            app = app.app
        handlers += [handler for route in app.routes for handler in getattr(route, "route_handlers", [])]
    return handlers


async def test_every_success_answer_and_body_has_a_schema_and_an_example(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if not status.startswith("2"):
                continue
            if status == "204":
                assert "content" not in response, f"{method} {path}: a 204 has no body"
                continue
            content = response["content"]["application/json"]
            assert content["schema"].get("properties"), f"{method} {path}: {status} has no schema"
            assert content["examples"], f"{method} {path}: {status} has no example"
        if "requestBody" in operation and not path.endswith("/close"):
            content = operation["requestBody"]["content"]["application/json"]
            assert content["examples"], f"{method} {path}: the body has no example"


def test_every_example_is_an_instance_of_its_type() -> None:
    """An example that drifts from its type fails here, before a client copies it."""
    types = {
        handler.opt[key]
        for handler in _routes()
        for key in (REQUEST_BODY, ANSWER)
        if handler.opt.get(key) is not None
    }
    assert len(types) >= 15
    for documented in types:
        example = getattr(documented, "example", None)
        if example is None:
            continue
        decoded = msgspec.convert(example, documented)
        assert msgspec.json.decode(msgspec.json.encode(decoded)) == example, documented.__name__


@pytest.mark.parametrize(
    ("path", "names"),
    [("/v1/accounts", ACCOUNT_LIST_PARAMETERS), ("/v1/accounts/{account_id}/entries", ENTRY_PARAMETERS)],
)
async def test_a_list_documents_exactly_the_parameters_it_accepts(path: str, names: frozenset[str]) -> None:
    app = create_query_app(QueryApiSettings(**unreachable_settings()))
    async with AsyncTestClient(app=app) as client:
        document = (await client.get("/schema/openapi.json")).json()
    parameters = document["paths"][path]["get"].get("parameters", [])
    assert {p["name"] for p in parameters if p["in"] == "query"} == names
