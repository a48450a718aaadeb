"""Fixtures for the command API against real servers: an in-process client and the event store.

The client is an `httpx.AsyncClient` over `httpx.ASGITransport`, with the app's
lifespan entered in the test's own event loop. litestar's `AsyncTestClient`
is deliberately not used here: it runs the app behind a blocking portal in
another thread, and each request blocks the caller until it is answered, so
`asyncio.gather` over it sends the requests one after another and a
"concurrent" test would prove nothing. Over `ASGITransport` the requests of
one `gather` really are in flight together.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from litestar import Litestar

from command_api.app import create_app
from command_api.identity.provisioning import create_user, provisioning
from command_api.settings import CommandApiSettings
from shared.http.request_context import RequestContextMiddleware
from shared.settings import load_settings
from tests.support.tokens import bearer

PROBLEM_JSON = "application/problem+json"
# Every table a command writes to, the identity side tables included (registration, login and API
# keys write those); a refused request must leave all of them untouched. The fixtures register and
# log in real users, so a test compares counts with a baseline taken after them, never with zero.
WRITE_TABLES = (
    "events",
    "outbox",
    "aggregate_states",
    "idempotency_records",
    "email_reservations",
    "user_credentials",
    "refresh_families",
    "refresh_tokens",
    "api_keys",
)


@contextlib.asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    """The app's lifespan, held open by a task of its own.

    pytest-asyncio sets a fixture up and tears it down in different tasks, and
    litestar's lifespan holds an anyio task group that must be left by the task
    that entered it.
    """
    started = asyncio.Event()
    stop = asyncio.Event()

    async def hold() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(hold())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()  # startup failed: raise its error here
    try:
        yield
    finally:
        stop.set()
        await task


# The ASGI signature as httpx's transport declares it (litestar's own types are narrower).
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class InFlight:
    """ASGI wrapper counting HTTP requests inside the app, to prove a test's requests overlapped."""

    def __init__(self, app: RequestContextMiddleware) -> None:
        self.app: Any = app  # litestar's narrower ASGI types do not unify with httpx's
        self.current = 0
        self.peak = 0

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.current += 1
        self.peak = max(self.peak, self.current)
        try:
            await self.app(scope, receive, send)
        finally:
            self.current -= 1


class CommandClient(httpx.AsyncClient):
    """An httpx client bound to one in-process app, knowing how many requests it had in flight at once."""

    def __init__(self, app: RequestContextMiddleware) -> None:
        self.in_flight = InFlight(app)
        super().__init__(transport=httpx.ASGITransport(app=self.in_flight), base_url="http://testserver")


@contextlib.asynccontextmanager
async def app_client(app: RequestContextMiddleware) -> AsyncIterator[CommandClient]:
    """A client for a freshly built app (either API), its lifespan run in this event loop."""
    litestar_app: Any = app.app
    while not isinstance(litestar_app, Litestar):  # beneath the IP filter, when one is set
        litestar_app = litestar_app.app
    async with _lifespan(litestar_app), CommandClient(app) as client:
        yield client


@contextlib.asynccontextmanager
async def command_client(environment: Mapping[str, str]) -> AsyncIterator[CommandClient]:
    """A client for a freshly built command API app."""
    async with app_client(create_app(load_settings(CommandApiSettings, environment))) as client:
        yield client


@pytest.fixture
async def client(service_environment: dict[str, str]) -> AsyncIterator[CommandClient]:
    """The command API on this test's own database, stream and Redis prefix."""
    async with command_client(service_environment) as http:
        yield http


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test's database, to look at the event store itself."""
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        yield connection
    finally:
        await connection.close()


@dataclass(frozen=True, slots=True)
class User:
    user_id: uuid.UUID
    headers: dict[str, str]
    email: str = ""
    password: str = ""
    refresh_token: str = ""


# Strong enough for the zxcvbn rule; each user gets its own email.
PASSWORD = "correct horse battery staple 42"  # noqa: S105 - a test user's password


async def log_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> User:
    """Log in through POST /v1/auth/login; fails the test unless it is a 200."""
    response = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    tokens = response.json()
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    return User(
        user_id=uuid.UUID(claims["sub"]),
        headers=bearer(tokens["access_token"]),
        email=email,
        password=password,
        refresh_token=tokens["refresh_token"],
    )


async def register(
    client: httpx.AsyncClient,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    display_name: str = "Test",
) -> User:
    """Register through POST /v1/auth/register, then log in: a real user with real tokens."""
    email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
    response = await client.post(
        "/v1/auth/register", json={"email": email, "password": password, "display_name": display_name}
    )
    assert response.status_code == 201, response.text
    return await log_in(client, email, password)


