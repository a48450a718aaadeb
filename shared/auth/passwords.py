"""Passwords: argon2id hashes, a strength rule, and login work that a flood cannot turn into a CPU outage.

- Hashes use argon2-cffi's defaults (RFC 9106 "low memory": argon2id, t=3,
  64 MiB, p=4), above OWASP's minimum (t=2, 19 MiB, p=1). A hash made with
  older parameters is flagged for rehashing at the next successful login.
- An unknown user is checked against a dummy hash, so "no such user" and
  "wrong password" cost the same time and get the same answer.
- At most `max_concurrent` hashes run at once, in threads of a pool of their
  own; a caller that cannot get a slot within `queue_timeout_seconds` gets
  `PasswordCheckBusy` (the API answers 503 with Retry-After) instead of
  queueing without bound.
- Those threads run at the lowest CPU priority (nice 19 on Linux, which the
  argon2 lane threads they start inherit): a login flood then takes only the
  CPU that commands and queries leave idle, instead of sharing the cores with
  them (docs/benchmarks.md, "Logins": counting hashes alone did not do that).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

T = TypeVar("T")

MIN_LENGTH: Final = 12
MAX_LENGTH: Final = 128
# zxcvbn's scale: 0 too guessable ... 4 very unguessable; 3 resists an offline
# attack on a slow hash for years.
MIN_SCORE: Final = 3
ZXCVBN_MAX_LENGTH: Final = 72
# The lowest priority Linux gives a thread; idle CPU still goes to it in full.
HASHING_NICENESS: Final = 19


class PasswordCheckBusy(Exception):
    """Too many password checks are running; retry shortly."""


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    needs_rehash: bool = False


def password_problems(password: str, *, user_inputs: tuple[str, ...] = ()) -> list[str]:
    """Why a password is too weak (empty when it is fine). The rule is documented in docs/api.md."""
    if len(password) < MIN_LENGTH:
        return [f"use at least {MIN_LENGTH} characters"]
    if len(password) > MAX_LENGTH:
        return [f"use at most {MAX_LENGTH} characters"]
    # zxcvbn refuses to judge more than 72 characters (it raises); the rest cannot make a password
    # weaker, so the first 72 are judged.
    judged = password[:ZXCVBN_MAX_LENGTH]
    result = zxcvbn(
        judged, user_inputs=[value for value in user_inputs if value], max_length=ZXCVBN_MAX_LENGTH
    )
    if result["score"] >= MIN_SCORE:
        return []
    feedback = result.get("feedback", {})
    advice = [feedback.get("warning") or "", *feedback.get("suggestions", [])]
    return [text for text in advice if text] or ["choose a less guessable password"]


class PasswordService:
    def __init__(
        self,
        hasher: PasswordHasher | None = None,
        *,
        max_concurrent: int = 2,
        queue_timeout_seconds: float = 2.0,
    ) -> None:
        self._hasher = hasher or PasswordHasher()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._threads = ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix="argon2", initializer=_lowest_priority
        )
        self._queue_timeout = queue_timeout_seconds
        self._dummy_hash = self._hasher.hash("not a password anyone has: " + "x" * 16)

    async def hash(self, password: str) -> str:
        return await self._bounded(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> Verification:
        """Check a password; with no stored hash (unknown user) spend the same work and fail."""
        target = stored_hash if stored_hash is not None else self._dummy_hash
        ok = await self._bounded(self._matches, target, password)
        if not ok or stored_hash is None:
            return Verification(ok=False)
        return Verification(ok=True, needs_rehash=self._hasher.check_needs_rehash(stored_hash))

    def _matches(self, stored_hash: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(stored_hash, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def _bounded(self, work: Callable[..., T], *args: str) -> T:
        try:
            async with asyncio.timeout(self._queue_timeout):
                await self._slots.acquire()
        except TimeoutError as error:
            raise PasswordCheckBusy("too many password checks at once") from error
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Let the hashing threads end (a running hash finishes first)."""
        self._threads.shutdown(wait=False, cancel_futures=True)


def _lowest_priority() -> None:
    """Lower this thread's CPU priority; where threads have no priority of their own, do nothing."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)
