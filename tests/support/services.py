"""The system's own processes (`cqrs command-api`, `relay`, ...) run for real, as an operator would.

Each is an OS process of its own with its log in a file, so a test can kill it
(SIGKILL), pause it (SIGSTOP), resume and restart it, and a failure points at
the log that explains it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

READY_SECONDS = 60.0
STOP_SECONDS = 20.0


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Service:
    """One `cqrs ...` process: started, stopped, killed, paused and restarted on demand."""

    name: str
    arguments: Sequence[str]
    environment: Mapping[str, str]
    log_dir: Path
    #: Polled after each start until it answers 200; None for a worker without HTTP.
    health_url: str | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _starts: int = field(default=0, init=False, repr=False)

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self._process is not None, f"{self.name} is not running"
        return self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, wait: bool = True) -> None:
        assert not self.running(), f"{self.name} is already running"
        # The developer's own CQRS_* must not leak in: only what the test gives.
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("CQRS_")}
        self._starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {self._starts} ---\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "operator_cli", *self.arguments],
                env={**inherited, **self.environment},
                stdout=log,
                stderr=subprocess.STDOUT,
                # A group of its own: granian's workers are its children, and a crash takes them too.
                start_new_session=True,
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, seconds: float = READY_SECONDS) -> None:
        if self.health_url is None:
            return
        deadline = time.monotonic() + seconds
        while not _answers(self.health_url):
            assert self.running(), f"{self.name} exited; see {self.log_path}"
            assert time.monotonic() < deadline, (
                f"{self.name} was not ready in {seconds:.0f}s; see {self.log_path}"
            )
            time.sleep(0.1)  # a server starting: polled with a deadline

    def stop(self, seconds: float = STOP_SECONDS) -> int | None:
        """SIGTERM, as an orchestrator would; SIGKILL if it outstays `seconds`. Its exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            self.resume()  # a stopped process cannot handle SIGTERM
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(seconds)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self._process = None
        return process.returncode

    def kill(self) -> None:
        """SIGKILL to the process and its workers: no chance to finish anything, as in a crash."""
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        self._process = None

    def pause(self) -> None:
        os.killpg(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.running():
            os.killpg(self.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.kill()
        self.start()


def http_service(
    command: str, environment: Mapping[str, str], log_dir: Path, port: int, *, name: str | None = None
) -> Service:
    """`cqrs command-api` or `cqrs query-api` on `port`, ready once /health/live answers."""
    return Service(
        name=name or command,
        arguments=[command, "--port", str(port)],
        environment=environment,
        log_dir=log_dir,
        health_url=f"http://127.0.0.1:{port}/health/live",
    )


@contextlib.contextmanager
def running(*services: Service) -> Iterator[tuple[Service, ...]]:
    """Start every service (then wait for each), and stop them all however the block ends."""
    try:
        for service in services:
            service.start(wait=False)
        for service in services:
            service.wait_ready()
        yield services
    finally:
        for service in services:
            service.stop()


def system_services(
    environment: Mapping[str, str], log_dir: Path, command_port: int, query_port: int
) -> dict[str, Service]:
    """The whole system's processes, by name: both APIs, the relay and every projection."""
    return {
        "command-api": http_service("command-api", environment, log_dir, command_port),
        "query-api": http_service("query-api", environment, log_dir, query_port),
        "relay": Service("relay", ["relay"], environment, log_dir),
        "projectors": Service("projectors", ["projector", "run"], environment, log_dir),
    }
