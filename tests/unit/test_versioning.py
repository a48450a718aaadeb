"""/v2 beside /v1: the older route keeps answering, and every answer announces its deprecation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from litestar import Router, get
from litestar.params import FromPath
from litestar.testing import AsyncTestClient

from shared.http.app_factory import create_http_app
from shared.http.problems import problem
from shared.http.versioning import Deprecation, deprecated_route
from shared.settings import HttpApiSettings
from tests.support.unreachable import unreachable_settings

DEPRECATED = Deprecation(
    since=datetime(2027, 1, 1, tzinfo=UTC),
    sunset=datetime(2027, 7, 1, tzinfo=UTC),
    successor="/v2/things/{thing_id}",
)


@get("/things/{thing_id:uuid}", **deprecated_route(DEPRECATED), sync_to_thread=False)
def thing_v1(thing_id: FromPath[UUID]) -> dict[str, str]:
    if thing_id.int == 0:
        raise problem(404, "No such thing.")
    return {"id": str(thing_id), "name": "a thing"}


@get("/things/{thing_id:uuid}", sync_to_thread=False)
def thing_v2(thing_id: FromPath[UUID]) -> dict[str, Any]:
    return {"id": str(thing_id), "names": {"en": "a thing"}}


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Any]]:
    settings = HttpApiSettings(**unreachable_settings())
    app = create_http_app(
        title="versions",
        description="",
        process_name="versions-test",
        settings=settings,
        route_handlers=[Router("/v1", route_handlers=[thing_v1]), Router("/v2", route_handlers=[thing_v2])],
        readiness_checks=(),
        keys=settings.key_set,
    )
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def test_the_deprecated_version_announces_its_deprecation_sunset_and_successor(
    client: AsyncTestClient[Any],
) -> None:
    thing = "0190f0a0-0000-7000-8000-000000000001"
    old = await client.get(f"/v1/things/{thing}")
    assert old.status_code == 200
    assert old.headers["deprecation"] == f"@{int(DEPRECATED.since.timestamp())}"
    assert old.headers["sunset"] == "Thu, 01 Jul 2027 00:00:00 GMT"
    assert old.headers["link"] == f'</v2/things/{thing}>; rel="successor-version"'
    # Errors of the old route say it too: a client learns of the sunset whatever it gets.
    missing = await client.get("/v1/things/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert missing.headers["deprecation"] == old.headers["deprecation"]
    new = await client.get(f"/v2/things/{thing}")
    assert new.status_code == 200
    assert new.json()["names"] == {"en": "a thing"}
    assert "deprecation" not in new.headers
    assert "sunset" not in new.headers


async def test_the_openapi_document_marks_the_old_version_deprecated(client: AsyncTestClient[Any]) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    assert paths["/v1/things/{thing_id}"]["get"]["deprecated"] is True
    assert not paths["/v2/things/{thing_id}"]["get"].get("deprecated", False)


def test_a_deprecation_needs_zoned_dates_in_order() -> None:
    with pytest.raises(ValueError, match="time zone"):
        Deprecation(since=datetime(2027, 1, 1))  # a naive date: the mistake under test
    with pytest.raises(ValueError, match="sunset"):
        Deprecation(since=datetime(2027, 2, 1, tzinfo=UTC), sunset=datetime(2027, 1, 1, tzinfo=UTC))
