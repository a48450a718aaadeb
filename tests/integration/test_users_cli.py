"""`cqrs users create-admin`: the first admin, with the password from stdin, logged in like anyone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import asyncpg
import pytest

from tests.integration.test_seed import _clean_environment

PASSWORD = "an operator's long passphrase 31"  # noqa: S105 - a test admin's password


def _create_admin(environment: dict[str, str], email: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "operator_cli", "users", "create-admin", "--email", email, "--password-stdin"],
        input=password + "\n",
        env=_clean_environment(environment),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=os.getcwd(),
    )


@pytest.mark.slow
async def test_create_admin_reads_stdin_and_refuses_a_taken_email(
    service_environment: dict[str, str], database_url: str
) -> None:
    """The admin is created with roles user and admin; the same email again (in another case) exits 1
    with a clear message and changes nothing; a weak password is refused before anything is written."""
    created = _create_admin(service_environment, "Root@Example.com", PASSWORD)
    again = _create_admin(service_environment, "root@example.com", PASSWORD)
    weak = _create_admin(service_environment, "other@example.com", "password1234")

    assert created.returncode == 0, created.stderr
    assert "created admin" in created.stdout
    assert PASSWORD not in created.stdout + created.stderr
    assert again.returncode == 1
    assert "exists" in again.stderr
    assert weak.returncode == 1
    assert "too weak" in weak.stderr
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        states = await connection.fetch(
            "SELECT state::text AS state FROM aggregate_states WHERE stream_type = 'user'"
        )
    finally:
        await connection.close()
    assert [json.loads(row["state"])["roles"] for row in states] == [["admin", "user"]]
