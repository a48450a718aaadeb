"""Both APIs, served for real, against their own OpenAPI documents (schemathesis).

Generated requests, valid and invalid, go to `cqrs command-api` and `cqrs
query-api` on granian; every answer must be documented: no 5xx, a documented
status, content type, headers and body schema.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from litestar import Litestar
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from command_api.app import create_app as create_command_app
from command_api.settings import CommandApiSettings
from devstack.ports import free_port
from query_api.app import create_app as create_query_app
from query_api.settings import QueryApiSettings
from tests.integration.command_api.conftest import PASSWORD
from tests.support.environment import own_environment
from tests.support.services import running, system_services
from tests.support.tokens import bearer, mint
from tests.support.unreachable import unreachable_settings

pytestmark = pytest.mark.slow

# Bounded for CI (about 40 s for both APIs); a longer search is one variable away (docs/api.md).
EXAMPLES_PER_OPERATION = int(os.environ.get("CONFORMANCE_EXAMPLES", "50"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass(frozen=True, slots=True)
class LiveApis:
    command_url: str
    query_url: str


@dataclass(frozen=True, slots=True)
class Known:
    """Resources that exist, so that generated requests reach the code that writes and reads."""

    user_id: str
    accounts: tuple[str, str]  # two funded EUR accounts of the user


@pytest.fixture(scope="module")
def live_apis(
    postgres_admin_url: str,
    migrated_template: str,
    nats_url: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveApis]:
    """The whole system: both APIs, the relay and the projectors, each a process of its own."""
    log_dir: Path = tmp_path_factory.mktemp("conformance")
    command_port, query_port = free_port(), free_port()
    with (
        own_environment(
            postgres_admin_url=postgres_admin_url,
            migrated_template=migrated_template,
            nats_url=nats_url,
            redis_url=redis_url,
        ) as environment,
        running(*system_services(environment, log_dir, command_port, query_port).values()),
    ):
        yield LiveApis(f"http://127.0.0.1:{command_port}", f"http://127.0.0.1:{query_port}")


@pytest.fixture(scope="module")
def known(live_apis: LiveApis) -> Known:
    email = f"conformance-{uuid.uuid4().hex[:8]}@example.com"
    registered = requests.post(
        f"{live_apis.command_url}/v1/auth/register",
        json={"email": email, "password": PASSWORD, "display_name": "Conformance"},
        timeout=10,
    )
    assert registered.status_code == 201, registered.text
    user_id = registered.json()["user_id"]
    headers = _admin_headers(user_id)
    accounts = []
    for name in ("first", "second"):
        opened = requests.post(
            f"{live_apis.command_url}/v1/accounts",
            json={"currency": "EUR", "name": name},
            headers=headers,
            timeout=10,
        )
        assert opened.status_code == 201, opened.text
        account_id = opened.json()["account_id"]
        deposited = requests.post(
            f"{live_apis.command_url}/v1/accounts/{account_id}/deposits",
            json={"amount": 1_000_000, "reference": "seed"},
            headers=headers,
            timeout=10,
        )
        assert deposited.status_code == 201, deposited.text
        accounts.append(account_id)
    return Known(user_id=user_id, accounts=(accounts[0], accounts[1]))


def _admin_headers(user_id: str) -> dict[str, str]:
    return bearer(mint(uuid.UUID(user_id), roles=("user", "admin"), expires_in=3600))


@pytest.fixture(scope="module")
def session(known: Known) -> Iterator[requests.Session]:
    """Calls as an administrator, so that the generated requests get past authorisation."""
    with requests.Session() as http:
        http.headers.update(_admin_headers(known.user_id))
        yield http


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def steer(case: schemathesis.Case, known: Known) -> None:
    """Point well-formed ids and currencies at what exists; malformed ones stay as generated.

    A random account id or currency is refused (404, unknown currency) before any write, so
    without this the writes and reads behind them would hardly ever run.
    """
    parameters = case.path_parameters or {}
    if _is_uuid(parameters.get("account_id")):
        parameters["account_id"] = known.accounts[0]
    if _is_uuid(parameters.get("user_id")):
        parameters["user_id"] = known.user_id
    body = case.body
    if isinstance(body, dict):
        if isinstance(body.get("currency"), str) and re.fullmatch(r"[A-Z]{3}", body["currency"]):
            body["currency"] = "EUR"
        for field, account in zip(("from_account_id", "to_account_id"), known.accounts, strict=True):
            if _is_uuid(body.get(field)):
                body[field] = account


def _document(app: Any) -> dict[str, Any]:
    while not isinstance(app, Litestar):  # beneath the request-context middleware
        app = app.app
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


# Built at collection, without servers, so each operation is a test of its own (schemathesis's
# lazy loader does not run on pytest 9); the first test proves it is the document served.
COMMAND_API_DOCUMENT = _document(create_command_app(CommandApiSettings(**unreachable_settings())))
QUERY_API_DOCUMENT = _document(create_query_app(QueryApiSettings(**unreachable_settings())))
command_api = schemathesis.openapi.from_dict(COMMAND_API_DOCUMENT)
query_api = schemathesis.openapi.from_dict(QUERY_API_DOCUMENT)


def test_these_are_the_documents_the_apis_serve(live_apis: LiveApis) -> None:
    for url, document in (
        (live_apis.command_url, COMMAND_API_DOCUMENT),
        (live_apis.query_url, QUERY_API_DOCUMENT),
    ):
        served = requests.get(f"{url}/schema/openapi.json", timeout=10)
        assert served.status_code == 200
        assert served.json() == document


bounded = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)


@command_api.parametrize()
@bounded
def test_the_command_api_answers_as_its_document_says(
    case: schemathesis.Case, live_apis: LiveApis, known: Known, session: requests.Session
) -> None:
    steer(case, known)
    case.call_and_validate(base_url=live_apis.command_url, session=session, checks=CHECKS)


@query_api.parametrize()
@bounded
def test_the_query_api_answers_as_its_document_says(
    case: schemathesis.Case, live_apis: LiveApis, known: Known, session: requests.Session
) -> None:
    steer(case, known)
    case.call_and_validate(base_url=live_apis.query_url, session=session, checks=CHECKS)
