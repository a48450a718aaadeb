"""PostgreSQL, NATS and Redis started together under one data directory."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import asyncpg

from devstack.ports import PortBook
from devstack.processes import find_pidfiles, reap_stale
from devstack.servers import (
    EmbeddedNats,
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedServer,
)


@dataclass(frozen=True, slots=True)
class StackUrls:
    database_url: str
    nats_url: str
    redis_url: str


@dataclass(frozen=True, slots=True)
class RequestedPorts:
    postgres: int | None = None
    nats: int | None = None
    redis: int | None = None


class EmbeddedStack:
    """Starts the three servers, each in `<data_dir>/<name>/`, and stops them in reverse."""

    def __init__(self, data_dir: Path, ports: RequestedPorts | None = None) -> None:
        self.data_dir = data_dir.resolve()
        requested = ports or RequestedPorts()
        book = PortBook(self.data_dir / "ports.json")
        self.postgres = EmbeddedPostgres(
            self.data_dir / "postgres", book.port("postgres", requested.postgres)
        )
        self.nats = EmbeddedNats(
            self.data_dir / "nats",
            book.port("nats", requested.nats),
            book.port("nats_monitor"),
        )
        self.redis = EmbeddedRedis(self.data_dir / "redis", book.port("redis", requested.redis))
        self._book = book

    @property
    def servers(self) -> tuple[EmbeddedServer, ...]:
        return (self.postgres, self.nats, self.redis)

    @property
    def urls(self) -> StackUrls:
        return StackUrls(self.postgres.url, self.nats.url, self.redis.url)

    def start(self, timeout: float = 90.0) -> StackUrls:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._book.save()
        started: list[EmbeddedServer] = []
        try:
            for server in self.servers:
                server.start()
                started.append(server)
            # Started together, waited for together: the slowest (PostgreSQL) sets the pace.
            for server in self.servers:
                server.wait_ready(timeout)
            asyncio.run(_ensure_database(self.postgres.admin_url, self.postgres.database))
        except BaseException:
            for server in reversed(started):
                server.stop()
            raise
        return self.urls

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def wipe(data_dir: Path) -> None:
    """Stop whatever a previous run left in `data_dir`, then delete it."""
    for pid_file in find_pidfiles(data_dir):
        reap_stale(pid_file)
    shutil.rmtree(data_dir, ignore_errors=True)


async def _ensure_database(admin_url: str, database: str) -> None:
    connection = await asyncpg.connect(admin_url, timeout=10)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            # Identifiers cannot be parameters; the name is our own constant.
            await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()
