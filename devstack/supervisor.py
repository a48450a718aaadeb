"""`cqrs dev`: the embedded servers, migrations, the stream, then every process.

Each process of the system runs as its own OS process, as in production; the
supervisor only starts them in order, waits until each is ready, and stops
them in reverse on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import FrameType

from devstack.ports import LOOPBACK, is_free
from devstack.processes import ManagedProcess, pass_through_environment, pidfile_path
from devstack.stack import EmbeddedStack, RequestedPorts, StackUrls, wipe
from shared.db import migrate
from shared.messaging.jetstream import ensure_stream_once
from shared.settings import CommonSettings, load_settings

Echo = Callable[[str], None]
# Processes without an HTTP port of their own yet: started after the APIs.
WORKER_COMMANDS: tuple[tuple[str, ...], ...] = (("relay",), ("projector", "run"))


@dataclass(frozen=True, slots=True)
class DevOptions:
    data_dir: Path
    fresh: bool = False
    external: bool = False
    command_api_port: int = 8000
    query_api_port: int = 8001
    ports: RequestedPorts = field(default_factory=RequestedPorts)
    ready_timeout_seconds: float = 60.0
    seed: bool = False
    seed_timeout_seconds: float = 120.0


@dataclass(frozen=True, slots=True)
class HttpProcess:
    name: str
    cli_command: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


class DevStackError(RuntimeError):
    """The stack could not start; the message says what to do."""


def run_dev(options: DevOptions, environ: Mapping[str, str], echo: Echo) -> int:
    """Run until a signal arrives or a process dies; return the exit code."""
    stop = _install_stop_signals()
    http_processes = [
        HttpProcess("command API", "command-api", options.command_api_port),
        HttpProcess("query API", "query-api", options.query_api_port),
    ]
    for process in http_processes:
        if not is_free(process.port):
            raise DevStackError(
                f"port {process.port} for the {process.name} is taken; pass another with --help's flags"
            )
    if options.fresh:
        wipe(options.data_dir)
    stack = None if options.external else EmbeddedStack(options.data_dir, options.ports)
    children: list[ManagedProcess] = []
    try:
        urls = _external_urls(environ) if stack is None else stack.start()
        env = _process_environment(environ, urls)
        settings = load_settings(CommonSettings, env)
        migrate.upgrade(urls.database_url)
        asyncio.run(ensure_stream_once(settings))

        def spawn(command: str, *arguments: str) -> ManagedProcess:
            child = ManagedProcess(
                name=command,
                argv=[sys.executable, "-m", "operator_cli", command, *arguments],
                pid_path=pidfile_path(options.data_dir / "run", command),
                env=env,
            )
            child.start()
            children.append(child)
            return child

        api_children = [spawn(p.cli_command, "--port", str(p.port)) for p in http_processes]
        for command, *arguments in WORKER_COMMANDS:
            spawn(command, *arguments)
        for process, child in zip(http_processes, api_children, strict=True):
            _wait_http_ready(process, child, options.ready_timeout_seconds)
        seeded = _seed(http_processes[0], env, options.seed_timeout_seconds, stop) if options.seed else ""
        _print_summary(echo, options, urls, stack, http_processes)
        if seeded:
            echo(seeded.rstrip("\n"))
        echo("Ctrl-C stops everything.")
        return _watch(children, stop, echo)
    finally:
        for child in reversed(children):
            child.stop()
        if stack is not None:
            stack.stop()


def _install_stop_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return stop


def _external_urls(environ: Mapping[str, str]) -> StackUrls:
    settings = load_settings(CommonSettings, environ)
    return StackUrls(settings.database_url, ",".join(settings.nats_urls), settings.redis_url)


def _process_environment(environ: Mapping[str, str], urls: StackUrls) -> dict[str, str]:
    return pass_through_environment(
        {
            **environ,
            "CQRS_PROFILE": environ.get("CQRS_PROFILE", "dev"),
            "CQRS_DATABASE_URL": urls.database_url,
            "CQRS_NATS_URLS": urls.nats_url,
            "CQRS_REDIS_URL": urls.redis_url,
        }
    )


def _wait_http_ready(process: HttpProcess, child: ManagedProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.exit_code() is not None:
            raise DevStackError(f"the {process.name} exited with code {child.exit_code()} while starting")
        try:
            with urllib.request.urlopen(f"{process.url}/health/ready", timeout=2) as response:  # noqa: S310 - loopback URL we built
                if response.status == HTTPStatus.OK:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise DevStackError(f"the {process.name} was not ready within {timeout:g}s")


def _seed(command_api: HttpProcess, env: Mapping[str, str], timeout: float, stop: threading.Event) -> str:
    """Run `cqrs seed` once against the ready command API; return what it printed (the logins)."""
    argv = [sys.executable, "-m", "operator_cli", "seed", "--command-api", command_api.url]
    try:
        # Its log lines (stderr) pass through; its stdout is printed with the URLs.
        done = subprocess.run(  # noqa: S603 - argv is built by us, never by a shell
            argv,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DevStackError(f"seeding the demo data did not finish within {timeout:g}s") from exc
    if done.returncode != 0 and not stop.is_set():  # a Ctrl-C stops the seed too: not its failure
        raise DevStackError(f"seeding the demo data failed (exit code {done.returncode}); its error is above")
    return done.stdout


def _print_summary(
    echo: Echo,
    options: DevOptions,
    urls: StackUrls,
    stack: EmbeddedStack | None,
    http_processes: list[HttpProcess],
) -> None:
    where = "external servers" if stack is None else f"data in {options.data_dir}"
    echo(f"CQRS dev stack is up ({where}):")
    for process in http_processes:
        echo(f"  {process.name:<12} {process.url}  (OpenAPI UI: {process.url}/schema)")
    echo(f"  {'PostgreSQL':<12} {urls.database_url}")
    monitor = f"  (monitoring: http://{LOOPBACK}:{stack.nats.monitor_port})" if stack else ""
    echo(f"  {'NATS':<12} {urls.nats_url}{monitor}")
    echo(f"  {'Redis':<12} {urls.redis_url}")


def _watch(children: list[ManagedProcess], stop: threading.Event, echo: Echo) -> int:
    while not stop.wait(0.2):
        for child in children:
            code = child.exit_code()
            if code is not None:
                echo(f"{child.name} exited unexpectedly with code {code}; stopping the stack")
                return 1
    echo("stopping...")
    return 0
