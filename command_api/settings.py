"""Settings of the command API process."""

from __future__ import annotations

from typing import Annotated

import msgspec

from shared.settings import HttpApiSettings
from shared.settings.base import Port
from shared.settings.loader import env_var_name

# OWASP's password storage cheat sheet: argon2id with at least 19 MiB, 2 iterations, 1 lane.
OWASP_MIN_MEMORY_KIB = 19 * 1024
OWASP_MIN_TIME_COST = 2
DAY = 24 * 3600


class CommandApiSettings(HttpApiSettings, frozen=True, kw_only=True):
    command_api_port: Port = 8000
    idempotency_ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=7 * DAY)] = DAY
    require_idempotency_key: bool = False
    command_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10

    access_token_ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=3600)] = 15 * 60
    # A refresh-token family dies after this long unused, and after the lifetime in any case.
    refresh_token_idle_seconds: Annotated[int, msgspec.Meta(ge=300, le=90 * DAY)] = 14 * DAY
    refresh_token_lifetime_seconds: Annotated[int, msgspec.Meta(ge=300, le=365 * DAY)] = 30 * DAY

    password_hash_time_cost: Annotated[int, msgspec.Meta(ge=OWASP_MIN_TIME_COST, le=20)] = 3
    password_hash_memory_kib: Annotated[int, msgspec.Meta(ge=OWASP_MIN_MEMORY_KIB, le=4 * 1024 * 1024)] = (
        64 * 1024
    )
    password_hash_parallelism: Annotated[int, msgspec.Meta(ge=1, le=16)] = 4
    # Hashes run in threads; more at once than cores only queues them in the OS.
    password_max_concurrent_hashes: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2

    # Login throttling (separate from the general rate limits): failures within
    # the window, per account and per client IP, before 429.
    login_failure_window_seconds: Annotated[int, msgspec.Meta(ge=10, le=DAY)] = 15 * 60
    login_max_failures_per_account: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5
    login_max_failures_per_ip: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 50

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.signing_key is None:
            raise ValueError(f"{env_var_name('jwt_private_key')} is required: the command API signs tokens")
        if self.refresh_token_lifetime_seconds < self.refresh_token_idle_seconds:
            raise ValueError(
                f"{env_var_name('refresh_token_lifetime_seconds')} may not be shorter than "
                f"{env_var_name('refresh_token_idle_seconds')}"
            )