async def register_admin(client: httpx.AsyncClient, environment: Mapping[str, str]) -> User:
    """An admin made the way operators make the first one (`cqrs users create-admin`), then logged in."""
    email = f"admin-{uuid.uuid4().hex[:12]}@example.com"
    async with provisioning(load_settings(CommandApiSettings, environment)) as (executor, passwords):
        await create_user(
            executor, passwords, email=email, password=PASSWORD, display_name="Admin", extra_roles=("admin",)
        )
    return await log_in(client, email)


@pytest.fixture
async def alice(client: CommandClient) -> User:
    return await register(client, display_name="Alice")


@pytest.fixture
async def bob(client: CommandClient) -> User:
    return await register(client, display_name="Bob")


@pytest.fixture
async def admin(client: CommandClient, service_environment: dict[str, str]) -> User:
    return await register_admin(client, service_environment)


def keyed(headers: Mapping[str, str], key: str) -> dict[str, str]:
    """The headers with an Idempotency-Key added."""
    return {**headers, "Idempotency-Key": key}


async def open_account(
    client: httpx.AsyncClient, headers: Mapping[str, str], currency: str = "EUR", name: str = "main"
) -> str:
    """Open an account and return its id; fails the test unless it is a 201."""
    response = await client.post("/v1/accounts", json={"currency": currency, "name": name}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["account_id"])


async def deposit(
    client: httpx.AsyncClient,
    headers: Mapping[str, str],
    account_id: str,
    amount: int,
    *,
    reference: str = "in",
) -> dict[str, Any]:
    """Deposit and return the answer body; fails the test unless it is a 201."""
    response = await client.post(
        f"/v1/accounts/{account_id}/deposits",
        json={"amount": amount, "reference": reference},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def withdraw(
    client: httpx.AsyncClient,
    headers: Mapping[str, str],
    account_id: str,
    amount: int,
    *,
    reference: str = "out",
) -> httpx.Response:
    """POST a withdrawal and return the raw response (the caller judges it)."""
    return await client.post(
        f"/v1/accounts/{account_id}/withdrawals",
        json={"amount": amount, "reference": reference},
        headers=headers,
    )


async def transfer(
    client: httpx.AsyncClient,
    headers: Mapping[str, str],
    from_account_id: str,
    to_account_id: str,
    amount: int,
    *,
    reference: str = "transfer",
) -> httpx.Response:
    """POST a transfer and return the raw response (the caller judges it)."""
    return await client.post(
        "/v1/transfers",
        json={
            "from_account_id": from_account_id,
            "to_account_id": to_account_id,
            "amount": amount,
            "reference": reference,
        },
        headers=headers,
    )


def assert_problem(response: httpx.Response, status: int, type_: str | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status (and type); returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM_JSON, response.headers
    body: dict[str, Any] = response.json()
    for member in ("type", "title", "status", "detail"):
        assert member in body, body
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    if type_ is not None:
        assert body["type"] == type_, body
    return body


async def stored_state(db: asyncpg.Connection, account_id: str) -> tuple[int, dict[str, Any]]:
    """The version and decoded state of the account's aggregate_states row."""
    row = await db.fetchrow(
        "SELECT version, state::text AS state FROM aggregate_states WHERE stream_id = $1",
        uuid.UUID(account_id),
    )
    assert row is not None, f"no state row for {account_id}"
    state: dict[str, Any] = json.loads(row["state"])
    return row["version"], state


async def balance_of(db: asyncpg.Connection, account_id: str) -> int:
    _, state = await stored_state(db, account_id)
    return int(state["balance"])


async def stream_events(db: asyncpg.Connection, account_id: str) -> list[asyncpg.Record]:
    """The account's events in version order: type, version, decoded data, outbox presence."""
    rows = await db.fetch(
        """
        SELECT e.event_type, e.version, e.data::text AS data, o.global_position IS NOT NULL AS queued
          FROM events e LEFT JOIN outbox o USING (global_position)
         WHERE e.stream_id = $1 ORDER BY e.version
        """,
        uuid.UUID(account_id),
    )
    return list(rows)


async def folded_balance(db: asyncpg.Connection, account_id: str) -> int:
    """The balance recomputed from the stored events alone."""
    balance = 0
    for row in await stream_events(db, account_id):
        amount = int(json.loads(row["data"]).get("amount", 0))
        if row["event_type"] in ("MoneyDeposited", "TransferReceived"):
            balance += amount
        elif row["event_type"] in ("MoneyWithdrawn", "TransferSent"):
            balance -= amount
    return balance


async def table_counts(db: asyncpg.Connection) -> dict[str, int]:
    """Row counts of every table a command writes."""
    counts: dict[str, int] = {}
    for table in WRITE_TABLES:
        counts[table] = int(await db.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 - fixed names
    return counts


async def changes_since(db: asyncpg.Connection, before: Mapping[str, int]) -> dict[str, int]:
    """How many rows each write table gained (or lost) since `before`; tables left as they were omitted."""
    after = await table_counts(db)
    return {table: after[table] - before[table] for table in WRITE_TABLES if after[table] != before[table]}
