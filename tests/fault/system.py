"""The whole system on 127.0.0.1, every part of it a process a scenario may kill, pause or restart.

PostgreSQL, NATS and Redis are the suite's own embedded servers (never the
machine's, which it must not kill), each behind a FaultProxy; the command
API, the query API, the relay and the projectors are `cqrs ...` processes
talking to the dependencies through those proxies.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from devstack.ports import free_port
from devstack.servers import EmbeddedNats, EmbeddedPostgres, EmbeddedRedis, EmbeddedServer
from tests.fault.proxy import FaultProxy
from tests.support.services import running, system_services

DependencyName = Literal["postgres", "nats", "redis"]
ProcessName = Literal["command-api", "query-api", "relay", "projectors"]
PROCESSES: tuple[ProcessName, ...] = ("command-api", "query-api", "relay", "projectors")


class Dependency:
    """An embedded server the suite may stop dead, pause, and start again on its own data."""

    def __init__(self, server: EmbeddedServer, stop_signal: int = signal.SIGKILL) -> None:
        self.server = server
        # PostgreSQL's "immediate" shutdown (SIGQUIT) is its crash: a SIGKILLed postmaster
        # would leave its backends holding shared memory, and the restart would wait on them.
        self.stop_signal = stop_signal

    @property
    def port(self) -> int:
        return self.server.port

    def _pid(self) -> int | None:
        process = self.server.process
        return process.pid if process is not None and process.exit_code() is None else None

    def running(self) -> bool:
        return self._pid() is not None

    def launch(self) -> None:
        """Start the server's process, without waiting for it to answer.

        Call it from the main thread: the child asks the kernel for a signal when its parent dies,
        and on Linux that "parent" is the thread that forked it, so a server started from a worker
        thread would be stopped when that thread ends.
        """
        if not self.running():
            self.server.start()

    def wait_ready(self) -> None:
        self.server.wait_ready(90)

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def crash(self) -> None:
        """Stopped at once, without a clean shutdown."""
        pid = self._pid()
        if pid is None:
            return
        self.resume()
        os.kill(pid, self.stop_signal)
        assert self.server.process is not None
        assert self.server.process.popen is not None
        self.server.process.popen.wait(30)
        self.server.stop()  # only its pidfile and log handle are left to tidy

    def pause(self) -> None:
        if (pid := self._pid()) is not None:
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        if (pid := self._pid()) is not None:
            os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        self.server.stop()


@dataclass(frozen=True)
class Dependencies:
    postgres: Dependency
    nats: Dependency
    redis: Dependency

    def __getitem__(self, name: DependencyName) -> Dependency:
        dependency: Dependency = getattr(self, name)
        return dependency

    def all(self) -> tuple[Dependency, ...]:
        return (self.postgres, self.nats, self.redis)


@contextlib.contextmanager
def embedded_dependencies(root: Path) -> Iterator[Dependencies]:
    postgres = EmbeddedPostgres(root / "postgres", free_port())
    dependencies = Dependencies(
        postgres=Dependency(postgres, stop_signal=signal.SIGQUIT),
        nats=Dependency(EmbeddedNats(root / "nats", free_port(), free_port())),
        redis=Dependency(EmbeddedRedis(root / "redis", free_port())),
    )
    try:
        for dependency in dependencies.all():
            dependency.server.start()
        for dependency in dependencies.all():
            dependency.start()
        yield dependencies
    finally:
        for dependency in dependencies.all():
            dependency.stop()


def _through(url: str, port: int, proxy: FaultProxy) -> str:
    assert f":{port}" in url, url
    return url.replace(f":{port}", f":{proxy.port}", 1)


class System:
    """Both APIs, the relay and the projectors, with their dependencies behind fault proxies."""

    def __init__(self, dependencies: Dependencies, environment: Mapping[str, str], log_dir: Path) -> None:
        self.dependencies = dependencies
        self.proxies: dict[DependencyName, FaultProxy] = {
            name: FaultProxy(dependencies[name].port, name) for name in ("postgres", "nats", "redis")
        }
        self.direct_environment = dict(environment)
        proxied = {
            **environment,
            "CQRS_DATABASE_URL": _through(
                environment["CQRS_DATABASE_URL"], dependencies.postgres.port, self.proxies["postgres"]
            ),
            "CQRS_NATS_URLS": _through(
                environment["CQRS_NATS_URLS"], dependencies.nats.port, self.proxies["nats"]
            ),
            "CQRS_REDIS_URL": _through(
                environment["CQRS_REDIS_URL"], dependencies.redis.port, self.proxies["redis"]
            ),
            "CQRS_LOG_FORMAT": "json",
        }
        command_port, query_port = free_port(), free_port()
        self.command_url = f"http://127.0.0.1:{command_port}"
        self.query_url = f"http://127.0.0.1:{query_port}"
        self.processes = system_services(proxied, log_dir, command_port, query_port)
        self.log_dir = log_dir
        self._running: contextlib.ExitStack | None = None

    @property
    def database_url(self) -> str:
        """Straight to PostgreSQL, past the proxy: what the checker reads with."""
        return self.direct_environment["CQRS_DATABASE_URL"]

    @property
    def nats_url(self) -> str:
        return self.direct_environment["CQRS_NATS_URLS"]

    @property
    def stream(self) -> str:
        return self.direct_environment["CQRS_NATS_STREAM"]

    def heal(self) -> None:
        """Every proxy passing, every server and process running (after a failed scenario, say)."""
        for proxy in self.proxies.values():
            proxy.set_mode("pass")
        for dependency in self.dependencies.all():
            dependency.resume()
            dependency.start()
        for process in self.processes.values():
            process.resume()
            if not process.running():
                process.start()

    def __enter__(self) -> System:
        stack = contextlib.ExitStack()
        for proxy in self.proxies.values():
            proxy.start()
            stack.callback(proxy.stop)
        stack.enter_context(running(*self.processes.values()))
        self._running = stack
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for dependency in self.dependencies.all():
            dependency.resume()  # a paused server would hold every process's shutdown
        if self._running is not None:
            self._running.close()
