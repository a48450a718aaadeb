"""The CQRS_* variables that point a process at a test's own database, stream and key prefix."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.support.isolation import StreamNames, own_database, own_key_prefix, own_stream

GENEROUS_TIERS = '{"tiers": {"free": {"quota": 1000000, "window_seconds": 60}}}'
GENEROUS_ANONYMOUS = '{"anonymous": {"quota": 1000000, "window_seconds": 60}, "on_redis_failure": "closed"}'


def service_environment_for(
    *, database_url: str, nats_url: str, redis_url: str, stream_names: StreamNames, redis_key_prefix: str
) -> dict[str, str]:
    """Settings for any of the system's processes, on these resources."""
    return {
        "CQRS_PROFILE": "test",
        "CQRS_DATABASE_URL": database_url,
        "CQRS_NATS_URLS": nats_url,
        "CQRS_NATS_STREAM": stream_names.stream,
        "CQRS_NATS_SUBJECT_PREFIX": stream_names.subject_prefix,
        "CQRS_REDIS_URL": redis_url,
        "CQRS_REDIS_KEY_PREFIX": redis_key_prefix,
        # OWASP's argon2id floor, the lowest the settings accept: tests log in often.
        "CQRS_PASSWORD_HASH_TIME_COST": "2",
        "CQRS_PASSWORD_HASH_MEMORY_KIB": "19456",
        "CQRS_PASSWORD_HASH_PARALLELISM": "1",
        # Rate limits stay on, so every test runs through them, with quotas no test reaches
        # by accident; the rate-limit tests set their own.
        "CQRS_RATE_LIMIT_QUERIES": GENEROUS_TIERS,
        "CQRS_RATE_LIMIT_COMMANDS": GENEROUS_TIERS,
        "CQRS_RATE_LIMIT_AUTH": GENEROUS_ANONYMOUS,
        # Many relays and projectors run at once in a test session: the ops tests pick free ports.
        "CQRS_RELAY_OPS_PORT": "0",
        "CQRS_PROJECTOR_OPS_PORT": "0",
    }


@contextlib.contextmanager
def own_environment(
    *, postgres_admin_url: str, migrated_template: str, nats_url: str, redis_url: str
) -> Iterator[dict[str, str]]:
    """A database, stream and key prefix of one's own, for fixtures wider than one test."""
    with (
        own_database(postgres_admin_url, migrated_template) as database_url,
        own_stream(nats_url) as stream_names,
        own_key_prefix(redis_url) as redis_key_prefix,
    ):
        yield service_environment_for(
            database_url=database_url,
            nats_url=nats_url,
            redis_url=redis_url,
            stream_names=stream_names,
            redis_key_prefix=redis_key_prefix,
        )
