"""The one dependency of a query route: who asks, and the read database."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.http.auth import Authenticator


@dataclass(frozen=True, slots=True)
class QueryRuntime:
    authenticator: Authenticator
    pool: asyncpg.Pool
    acquire_timeout_seconds: float = 5.0
