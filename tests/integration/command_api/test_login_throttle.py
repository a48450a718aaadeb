"""Login throttling: failures per account and per client IP lock logins out for the window (429)."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.integration.command_api.conftest import (
    CommandClient,
    User,
    assert_problem,
    command_client,
    register,
)
from tests.integration.command_api.identity_helpers import login_response

WRONG = "definitely not the password 0"
WINDOW_SECONDS = 900  # the default CQRS_LOGIN_FAILURE_WINDOW_SECONDS
MAX_PER_ACCOUNT = 5  # the default CQRS_LOGIN_MAX_FAILURES_PER_ACCOUNT


def _assert_throttled(response: httpx.Response) -> None:
    assert_problem(response, 429, "/problems/login-throttled")
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= WINDOW_SECONDS


async def test_five_failures_lock_the_account_even_for_the_right_password(
    client: CommandClient, alice: User, bob: User
) -> None:
    """Five wrong passwords are five 401s; the sixth attempt, with the right password, is a 429 with an
    integer Retry-After within the window; another account still logs in."""
    failures = [await login_response(client, alice.email, WRONG) for _ in range(MAX_PER_ACCOUNT)]

    locked = await login_response(client, alice.email)

    assert [response.status_code for response in failures] == [401] * MAX_PER_ACCOUNT
    _assert_throttled(locked)
    # The account key is the normalised address: another spelling is locked out too.
    _assert_throttled(await login_response(client, alice.email.upper()))
    assert (await login_response(client, bob.email)).status_code == 200


async def test_a_success_before_the_limit_resets_the_account_count(
    client: CommandClient, alice: User
) -> None:
    """Four failures, a success, then four more failures are all answered (401) and the right password
    still logs in: the success cleared the count (nine attempts, but never five failures in a row)."""
    first = [await login_response(client, alice.email, WRONG) for _ in range(MAX_PER_ACCOUNT - 1)]
    success = await login_response(client, alice.email)
    second = [await login_response(client, alice.email, WRONG) for _ in range(MAX_PER_ACCOUNT - 1)]

    final = await login_response(client, alice.email)

    assert [response.status_code for response in [*first, success, *second]] == [401] * 4 + [200] + [401] * 4
    assert final.status_code == 200, final.text


async def test_the_per_ip_limit_spans_emails(service_environment: dict[str, str]) -> None:
    """With CQRS_LOGIN_MAX_FAILURES_PER_IP=3, three failures for three different addresses from one IP
    lock that IP out: a fourth address, even a registered one with its right password, gets a 429."""
    environment = {**service_environment, "CQRS_LOGIN_MAX_FAILURES_PER_IP": "3"}
    async with command_client(environment) as client:
        user = await register(client)
        failures = [
            await login_response(client, f"stranger-{uuid.uuid4().hex[:8]}@example.com", WRONG)
            for _ in range(3)
        ]

        locked = await login_response(client, user.email)

    assert [response.status_code for response in failures] == [401] * 3
    _assert_throttled(locked)


async def test_concurrent_wrong_guesses_get_no_more_tries_than_the_limit(
    client: CommandClient, alice: User
) -> None:
    """Twenty wrong passwords for one account sent at once get at most five 401s (the rest 429): a burst
    cannot slip more guesses past the limit than sequential attempts could; the account is then locked."""
    responses = await asyncio.gather(*(login_response(client, alice.email, WRONG) for _ in range(20)))

    assert client.in_flight.peak > 1, "the logins did not overlap"
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) <= MAX_PER_ACCOUNT, statuses
    for response in responses:
        if response.status_code == 429:
            _assert_throttled(response)
    _assert_throttled(await login_response(client, alice.email))


async def test_guesses_of_the_current_password_are_throttled(client: CommandClient, alice: User) -> None:
    """With a (stolen) access token, wrong current passwords get 429 after the account limit;
    then even the right one is refused, and the password stays unchanged."""
    wrong = {"current_password": "not the password at all 1", "new_password": "a brand new passphrase 77"}
    answers = [
        (await client.post("/v1/auth/password", json=wrong, headers=alice.headers)).status_code
        for _ in range(6)
    ]
    right = await client.post(
        "/v1/auth/password",
        json={"current_password": alice.password, "new_password": "a brand new passphrase 77"},
        headers=alice.headers,
    )

    assert answers == [401] * 5 + [429]
    assert right.status_code == 429
    assert 1 <= int(right.headers["retry-after"]) <= 900
    assert (await login_response(client, alice.email)).status_code == 200
