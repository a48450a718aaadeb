"""Child processes with pidfiles, so a later run can find what a killed run left behind."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

_PR_SET_PDEATHSIG = 1
# Our own suffix: PostgreSQL keeps a `postmaster.pid` of another format in its data.
PIDFILE_SUFFIX = ".pid.json"


def pidfile_path(folder: Path, name: str) -> Path:
    return folder / f"{name}{PIDFILE_SUFFIX}"


def find_pidfiles(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"**/*{PIDFILE_SUFFIX}"))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux only: if `cqrs dev` is SIGKILLed, the kernel sends SIGTERM to its
    # children instead of leaving them running. Elsewhere the pidfile reaping
    # on the next start cleans up.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def reap_stale(pid_path: Path, *, stop_signal: int = signal.SIGTERM, timeout: float = 15.0) -> bool:
    """Stop the process a pidfile names if it still runs; return whether one was found."""
    try:
        recorded = json.loads(pid_path.read_text())
        process = psutil.Process(int(recorded["pid"]))
        # A recycled pid belongs to another process: the start time tells them apart.
        if abs(process.create_time() - float(recorded["create_time"])) > 1.0:
            return False
    except (OSError, ValueError, KeyError, psutil.Error):
        return False
    finally:
        pid_path.unlink(missing_ok=True)
    with contextlib.suppress(psutil.Error):
        process.send_signal(stop_signal)
        try:
            process.wait(timeout)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(5)
    return True


@dataclass
class ManagedProcess:
    """One child process: started with a pidfile, stopped with a signal and a deadline."""

    name: str
    argv: Sequence[str]
    pid_path: Path
    log_path: Path | None = None
    env: Mapping[str, str] | None = None
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        reap_stale(self.pid_path, stop_signal=self.stop_signal)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(  # noqa: S603 - argv is built by us, never by a shell
            list(self.argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None,
            env=dict(self.env) if self.env is not None else None,
            user=self.user,
            # Own process group: a terminal's Ctrl-C reaches only the supervisor,
            # which then stops the children in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - needed for the parent-death signal
        )
        created = psutil.Process(self.popen.pid).create_time()
        self.pid_path.write_text(json.dumps({"pid": self.popen.pid, "create_time": created}))

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def exit_code(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def stop(self, timeout: float = 20.0) -> int | None:
        """Signal, wait up to `timeout`, then kill; return the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(self.stop_signal)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.pid_path.unlink(missing_ok=True)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.popen.returncode


def pass_through_environment(extra: Mapping[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}
