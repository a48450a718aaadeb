"""A load generator that records every request's outcome in a JSONL history.

Each write carries an Idempotency-Key, and the same key as its `reference`,
so the checker can find its effects in the event store. An outcome is `ok`
(2xx), `fail` (a definite refusal that changed nothing: 4xx), or `unknown`
(a timeout, a dropped connection, a 5xx or a conflict with the key still in
flight): an unknown is retried with the same key until it resolves or the
run's patience ends, and its last state is recorded.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

Kind = Literal["deposit", "withdraw", "transfer", "read"]
Outcome = Literal["ok", "fail", "unknown"]
# Conflicts that say "not now", not "no": the key is in flight, or the retries ran out.
_TRANSIENT_PROBLEMS = frozenset({"/problems/concurrent-update"})


@dataclass(frozen=True)
class Operation:
    key: str
    kind: Kind
    account: str
    amount: int = 0
    to_account: str | None = None

    def request(self) -> tuple[str, str, dict[str, Any] | None]:
        """(method, path, body)."""
        if self.kind == "read":
            return "GET", f"/v1/accounts/{self.account}", None
        if self.kind == "transfer":
            body = {
                "from_account_id": self.account,
                "to_account_id": self.to_account,
                "amount": self.amount,
                "reference": self.key,
            }
            return "POST", "/v1/transfers", body
        path = "deposits" if self.kind == "deposit" else "withdrawals"
        return "POST", f"/v1/accounts/{self.account}/{path}", {"amount": self.amount, "reference": self.key}


@dataclass(frozen=True)
class Mix:
    """Shares of each kind of operation (reads go to the query API)."""

    deposit: float = 0.4
    withdraw: float = 0.2
    transfer: float = 0.2
    read: float = 0.2


@dataclass(frozen=True)
class LoadPlan:
    rate_per_second: float
    seconds: float
    accounts: Sequence[str]
    mix: Mix = field(default_factory=Mix)
    concurrency: int = 32
    request_timeout_seconds: float = 3.0
    # How long an unknown write keeps being retried after the load ends.
    patience_seconds: float = 60.0
    seed: int = 0


class History:
    """Every invoke and every outcome, appended to a JSONL file as it happens."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[dict[str, Any]] = []
        self._file = path.open("a", encoding="utf-8")
        self._started = time.monotonic()

    def record(self, event: str, operation: Operation, **fields: Any) -> None:
        entry = {
            "t": round(time.monotonic() - self._started, 4),
            "event": event,
            **asdict(operation),
            **fields,
        }
        self.entries.append(entry)
        self._file.write(json.dumps(entry) + "\n")

    def close(self) -> None:
        self._file.close()

    def outcomes(self) -> dict[str, tuple[Operation, Outcome, dict[str, Any]]]:
        """Each operation's last outcome, by key: an operation never answered is `unknown`."""
        final: dict[str, tuple[Operation, Outcome, dict[str, Any]]] = {}
        for entry in self.entries:
            operation = Operation(
                key=entry["key"],
                kind=entry["kind"],
                account=entry["account"],
                amount=entry["amount"],
                to_account=entry["to_account"],
            )
            if entry["event"] == "invoke":
                final.setdefault(operation.key, (operation, "unknown", {}))
            elif entry["event"] in ("ok", "fail", "unknown"):
                final[operation.key] = (operation, entry["event"], entry)
        return final

    def server_errors(self) -> list[dict[str, Any]]:
        """Every answer that broke the contract under failure: a 5xx other than 503, or a 503
        without Retry-After (contract.md: a dependency down is a 503 that says when to retry)."""
        return [
            entry
            for entry in self.entries
            if entry.get("status", 0) >= 500 and (entry["status"] != 503 or not entry.get("retry_after"))
        ]

    def counts(self) -> dict[str, int]:
        """Final outcomes, and how many attempts had to be repeated on the way."""
        tally: dict[str, int] = {"ok": 0, "fail": 0, "unknown": 0}
        for _, outcome, _ in self.outcomes().values():
            tally[outcome] += 1
        tally["retries"] = sum(1 for entry in self.entries if entry["event"] == "retry")
        return tally


def _choose(plan: LoadPlan, rng: random.Random) -> Operation:
    mix = plan.mix
    kinds: list[Kind] = ["deposit", "withdraw", "transfer", "read"]
    kind = rng.choices(
        kinds,
        weights=[mix.deposit, mix.withdraw, mix.transfer, mix.read],
    )[0]
    account = rng.choice(plan.accounts)
    key = f"load-{uuid.uuid4().hex}"
    if kind == "transfer":
        to_account = rng.choice([other for other in plan.accounts if other != account])
        return Operation(key, kind, account, rng.randint(1, 500), to_account)
    if kind == "read":
        return Operation(key, kind, account)
    return Operation(key, kind, account, rng.randint(1, 1000 if kind == "deposit" else 500))


def _classify(response: httpx.Response) -> Outcome:
    if response.is_success:
        return "ok"
    if response.status_code >= 500 or response.status_code == 429:
        return "unknown"
    if response.status_code == 409:
        problem_type = response.json().get("type") if response.content else None
        return "unknown" if problem_type in _TRANSIENT_PROBLEMS else "fail"
    return "fail"


