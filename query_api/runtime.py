"""The one dependency of a query route: who asks, the read database, the cache and the waits."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from query_api.pagination import CursorSigner
from shared.cache.answers import AnswerCache
from shared.http.auth import Authenticator
from shared.projections.consistency_wait import ConsistencyWaiter


@dataclass(frozen=True, slots=True)
class QueryRuntime:
    authenticator: Authenticator
    pool: asyncpg.Pool
    cache: AnswerCache
    waiter: ConsistencyWaiter
    cursors: CursorSigner
    acquire_timeout_seconds: float = 5.0
