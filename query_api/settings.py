"""Settings of the query API process."""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from shared.settings import HttpApiSettings, env_var_name
from shared.settings.base import Port, Seconds
from shared.settings.dev_keys import DEV_CURSOR_SECRET
from shared.settings.secret import Secret

MIN_CURSOR_SECRET_LENGTH: Final = 32


class QueryApiSettings(HttpApiSettings, frozen=True, kw_only=True):
    query_api_port: Port = 8001
    # A replica in production; the primary when unset.
    read_database_url: str | None = None
    # Signs pagination cursors (tamper-evident); every replica needs the same.
    # dev and test use a development value; prod requires one.
    cursor_secret: Secret | None = None
    # How long a cached answer lives at most; tags invalidate it sooner.
    query_cache_ttl_seconds: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 300
    # Redis for the cache answers fast or not at all: past this the cache is bypassed.
    # Not lower: the time also counts the worker's own event-loop backlog, and a
    # saturated worker that took that for a failing Redis would open the breaker
    # and send its load to the database (the query benchmark saw it at 50 ms).
    query_cache_timeout_seconds: Seconds = 0.25
    # Consecutive cache failures that open the circuit, and how long it stays open.
    query_cache_breaker_failures: Annotated[int, msgspec.Meta(ge=1, le=1_000)] = 5
    query_cache_breaker_reset_seconds: Annotated[int, msgspec.Meta(ge=1, le=300)] = 5
    # Answers kept in each process in front of Redis (0: none), dropped by Redis's
    # invalidation messages (client tracking); redis:// URLs only.
    query_cache_local_entries: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 10_000
    # How often each process verifies that Redis still tracks its tags for it;
    # local answers are not served while a check is overdue.
    query_cache_tracking_check_seconds: Seconds = 0.25
    # How long a query with a Consistency-Token waits for its write, then 503.
    consistency_wait_seconds: Seconds = 2.0
    # Answers at least this large are compressed when the client accepts gzip or brotli.
    compression_minimum_bytes: Annotated[int, msgspec.Meta(ge=0)] = 1024

    @property
    def effective_read_database_url(self) -> str:
        return self.read_database_url or self.database_url

    @property
    def effective_cursor_secret(self) -> bytes:
        """The configured secret; the development one where dev or test was declared."""
        if self.cursor_secret is not None:
            return self.cursor_secret.reveal().encode()
        return DEV_CURSOR_SECRET.encode()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cursor_secret is None and self.profile not in ("dev", "test"):
            raise ValueError(
                f"{env_var_name('cursor_secret')} is required unless {env_var_name('profile')} is dev or test"
            )
        if self.cursor_secret is not None and len(self.cursor_secret.reveal()) < MIN_CURSOR_SECRET_LENGTH:
            raise ValueError(
                f"{env_var_name('cursor_secret')} must be at least {MIN_CURSOR_SECRET_LENGTH} characters"
            )