async def open_accounts(command_url: str, headers: Mapping[str, str], count: int) -> list[str]:
    """`count` EUR accounts of the caller, opened through the API: the load's accounts."""
    accounts = []
    async with httpx.AsyncClient(timeout=10, headers=dict(headers)) as client:
        for n in range(count):
            response = await client.post(
                f"{command_url}/v1/accounts",
                json={"currency": "EUR", "name": f"load-{n}"},
                headers={"Idempotency-Key": f"open-{uuid.uuid4().hex}"},
            )
            assert response.status_code == 201, response.text
            accounts.append(response.json()["account_id"])
    return accounts


class LoadGenerator:
    def __init__(
        self, command_url: str, query_url: str, headers: Mapping[str, str], plan: LoadPlan, history: History
    ) -> None:
        self.command_url = command_url
        self.query_url = query_url
        self.headers = dict(headers)
        self.plan = plan
        self.history = history
        self.latencies: dict[Kind, list[float]] = {"deposit": [], "withdraw": [], "transfer": [], "read": []}

    async def run(self) -> None:
        """Offer operations at the plan's rate for its duration, then wait for every one to resolve."""
        rng = random.Random(self.plan.seed)  # noqa: S311 - a reproducible load mix, not a secret
        limits = httpx.Limits(max_connections=self.plan.concurrency)
        slots = asyncio.Semaphore(self.plan.concurrency)
        async with httpx.AsyncClient(timeout=self.plan.request_timeout_seconds, limits=limits) as client:
            started = time.monotonic()
            give_up_at = started + self.plan.seconds + self.plan.patience_seconds
            tasks: list[asyncio.Task[None]] = []
            sent = 0
            while (elapsed := time.monotonic() - started) < self.plan.seconds:
                due = int(elapsed * self.plan.rate_per_second) + 1
                while sent < due:
                    tasks.append(
                        asyncio.create_task(self._perform(client, slots, _choose(self.plan, rng), give_up_at))
                    )
                    sent += 1
                # The next operation's due time: the rate is kept by the clock, not by sleeps adding up.
                await asyncio.sleep(max(0.0, sent / self.plan.rate_per_second - (time.monotonic() - started)))
            await asyncio.gather(*tasks)

    async def run_closed(self, clients: int) -> int:
        """`clients` back to back, each starting its next operation when its last one resolved, for the
        plan's duration (a capacity measure); how many operations were offered."""
        rng = random.Random(self.plan.seed)  # noqa: S311 - a reproducible load mix, not a secret
        limits = httpx.Limits(max_connections=clients)
        slots = asyncio.Semaphore(clients)
        ends_at = time.monotonic() + self.plan.seconds
        give_up_at = ends_at + self.plan.patience_seconds
        offered = 0

        async def client_loop(client: httpx.AsyncClient) -> None:
            nonlocal offered
            while time.monotonic() < ends_at:
                offered += 1
                await self._perform(client, slots, _choose(self.plan, rng), give_up_at)

        async with httpx.AsyncClient(timeout=self.plan.request_timeout_seconds, limits=limits) as client:
            await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        return offered

    async def perform_all(self, operations: Sequence[Operation]) -> None:
        """These operations at once, recorded as any other (opening balances, say)."""
        slots = asyncio.Semaphore(self.plan.concurrency)
        give_up_at = time.monotonic() + self.plan.patience_seconds
        async with httpx.AsyncClient(timeout=self.plan.request_timeout_seconds) as client:
            await asyncio.gather(*(self._perform(client, slots, op, give_up_at) for op in operations))

    async def perform_copies(self, operation: Operation, copies: int) -> None:
        """The same request, same key, `copies` times at once: a client retrying impatiently."""
        slots = asyncio.Semaphore(copies)
        give_up_at = time.monotonic() + self.plan.patience_seconds
        async with httpx.AsyncClient(timeout=self.plan.request_timeout_seconds) as client:
            await asyncio.gather(
                *(self._perform(client, slots, operation, give_up_at) for _ in range(copies))
            )

    async def _perform(
        self, client: httpx.AsyncClient, slots: asyncio.Semaphore, operation: Operation, give_up_at: float
    ) -> None:
        method, path, body = operation.request()
        base = self.query_url if operation.kind == "read" else self.command_url
        headers = (
            self.headers if operation.kind == "read" else {**self.headers, "Idempotency-Key": operation.key}
        )
        self.history.record("invoke", operation)
        attempt = 0
        while True:
            attempt += 1
            began = time.monotonic()
            async with slots:
                try:
                    response = await client.request(method, base + path, json=body, headers=headers)
                except httpx.HTTPError as error:
                    outcome: Outcome = "unknown"
                    details: dict[str, Any] = {"error": type(error).__name__}
                else:
                    outcome = _classify(response)
                    details = {"status": response.status_code}
                    if response.status_code == 503:
                        details["retry_after"] = response.headers.get("retry-after")
                    if outcome == "ok" and response.content:
                        details["answer"] = response.json()
                    elif outcome != "ok":
                        details["problem"] = response.text[:300]
            if outcome == "ok":
                self.latencies[operation.kind].append(time.monotonic() - began)
            # A read is not retried: its outcome is what the client saw.
            if outcome != "unknown" or operation.kind == "read" or time.monotonic() > give_up_at:
                self.history.record(outcome, operation, attempt=attempt, **details)
                return
            self.history.record("retry", operation, attempt=attempt, **details)
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))  # backoff before the same key again
