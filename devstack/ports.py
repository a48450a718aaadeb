"""Free TCP ports on 127.0.0.1, preferring the ones a previous run used."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


def is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers bind with SO_REUSEADDR; without it a port in TIME_WAIT looks taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def choose_port(requested: int | None, remembered: int | None) -> int:
    """An explicit port as asked; else the one used last time if still free; else any free one."""
    if requested:
        return requested
    if remembered and is_free(remembered):
        return remembered
    return free_port()


class PortBook:
    """Remembers the ports of a data directory, so URLs stay the same across restarts."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._ports: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError):
            self._ports = {str(k): int(v) for k, v in json.loads(path.read_text()).items()}

    def port(self, name: str, requested: int | None = None) -> int:
        chosen = choose_port(requested, self._ports.get(name))
        self._ports[name] = chosen
        return chosen

    def save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._path.write_text(json.dumps(self._ports, indent=2, sort_keys=True))


def wait_for_port(port: int, deadline: float, host: str = LOOPBACK) -> bool:
    """Poll until something accepts connections on the port, or the deadline passes."""
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection((host, port), timeout=0.5),
        ):
            return True
        time.sleep(0.05)
    return False
