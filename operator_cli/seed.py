"""`cqrs seed`: demo users, accounts and money, made through the real command path.

The admin is created in-process the way `cqrs users create-admin` creates one
(no HTTP route makes the first admin); everything else goes over HTTP to the
running command API, exactly as a client would send it: register, log in,
open accounts, deposit, transfer. Each POST carries an Idempotency-Key and a
retry sends the same key again, so a lost answer never doubles a deposit.

The passwords are random, made per run, and only ever printed (never logged).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import click
import httpx

from command_api.identity.provisioning import EmailTaken, ProvisioningRefused, create_user, provisioning
from command_api.settings import CommandApiSettings
from operator_cli.settings_option import settings_or_exit
from shared.auth.passwords import password_problems

ADMIN_EMAIL: Final = "admin@example.com"
ALICE_EMAIL: Final = "alice@example.com"
BOB_EMAIL: Final = "bob@example.com"
FRESH_HINT: Final = "to start again from an empty database, run `cqrs dev --fresh --seed`"
# The demo currencies (EUR, USD) both have two minor digits.
MINOR_DIGITS: Final = 2

# Answers worth sending the same request again for (with the same Idempotency-Key).
_RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
_RETRY_PROBLEMS: Final = frozenset({"/problems/concurrent-update", "/problems/busy"})
_EMAIL_TAKEN: Final = "/problems/email-taken"
_MAX_RETRY_WAIT_SECONDS: Final = 5.0


class SeedFailed(Exception):
    """Seeding stopped; the message says where and why."""


class AlreadySeeded(Exception):
    """The demo users exist already: this database was seeded before."""


@dataclass(frozen=True, slots=True)
class SeededUser:
    email: str
    display_name: str
    role: str
    password: str
    user_id: UUID


@dataclass(frozen=True, slots=True)
class SeededAccount:
    owner_email: str
    account_id: UUID
    name: str
    currency: str
    balance: int  # minor units, after every seeded deposit and transfer


@dataclass(frozen=True, slots=True)
class SeedReport:
    users: tuple[SeededUser, ...]
    accounts: tuple[SeededAccount, ...]
    deposits: int  # how many
    transfers: int  # how many


def new_password(*user_inputs: str) -> str:
    """A random password the registration rule accepts (24 URL-safe characters, ~143 bits)."""
    while True:
        candidate = secrets.token_urlsafe(18)
        if not password_problems(candidate, user_inputs=user_inputs):
            return candidate


def _problem_type(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("type", "")) if isinstance(body, dict) else ""


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return response.text[:200]


def _retry_wait(response: httpx.Response | None, attempt: int) -> float:
    if response is not None:
        try:
            return min(_MAX_RETRY_WAIT_SECONDS, max(0.0, float(response.headers.get("Retry-After", ""))))
        except ValueError:
            pass
    return min(_MAX_RETRY_WAIT_SECONDS, 0.2 * 2.0**attempt)


class _CommandApi:
    """POSTs to the command API: a timeout on each, bounded retries with the same Idempotency-Key."""

    def __init__(self, client: httpx.AsyncClient, attempts: int) -> None:
        self._client = client
        self._attempts = attempts

    async def wait_ready(self, within_seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_seconds
        while True:
            try:
                response = await self._client.get("/health/ready")
                if response.status_code == httpx.codes.OK:
                    return
                last = f"GET /health/ready answered {response.status_code}: {_detail(response)}"
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}: {error}"
            if loop.time() >= deadline:
                raise SeedFailed(
                    f"the command API at {self._client.base_url} is not ready after {within_seconds:g}s "
                    f"({last}); start the system with `cqrs dev`, or point --command-api at it"
                )
            await asyncio.sleep(0.2)

    async def post(
        self, path: str, body: Mapping[str, Any], *, expect: int, token: str | None = None
    ) -> tuple[httpx.Response, dict[str, Any]]:
        """The answer, with its JSON body when the status is `expect` (else an empty one).

        Transport errors, 429/502/503/504 and a concurrent-update 409 are retried with the
        same Idempotency-Key; SeedFailed once the attempts are spent.
        """
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        failure = "no attempt made"
        for attempt in range(1, self._attempts + 1):
            response: httpx.Response | None = None
            try:
                response = await self._client.post(path, json=dict(body), headers=headers)
            except httpx.TransportError as error:
                failure = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == expect:
                    answer = response.json()
                    return response, answer if isinstance(answer, dict) else {}
                retryable = response.status_code in _RETRY_STATUSES or (
                    _problem_type(response) in _RETRY_PROBLEMS
                )
                if not retryable:
                    return response, {}
                failure = f"{response.status_code}: {_detail(response)}"
            if attempt < self._attempts:
                await asyncio.sleep(_retry_wait(response, attempt))
        raise SeedFailed(f"POST {path} failed after {self._attempts} attempts ({failure})")


def _refused(step: str, response: httpx.Response) -> SeedFailed:
    return SeedFailed(f"{step}: the command API answered {response.status_code}: {_detail(response)}")


async def _create_admin(settings: CommandApiSettings, password: str) -> UUID:
    async with provisioning(settings) as (executor, passwords):
        try:
            return await create_user(
                executor,
                passwords,
                email=ADMIN_EMAIL,
                password=password,
                display_name="Admin",
                extra_roles=("admin",),
            )
        except EmailTaken as taken:
            raise AlreadySeeded(f"{ADMIN_EMAIL} exists, nothing was changed") from taken
        except ProvisioningRefused as refused:
            raise SeedFailed(f"creating the admin {ADMIN_EMAIL}: {refused}") from refused


async def _register(api: _CommandApi, email: str, display_name: str) -> SeededUser:
    password = new_password(email, display_name)
    body = {"email": email, "password": password, "display_name": display_name}
    response, answer = await api.post("/v1/auth/register", body, expect=201)
    if response.status_code == httpx.codes.CONFLICT and _problem_type(response) == _EMAIL_TAKEN:
        raise AlreadySeeded(f"{email} exists, seeding stopped there")
    if response.status_code != httpx.codes.CREATED:
        raise _refused(f"registering {email}", response)
    return SeededUser(email, display_name, "user", password, UUID(str(answer["user_id"])))


async def _log_in(api: _CommandApi, user: SeededUser) -> str:
    response, answer = await api.post(
        "/v1/auth/login", {"email": user.email, "password": user.password}, expect=200
    )
    if response.status_code != httpx.codes.OK:
        raise _refused(f"logging in as {user.email}", response)
    return str(answer["access_token"])


class _Ledger:
    """The seeded accounts and their expected balances, kept as the commands succeed."""

    def __init__(self, api: _CommandApi) -> None:
        self._api = api
        self.accounts: dict[UUID, SeededAccount] = {}
        self.deposits = 0
        self.transfers = 0

    def _credit(self, account_id: UUID, amount: int) -> None:
        account = self.accounts[account_id]
        self.accounts[account_id] = SeededAccount(
            account.owner_email, account_id, account.name, account.currency, account.balance + amount
        )

    async def open(self, token: str, owner: str, currency: str, name: str) -> UUID:
        response, answer = await self._api.post(
            "/v1/accounts", {"currency": currency, "name": name}, expect=201, token=token
        )
        if response.status_code != httpx.codes.CREATED:
            raise _refused(f"opening {owner}'s {currency} account", response)
        account_id = UUID(str(answer["account_id"]))
        self.accounts[account_id] = SeededAccount(owner, account_id, name, currency, 0)
        return account_id

    async def deposit(self, token: str, account_id: UUID, amount: int, reference: str) -> None:
        response, _ = await self._api.post(
            f"/v1/accounts/{account_id}/deposits",
            {"amount": amount, "reference": reference},
            expect=201,
            token=token,
        )
        if response.status_code != httpx.codes.CREATED:
            raise _refused(f"depositing into {account_id}", response)
        self._credit(account_id, amount)
        self.deposits += 1

    async def transfer(self, token: str, source: UUID, target: UUID, amount: int, reference: str) -> None:
        body = {
            "from_account_id": str(source),
            "to_account_id": str(target),
            "amount": amount,
            "reference": reference,
        }
        response, _ = await self._api.post("/v1/transfers", body, expect=201, token=token)
        if response.status_code != httpx.codes.CREATED:
            raise _refused(f"transferring from {source} to {target}", response)
        self._credit(source, -amount)
        self._credit(target, amount)
        self.transfers += 1


async def seed(
    command_api_url: str,
    settings: CommandApiSettings,
    *,
    http_timeout: float = 10.0,
    attempts: int = 4,
    ready_timeout: float = 10.0,
) -> SeedReport:
    """Create the demo admin, Alice and Bob, their accounts, deposits and transfers.

    Raises AlreadySeeded when a demo user exists already (nothing more is
    written then), SeedFailed when a step fails.
    """
    timeout = httpx.Timeout(http_timeout)
    async with httpx.AsyncClient(base_url=command_api_url.rstrip("/"), timeout=timeout) as client:
        api = _CommandApi(client, attempts)
        # Before anything is written: a seed that cannot reach the API must not leave an admin behind.
        await api.wait_ready(ready_timeout)
        admin_password = new_password(ADMIN_EMAIL, "Admin")
        admin_id = await _create_admin(settings, admin_password)
        admin = SeededUser(ADMIN_EMAIL, "Admin", "admin", admin_password, admin_id)
        alice = await _register(api, ALICE_EMAIL, "Alice")
        bob = await _register(api, BOB_EMAIL, "Bob")
        alice_token, bob_token = await _log_in(api, alice), await _log_in(api, bob)

        ledger = _Ledger(api)
        alice_eur = await ledger.open(alice_token, alice.email, "EUR", "Alice's everyday")
        alice_usd = await ledger.open(alice_token, alice.email, "USD", "Alice's travel")
        bob_eur = await ledger.open(bob_token, bob.email, "EUR", "Bob's everyday")
        await ledger.deposit(alice_token, alice_eur, 150_000, "Salary")
        await ledger.deposit(alice_token, alice_usd, 50_000, "Savings")
        await ledger.deposit(bob_token, bob_eur, 80_000, "Salary")
        await ledger.transfer(alice_token, alice_eur, bob_eur, 12_500, "Concert tickets")
        await ledger.transfer(bob_token, bob_eur, alice_eur, 4_250, "Dinner, my half")
        await ledger.transfer(alice_token, alice_eur, bob_eur, 2_000, "Coffee")
    return SeedReport(
        users=(admin, alice, bob),
        accounts=tuple(ledger.accounts.values()),
        deposits=ledger.deposits,
        transfers=ledger.transfers,
    )


def _money(amount: int, currency: str) -> str:
    units, cents = divmod(amount, 10**MINOR_DIGITS)
    return f"{units:,}.{cents:0{MINOR_DIGITS}d} {currency}"


def report_lines(report: SeedReport) -> list[str]:
    """What `cqrs seed` prints: the logins (shown only this once) and the accounts."""
    lines = ["Demo data created. Log in with (the passwords are shown only now):"]
    lines += [f"  {user.role:<6} {user.email:<20} {user.password}" for user in report.users]
    lines.append(f"Accounts ({report.deposits} deposits and {report.transfers} transfers made):")
    lines += [
        f"  {account.account_id}  {account.owner_email:<20} {account.name:<18} "
        f"{_money(account.balance, account.currency):>14}"
        for account in report.accounts
    ]
    lines.append('Try: POST /v1/auth/login with {"email": ..., "password": ...}, then use the access_token.')
    return lines


def _default_url(settings: CommandApiSettings) -> str:
    return f"http://127.0.0.1:{settings.command_api_port}"


@click.command("seed")
@click.option(
    "--command-api",
    "command_api_url",
    default=None,
    metavar="URL",
    help="The running command API [default: http://127.0.0.1:<CQRS_COMMAND_API_PORT or 8000>].",
)
@click.option(
    "--wait",
    "ready_timeout",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the command API to be ready.",
)
def seed_command(command_api_url: str | None, ready_timeout: float) -> None:
    """Create demo users (an admin, Alice, Bob), accounts, deposits and transfers; print the logins.

    Goes through the running command API, as any client would. On a database
    seeded before it changes nothing and says so.
    """
    settings = settings_or_exit(CommandApiSettings)
    if settings.profile == "prod":
        raise click.ClickException("refusing to seed demo users with known emails in the prod profile")
    # One INFO line per request from httpx is noise here (and shows nothing secret).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    url = command_api_url or _default_url(settings)
    try:
        report = asyncio.run(seed(url, settings, ready_timeout=ready_timeout))
    except AlreadySeeded as seeded:
        click.echo(f"Demo data is there already: {seeded}.")
        click.echo(f"Its passwords were shown when it was made; {FRESH_HINT}.")
        return
    except SeedFailed as failed:
        raise click.ClickException(str(failed)) from failed
    for line in report_lines(report):
        click.echo(line)
