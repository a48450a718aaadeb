"""Policies from settings, and the headers of draft-ietf-httpapi-ratelimit-headers-11."""

from __future__ import annotations

import msgspec
import pytest

from shared.ratelimit.policies import (
    DEFAULT_AUTH_LIMITS,
    DEFAULT_COMMAND_LIMITS,
    DEFAULT_QUERY_LIMITS,
    Policy,
    RouteClassLimits,
    limit_header,
    policy_header,
    retry_after,
)
from shared.settings import HttpApiSettings, SettingsError, load_settings

BASE = {
    "CQRS_PROFILE": "test",
    "CQRS_DATABASE_URL": "postgresql://db",
    "CQRS_NATS_URLS": "nats://nats",
    "CQRS_REDIS_URL": "redis://redis",
}


def test_headers_follow_the_draft() -> None:
    assert policy_header("free", Policy(quota=100, window_seconds=60)) == b'"free";q=100;w=60'
    assert policy_header("pro", Policy(quota=5, window_seconds=0.5)) == b'"pro";q=5;w=0.5'
    assert limit_header("free", 42, 16.2) == b'"free";r=42;t=17'
    assert limit_header("free", -3, -1) == b'"free";r=0;t=0'


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert retry_after(0.0) == "1"
    assert retry_after(0.2) == "1"
    assert retry_after(1.01) == "2"
    assert retry_after(30) == "30"
    assert retry_after(120.00000000000091) == "120"  # float noise is not a second more


def test_an_unknown_tier_gets_the_free_policy() -> None:
    limits = DEFAULT_QUERY_LIMITS
    assert limits.for_tier("pro") == ("pro", limits.tiers["pro"])
    assert limits.for_tier("platinum") == ("free", limits.tiers["free"])
    assert DEFAULT_AUTH_LIMITS.for_tier("free") is None


def test_tiers_need_a_free_policy() -> None:
    with pytest.raises(ValueError, match="'free'"):
        RouteClassLimits(tiers={"pro": Policy(quota=1)})


def test_burst_is_the_bucket_for_token_buckets_and_a_tenth_by_default_for_gcra() -> None:
    assert Policy(quota=50).effective_burst == 50
    assert Policy(algorithm="gcra", quota=50).effective_burst == 5
    assert Policy(algorithm="gcra", quota=5).effective_burst == 1
    assert Policy(algorithm="gcra", quota=50, burst=9).effective_burst == 9
    assert DEFAULT_COMMAND_LIMITS.tiers["free"].algorithm == "gcra"


def test_policies_come_from_json_settings() -> None:
    settings = load_settings(
        HttpApiSettings,
        {
            **BASE,
            "CQRS_RATE_LIMIT_QUERIES": '{"tiers": {"free": {"quota": 5, "window_seconds": 2}}, '
            '"on_redis_failure": "closed"}',
        },
    )
    assert settings.rate_limit_queries.tiers == {"free": Policy(quota=5, window_seconds=2)}
    assert settings.rate_limit_queries.on_redis_failure == "closed"
    assert settings.rate_limit_commands == DEFAULT_COMMAND_LIMITS


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CQRS_RATE_LIMIT_QUERIES", "{not json", "not valid JSON"),
        ("CQRS_RATE_LIMIT_QUERIES", '{"tiers": {"free": {"quota": 0}}}', "quota"),
        ("CQRS_RATE_LIMIT_QUERIES", '{"tiers": {"free": {"quota": 1, "algo": "x"}}}', "algo"),
        ("CQRS_RATE_LIMIT_COMMANDS", '{"tiers": {"pro": {"quota": 1}}}', "'free'"),
        ("CQRS_RATE_LIMIT_AUTH", '{"on_redis_failure": "closed"}', "anonymous"),
        ("CQRS_TRUSTED_PROXIES", "10.0.0.0/8,not-a-net", "not-a-net"),
        ("CQRS_IP_DENY", "300.1.1.1", "300.1.1.1"),
    ],
)
def test_bad_limit_settings_fail_at_start_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as raised:
        load_settings(HttpApiSettings, {**BASE, name: value})
    assert name in str(raised.value)


def test_defaults_round_trip_as_json() -> None:
    """What docs/operations.md shows as the default is what the code uses."""
    for limits in (DEFAULT_QUERY_LIMITS, DEFAULT_COMMAND_LIMITS, DEFAULT_AUTH_LIMITS):
        assert msgspec.json.decode(msgspec.json.encode(limits), type=RouteClassLimits) == limits
