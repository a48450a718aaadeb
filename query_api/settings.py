"""Settings of the query API process."""

from __future__ import annotations

from shared.settings import HttpApiSettings
from shared.settings.base import Port


class QueryApiSettings(HttpApiSettings, frozen=True, kw_only=True):
    query_api_port: Port = 8001
    # A replica in production; the primary when unset.
    read_database_url: str | None = None

    @property
    def effective_read_database_url(self) -> str:
        return self.read_database_url or self.database_url
