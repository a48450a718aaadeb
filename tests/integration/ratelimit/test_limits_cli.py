"""`cqrs limits show | reset`: what operators see of a principal's buckets, and how they lift a block."""

from __future__ import annotations

import asyncio
import re
import uuid

from click.testing import CliRunner

from operator_cli.main import cli
from shared.infrastructure.redis import create_redis
from shared.ratelimit.buckets import Abuse, RedisBuckets
from shared.ratelimit.policies import Policy

QUERIES = (
    '{"tiers": {"free": {"quota": 10, "window_seconds": 60}, "pro": {"quota": 50, "window_seconds": 60}}}'
)


def spend(environment: dict[str, str], subject: str, tokens: int, *, block: bool = False) -> None:
    async def run() -> None:
        redis = create_redis(environment["CQRS_REDIS_URL"], timeout_seconds=2)
        buckets = RedisBuckets(
            redis, key_prefix=environment["CQRS_REDIS_KEY_PREFIX"], abuse=Abuse(factor=1, block_seconds=600)
        )
        try:
            for _ in range(tokens):
                await buckets.take(subject, "queries", Policy(quota=10, window_seconds=60), want=1)
            if block:
                await buckets.take(
                    subject, "queries", Policy(quota=10, window_seconds=60), want=1, refused=10
                )
        finally:
            await redis.aclose()

    asyncio.run(run())


def cells(output: str) -> list[list[str]]:
    """The printed tables' rows, split into cells."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines() if line.strip()]


def state_row(output: str, route_class: str = "queries") -> list[str]:
    """The principal's row of a route class: class, policy, remaining, full again in, blocked for."""
    return next(row for row in cells(output) if row[0] == route_class and row[1].startswith('"'))


def test_show_lists_the_policies_and_the_principal_s_buckets(service_environment: dict[str, str]) -> None:
    environment = {**service_environment, "CQRS_RATE_LIMIT_QUERIES": QUERIES}
    user = uuid.uuid4()
    spend(environment, f"user:{user}", 4)
    shown = CliRunner().invoke(cli, ["limits", "show", f"user:{user}"], env=environment)
    assert shown.exit_code == 0, shown.output
    assert ["queries", "pro", "token_bucket 50/60s", "local"] in cells(shown.output)
    assert ["auth", "anonymous", "token_bucket 1000000/60s", "closed"] in cells(shown.output)
    assert state_row(shown.output)[1:3] == ['"free" 10/60s', "6"]  # 10 - 4 spent
    # A bare id is a user; the tier picks the policy shown.
    pro = CliRunner().invoke(cli, ["limits", "show", str(user), "--tier", "pro"], env=environment)
    assert f"user:{user} (tier pro)" in pro.output
    assert '"pro" 50/60s' in pro.output


def test_an_address_shows_the_anonymous_buckets(service_environment: dict[str, str]) -> None:
    shown = CliRunner().invoke(cli, ["limits", "show", "192.0.2.7"], env=service_environment)
    assert shown.exit_code == 0, shown.output
    assert "ip:192.0.2.7:" in shown.output
    assert state_row(shown.output, "auth")[1] == '"anonymous" 1000000/60s'


def test_reset_lifts_a_block(service_environment: dict[str, str]) -> None:
    environment = {**service_environment, "CQRS_RATE_LIMIT_QUERIES": QUERIES}
    subject = f"user:{uuid.uuid4()}"
    spend(environment, subject, 10, block=True)
    blocked = CliRunner().invoke(cli, ["limits", "show", subject], env=environment)
    assert state_row(blocked.output)[4] in ("599 s", "600 s")
    reset = CliRunner().invoke(cli, ["limits", "reset", subject], env=environment)
    assert reset.exit_code == 0, reset.output
    assert "2 key(s) removed" in reset.output  # the bucket and the block
    after = CliRunner().invoke(cli, ["limits", "show", subject], env=environment)
    assert state_row(after.output)[2:] == ["10", "0.0 s", "-"]


def test_a_principal_that_is_none_of_the_kinds_is_refused(service_environment: dict[str, str]) -> None:
    refused = CliRunner().invoke(cli, ["limits", "show", "alice"], env=service_environment)
    assert refused.exit_code == 2
    assert "user:<id>" in refused.output
