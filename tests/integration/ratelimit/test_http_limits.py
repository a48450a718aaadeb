"""Rate limits as clients meet them: headers, 429 problems, tiers, IP lists and Redis failures."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from devstack.servers import EmbeddedRedis
from tests.integration.command_api.conftest import command_client, register
from tests.integration.command_api.identity_helpers import api_key_headers, create_api_key
from tests.integration.query_api.ledger_helpers import query_client
from tests.support.tokens import bearer, mint


def tiers(free: int, pro: int | None = None, *, algorithm: str = "token_bucket", fail: str = "local") -> str:
    policies = {"free": {"algorithm": algorithm, "quota": free, "window_seconds": 60}}
    if pro is not None:
        policies["pro"] = {"algorithm": algorithm, "quota": pro, "window_seconds": 60}
    return json.dumps({"tiers": policies, "on_redis_failure": fail})


def anonymous(quota: int, fail: str = "closed") -> str:
    return json.dumps({"anonymous": {"quota": quota, "window_seconds": 60}, "on_redis_failure": fail})


def some_account() -> str:
    # An unknown account: 404 after authentication and the rate limit, no data needed.
    return f"/v1/accounts/{uuid.uuid4()}"


def assert_refused(response: httpx.Response, policy: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "/problems/rate-limited"
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["ratelimit-policy"] == policy
    assert ";r=0;" in response.headers["ratelimit"]


async def test_every_answer_of_a_limited_route_carries_the_headers_and_the_quota_ends_in_429(
    service_environment: dict[str, str],
) -> None:
    environment = {**service_environment, "CQRS_RATE_LIMIT_QUERIES": tiers(3)}
    headers = bearer(mint())
    async with query_client(environment) as client:
        answers = [await client.get(some_account(), headers=headers) for _ in range(4)]
        unlimited = await client.get("/health/live")
        metrics = (await client.get("/metrics")).text
    assert [answer.status_code for answer in answers] == [404, 404, 404, 429]
    assert [answer.headers["ratelimit"] for answer in answers[:3]] == [
        '"free";r=2;t=20',
        '"free";r=1;t=40',
        '"free";r=0;t=60',
    ]
    assert all(answer.headers["ratelimit-policy"] == '"free";q=3;w=60' for answer in answers)
    assert_refused(answers[3], '"free";q=3;w=60')
    assert answers[3].headers["retry-after"] == "20"  # a token every 20 s
    assert "ratelimit" not in unlimited.headers
    # Operators see the decisions: the refusal above is among them.
    refusals = 'cqrs_rate_limit_decisions_total{outcome="refused",route_class="queries",source="redis"}'
    assert refusals in metrics


async def test_a_pro_principal_gets_its_own_quota(service_environment: dict[str, str]) -> None:
    environment = {**service_environment, "CQRS_RATE_LIMIT_QUERIES": tiers(2, pro=5)}
    free, pro = bearer(mint(tier="free")), bearer(mint(tier="pro"))
    unknown_tier = bearer(mint(tier="platinum"))
    async with query_client(environment) as client:
        free_codes = [(await client.get(some_account(), headers=free)).status_code for _ in range(3)]
        pro_answers = [await client.get(some_account(), headers=pro) for _ in range(6)]
        unknown_codes = [
            (await client.get(some_account(), headers=unknown_tier)).status_code for _ in range(3)
        ]
    assert free_codes == [404, 404, 429]
    assert [answer.status_code for answer in pro_answers] == [404] * 5 + [429]
    assert pro_answers[0].headers["ratelimit-policy"] == '"pro";q=5;w=60'
    assert unknown_codes == [404, 404, 429]  # an unknown tier is limited as free


async def test_an_api_key_is_limited_by_the_tier_of_the_session_that_made_it(
    service_environment: dict[str, str],
) -> None:
    environment = {**service_environment, "CQRS_RATE_LIMIT_QUERIES": tiers(2, pro=4)}
    async with command_client(service_environment) as commands:
        user = await register(commands)
        pro_session = bearer(mint(user.user_id, tier="pro"))
        _, pro_key = await create_api_key(commands, pro_session, scopes=("ledger:read",))
        _, free_key = await create_api_key(commands, user.headers, scopes=("ledger:read",))
    async with query_client(environment) as client:
        pro_answers = [await client.get(some_account(), headers=api_key_headers(pro_key)) for _ in range(5)]
        free_codes = [
            (await client.get(some_account(), headers=api_key_headers(free_key))).status_code
            for _ in range(3)
        ]
    assert [answer.status_code for answer in pro_answers] == [404] * 4 + [429]
    assert pro_answers[0].headers["ratelimit-policy"] == '"pro";q=4;w=60'
    # Each key is a principal of its own: the pro key's requests took nothing from the free one's.
    assert free_codes == [404, 404, 429]


async def test_commands_are_limited_per_principal_with_a_leaky_bucket(
    service_environment: dict[str, str],
) -> None:
    environment = {**service_environment, "CQRS_RATE_LIMIT_COMMANDS": tiers(2, algorithm="gcra")}
    alice, bob = bearer(mint()), bearer(mint())
    body = {"currency": "EUR", "name": "daily"}
    async with command_client(environment) as client:
        alice_codes = [
            (await client.post("/v1/accounts", json=body, headers=alice)).status_code for _ in range(2)
        ]
        bob_code = (await client.post("/v1/accounts", json=body, headers=bob)).status_code
    # gcra with the default burst (a tenth of 2, at least 1): one at once, then one every 30 s.
    assert alice_codes == [201, 429]
    assert bob_code == 201


async def test_anonymous_auth_routes_are_limited_per_client_address(
    service_environment: dict[str, str],
) -> None:
    environment = {**service_environment, "CQRS_RATE_LIMIT_AUTH": anonymous(2)}
    spent = {"refresh_token": "not-a-real-token"}
    async with command_client(environment) as client:
        codes = [(await client.post("/v1/auth/refresh", json=spent)).status_code for _ in range(3)]
        refused = await client.post("/v1/auth/login", json={"email": "a@example.com", "password": "x"})
    assert codes == [401, 401, 429]
    assert_refused(refused, '"anonymous";q=2;w=60')


async def test_requests_without_credentials_count_against_their_address_where_a_policy_says_so(
    service_environment: dict[str, str],
) -> None:
    policies = {"tiers": {"free": {"quota": 100}}, "anonymous": {"quota": 2, "window_seconds": 60}}
    environment = {**service_environment, "CQRS_RATE_LIMIT_QUERIES": json.dumps(policies)}
    async with query_client(environment) as client:
        codes = [(await client.get(some_account())).status_code for _ in range(3)]
        bad_token = await client.get(some_account(), headers=bearer("not-a-token"))
        signed_in = await client.get(some_account(), headers=bearer(mint()))
    assert codes == [401, 401, 429]
    assert bad_token.status_code == 429
    assert signed_in.status_code == 404  # a principal has a bucket of its own
    async with query_client(service_environment) as client:  # no anonymous policy: 401 every time
        assert [(await client.get(some_account())).status_code for _ in range(3)] == [401] * 3


async def test_forwarded_addresses_count_only_through_trusted_proxies(
    service_environment: dict[str, str],
) -> None:
    spent = {"refresh_token": "not-a-real-token"}

    async def codes(environment: dict[str, str]) -> list[int]:
        async with command_client(environment) as client:
            return [
                (
                    await client.post(
                        "/v1/auth/refresh", json=spent, headers={"X-Forwarded-For": f"192.0.2.{n}"}
                    )
                ).status_code
                for n in range(3)
            ]

    limited = {**service_environment, "CQRS_RATE_LIMIT_AUTH": anonymous(1)}
    # The test client's peer is 127.0.0.1: unless it is a trusted proxy, all three are one client.
    assert await codes(limited) == [401, 429, 429]
    assert await codes({**limited, "CQRS_TRUSTED_PROXIES": "127.0.0.0/8"}) == [401, 401, 401]


async def test_a_denied_address_gets_403_before_authentication(service_environment: dict[str, str]) -> None:
    async with query_client({**service_environment, "CQRS_IP_DENY": "127.0.0.1/32"}) as client:
        denied = await client.get(some_account())  # no credentials: 401 if it got that far
        health = await client.get("/health/live")
    assert denied.status_code == 403
    assert denied.json()["type"] == "/problems/address-refused"
    assert "x-request-id" in denied.headers
    assert health.status_code == 403


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"CQRS_IP_ALLOW": "10.0.0.0/8"}, 403),
        ({"CQRS_IP_ALLOW": "10.0.0.0/8,127.0.0.1"}, 401),
        ({"CQRS_IP_ALLOW": "127.0.0.0/8", "CQRS_IP_DENY": "127.0.0.1"}, 403),
        # Behind a trusted proxy the forwarded address is judged.
        ({"CQRS_IP_ALLOW": "127.0.0.0/8", "CQRS_TRUSTED_PROXIES": "127.0.0.1"}, 403),
        ({"CQRS_IP_ALLOW": "198.51.100.0/24", "CQRS_TRUSTED_PROXIES": "127.0.0.1"}, 401),
    ],
)
async def test_an_allow_list_admits_only_its_networks(
    service_environment: dict[str, str], settings: dict[str, str], expected: int
) -> None:
    async with command_client({**service_environment, **settings}) as client:
        answer = await client.post("/v1/accounts", json={}, headers={"X-Forwarded-For": "198.51.100.7"})
    assert answer.status_code == expected


async def test_redis_stopped_each_route_class_follows_its_fail_mode(
    service_environment: dict[str, str], own_redis: EmbeddedRedis
) -> None:
    environment = {
        **service_environment,
        "CQRS_REDIS_URL": own_redis.url,
        "CQRS_RATE_LIMIT_QUERIES": tiers(1000, fail="local"),
        "CQRS_RATE_LIMIT_COMMANDS": tiers(1000, fail="open"),
        # Small enough that no lease holds a spare token (a quarter of what is left, at least one).
        "CQRS_RATE_LIMIT_AUTH": anonymous(3, fail="closed"),
        "CQRS_RATE_LIMIT_TIMEOUT_SECONDS": "0.2",
    }
    user = bearer(mint())
    spent = {"refresh_token": "not-a-real-token"}
    async with query_client(environment) as queries, command_client(environment) as commands:
        assert (await queries.get(some_account(), headers=user)).status_code == 404
        assert (await commands.post("/v1/auth/refresh", json=spent)).status_code == 401
        own_redis.stop()

        # Queries: limited by a bucket in the process, still answered.
        query = await queries.get(some_account(), headers=user)
        assert query.status_code == 404
        assert query.headers["ratelimit-policy"] == '"free";q=1000;w=60'
        # Commands, configured to fail open: not limited.
        created = await commands.post("/v1/accounts", json={"currency": "EUR", "name": "x"}, headers=user)
        assert created.status_code == 201, created.text
        # Auth routes fail closed: 503 with Retry-After, never unthrottled.
        auth = await commands.post("/v1/auth/refresh", json=spent)
        assert auth.status_code == 503
        assert auth.json()["type"] == "/problems/rate-limits-unavailable"
        assert int(auth.headers["retry-after"]) >= 1

        own_redis.start()
        own_redis.wait_ready(30)


async def test_the_local_fail_mode_still_limits(
    service_environment: dict[str, str], own_redis: EmbeddedRedis
) -> None:
    environment = {
        **service_environment,
        "CQRS_REDIS_URL": own_redis.url,
        "CQRS_RATE_LIMIT_QUERIES": tiers(2, fail="local"),
        "CQRS_RATE_LIMIT_AUTH": anonymous(5, fail="local"),
        "CQRS_RATE_LIMIT_TIMEOUT_SECONDS": "0.2",
    }
    user = bearer(mint())
    async with query_client(environment) as queries, command_client(environment) as commands:
        own_redis.stop()
        codes = [(await queries.get(some_account(), headers=user)).status_code for _ in range(3)]
        # Auth configured to fail to the local bucket as well: answered, not 503.
        auth = await commands.post("/v1/auth/refresh", json={"refresh_token": "x"})
    assert codes == [404, 404, 429]
    assert auth.status_code == 401
