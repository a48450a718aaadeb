"""Passwords: argon2id, a strength rule, equal work for unknown users, bounded concurrency."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest
from argon2 import PasswordHasher, Type

from shared.auth.passwords import HASHING_NICENESS, PasswordCheckBusy, PasswordService, password_problems

# Cheap parameters keep the unit tests fast; production uses argon2-cffi's defaults.
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def test_hashes_are_argon2id_at_or_above_owasp_minimum_by_default() -> None:
    """The default hasher is argon2id with at least t=2, 19 MiB, p=1."""
    hasher = PasswordHasher()
    assert hasher.type is Type.ID
    assert hasher.time_cost >= 2
    assert hasher.memory_cost >= 19 * 1024
    assert hasher.parallelism >= 1


async def test_the_right_password_verifies_and_a_wrong_one_does_not() -> None:
    """A hash verifies its own password only."""
    service = PasswordService(FAST)
    stored = await service.hash("a long enough passphrase 42")
    assert stored.startswith("$argon2id$")
    assert (await service.verify(stored, "a long enough passphrase 42")).ok
    assert not (await service.verify(stored, "a long enough passphrase 43")).ok


async def test_an_unknown_user_fails_like_a_wrong_password() -> None:
    """With no stored hash the check still does the hashing work, and fails."""
    calls: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            calls.append("verify")
            return super().verify(hash, password)

    service = PasswordService(Counting(time_cost=1, memory_cost=8, parallelism=1))
    result = await service.verify(None, "whatever it is 1234")
    assert not result.ok
    assert calls == ["verify"]


async def test_a_hash_with_old_parameters_asks_for_a_rehash() -> None:
    """A password hashed with weaker parameters than today's verifies and is flagged for rehashing."""
    old = await PasswordService(FAST).hash("a long enough passphrase 42")
    result = await PasswordService(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)).verify(
        old, "a long enough passphrase 42"
    )
    assert result.ok
    assert result.needs_rehash


async def test_checks_beyond_the_bound_are_refused_not_queued_forever() -> None:
    """When every slot stays busy past the queue timeout, a check raises PasswordCheckBusy."""
    service = PasswordService(FAST, max_concurrent=1, queue_timeout_seconds=0.05)
    held, release = asyncio.Event(), asyncio.Event()

    async def hold_the_slot() -> None:
        # The test occupies the one slot on purpose.
        async with service._slots:
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold_the_slot())
    await held.wait()
    with pytest.raises(PasswordCheckBusy):
        await service.verify(None, "anything at all 123")
    release.set()
    await holder


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priorities are a Linux feature")
async def test_hashing_runs_at_the_lowest_cpu_priority() -> None:
    """The hashing threads run at nice 19 (the argon2 lanes they start inherit it), so a flood of
    logins only takes CPU that requests leave idle; the event loop's thread keeps its priority."""
    service = PasswordService(FAST)

    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    try:
        hashing = await service._bounded(niceness)
    finally:
        service.close()

    assert hashing == HASHING_NICENESS
    assert niceness() < HASHING_NICENESS


@pytest.mark.parametrize(
    "password",
    ["short1!", "password1234", "aaaaaaaaaaaaaaaa", "alice.smith2024", "x" * 129, "0" * 127],
    ids=["too-short", "common", "repeated", "contains-name", "too-long", "long-but-repeated"],
)
def test_weak_passwords_are_refused_with_a_reason(password: str) -> None:
    """Short, common, repetitive, personal or overlong passwords get at least one reason."""
    assert password_problems(password, user_inputs=("alice.smith", "Alice Smith")) != []


def test_a_strong_passphrase_is_accepted() -> None:
    """A long, unguessable passphrase passes."""
    assert password_problems("correct horse battery staple", user_inputs=("alice",)) == []


def test_a_long_passphrase_is_judged_too() -> None:
    """Up to the 128-character limit, also past the 72 zxcvbn itself takes."""
    assert password_problems("correct horse battery staple " * 4, user_inputs=("alice",)) == []
