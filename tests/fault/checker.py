"""The checker: a load's history against the event store, JetStream and the read models.

Once the system has settled (the outbox drained, every projection caught up:
a bounded wait), it counts

- lost: an `ok` write with no effect in the store, an event of the store
  missing on JetStream, a read model behind the store;
- duplicated: a key executed twice, an event on JetStream twice, an entry
  applied twice in a read model;
- unexpected: an effect no request asked for (an unknown reference, a
  refused request that took effect, an amount or account not as asked);
- disordered: an account's events on JetStream out of version order;
- server errors: an answer other than 503 with Retry-After when a part is down;

and whether money is conserved: the balances sum to deposits minus
withdrawals, in the store's fold and in the read model.

It looks only at the accounts the load used: scenarios may share a system.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from projectors.catalogue import PROJECTIONS
from tests.fault.load import History, Operation
from tests.integration.relay.helpers import delivered

# What one execution of each kind of write leaves in the store.
_EFFECTS: dict[str, Counter[str]] = {
    "deposit": Counter({"MoneyDeposited": 1}),
    "withdraw": Counter({"MoneyWithdrawn": 1}),
    "transfer": Counter({"TransferSent": 1, "TransferReceived": 1}),
}
_SIGN = {"MoneyDeposited": 1, "MoneyWithdrawn": -1, "TransferSent": -1, "TransferReceived": 1}


@dataclass
class Verdict:
    operations: dict[str, int]
    events: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    disordered: int = 0
    server_errors: int = 0
    conserved_in_store: bool = False
    conserved_in_read_model: bool = False
    details: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return (
            self.lost == self.duplicated == self.unexpected == self.disordered == self.server_errors == 0
            and self.conserved_in_store
            and self.conserved_in_read_model
        )

    def note(self, kind: str, detail: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.details) < 20:
            self.details.append(f"{kind}: {detail}")

    def __str__(self) -> str:
        conserved = "yes" if self.conserved_in_store and self.conserved_in_read_model else "NO"
        head = (
            f"{'PASS' if self.clean else 'FAIL'}: lost={self.lost} duplicated={self.duplicated} "
            f"unexpected={self.unexpected} disordered={self.disordered} server errors={self.server_errors} "
            f"money conserved={conserved} "
            f"(events={self.events}; operations {self.operations})"
        )
        return "\n  ".join([head, *self.details])


async def _settled(connection: asyncpg.Connection) -> bool:
    if await connection.fetchval("SELECT count(*) FROM outbox"):
        return False
    rows = await connection.fetch(
        """
        SELECT c.position >= coalesce(
            (SELECT max(e.global_position) FROM events e WHERE e.stream_type = ANY(c.stream_types)), 0
        ) AS caught_up
        FROM projection_checkpoints c
        """
    )
    return len(rows) >= len(PROJECTIONS) and all(row["caught_up"] for row in rows)


async def wait_until_settled(database_url: str, seconds: float) -> None:
    """Poll until the outbox is empty and every projection applied the whole store; fail past `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        connection = await asyncpg.connect(database_url, timeout=10)
        try:
            if await _settled(connection):
                return
        finally:
            await connection.close()
        if time.monotonic() > deadline:
            raise AssertionError(f"the system did not settle within {seconds:.0f}s")
        await asyncio.sleep(0.2)  # polled with a deadline


async def check(
    history: History,
    *,
    database_url: str,
    nats_url: str,
    stream: str,
    accounts: list[str],
    settle_seconds: float = 60,
) -> Verdict:
    await wait_until_settled(database_url, settle_seconds)
    outcomes = history.outcomes()
    writes = {key: entry for key, entry in outcomes.items() if entry[0].kind != "read"}
    verdict = Verdict(operations=history.counts())
    for entry in history.server_errors():
        verdict.note(
            "server_errors", f"{entry['kind']} {entry['key']}: {entry['status']} {entry.get('problem', '')}"
        )
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        events = await connection.fetch(
            """
            SELECT event_id::text, stream_id::text, version, event_type,
                   data->>'reference' AS reference, (data->>'amount')::bigint AS amount,
                   data->>'counterparty_account_id' AS counterparty
            FROM events WHERE stream_id = ANY($1::uuid[]) AND event_type <> 'AccountOpened'
            ORDER BY global_position
            """,
            accounts,
        )
        read_accounts = {
            str(row["account_id"]): row
            for row in await connection.fetch(
                "SELECT account_id, balance, version FROM read.accounts WHERE account_id = ANY($1::uuid[])",
                accounts,
            )
        }
        entries = Counter(
            str(row["account_id"])
            for row in await connection.fetch(
                "SELECT account_id FROM read.account_entries WHERE account_id = ANY($1::uuid[])", accounts
            )
        )
        store_versions = {
            str(row["stream_id"]): row["version"]
            for row in await connection.fetch(
                "SELECT stream_id, max(version) AS version FROM events"
                " WHERE stream_id = ANY($1::uuid[]) GROUP BY stream_id",
                accounts,
            )
        }
    finally:
        await connection.close()
    verdict.events = len(events)

    _check_store(verdict, writes, events)
    await _check_bus(verdict, nats_url, stream, store_versions)
    _check_read_model(
        verdict,
        events,
        read_accounts=read_accounts,
        entries=entries,
        store_versions=store_versions,
        accounts=accounts,
    )
    return verdict


def _check_store(
    verdict: Verdict,
    writes: Mapping[str, tuple[Operation, str, dict[str, Any]]],
    events: list[asyncpg.Record],
) -> None:
    by_reference: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for event in events:
        by_reference[event["reference"]].append(event)
    for reference, effects in by_reference.items():
        if reference not in writes:
            verdict.note(
                "unexpected", f"{len(effects)} event(s) with reference {reference!r}: no request asked"
            )
            continue
        operation, outcome, _ = writes[reference]
        _check_effects(verdict, operation, outcome, effects)
    for key, (operation, outcome, _) in writes.items():
        if outcome == "ok" and key not in by_reference:
            verdict.note("lost", f"{operation.kind} {key} answered 2xx, but the store has no effect of it")
    store_sum = sum(_SIGN[event["event_type"]] * event["amount"] for event in events)
    external = _deposits_minus_withdrawals(events)
    verdict.conserved_in_store = store_sum == external
    if not verdict.conserved_in_store:
        verdict.details.append(f"store: balances sum to {store_sum}, deposits - withdrawals = {external}")


def _deposits_minus_withdrawals(events: list[asyncpg.Record]) -> int:
    """What the balances must sum to: transfers only move money between accounts."""
    return sum(
        _SIGN[event["event_type"]] * event["amount"]
        for event in events
        if event["event_type"] in ("MoneyDeposited", "MoneyWithdrawn")
    )


def _check_effects(
    verdict: Verdict, operation: Operation, outcome: str, effects: list[asyncpg.Record]
) -> None:
    """The events of one key: one execution's, as asked, and none if the request was refused."""
    if outcome == "fail":
        verdict.note("unexpected", f"{operation.kind} {operation.key} was refused, yet took effect")
    kinds = Counter(event["event_type"] for event in effects)
    expected = _EFFECTS[operation.kind]
    if any(kinds[kind] > count for kind, count in expected.items()):
        verdict.note("duplicated", f"{operation.kind} {operation.key} executed more than once: {dict(kinds)}")
    elif kinds != expected:
        verdict.note("unexpected", f"{operation.kind} {operation.key} left {dict(kinds)}")
    for event in effects:
        own_account = operation.to_account if event["event_type"] == "TransferReceived" else operation.account
        if event["amount"] != operation.amount or event["stream_id"] != own_account:
            verdict.note("unexpected", f"{operation.key}: {event['event_type']} not as asked")


async def _check_bus(verdict: Verdict, nats_url: str, stream: str, store_versions: dict[str, int]) -> None:
    # Only these accounts' messages: other scenarios may share the stream.
    messages = [
        message for message in await delivered(nats_url, stream) if message.stream_id in store_versions
    ]
    seen = Counter(message.msg_id for message in messages)
    for msg_id, copies in seen.items():
        if copies > 1:
            verdict.note("duplicated", f"event {msg_id} is on JetStream {copies} times")
    last: dict[str, int] = {}
    for message in messages:
        if message.version != last.get(message.stream_id, 0) + 1 and seen[message.msg_id] == 1:
            verdict.note(
                "disordered", f"{message.stream_id} v{message.version} after v{last.get(message.stream_id)}"
            )
        last[message.stream_id] = max(last.get(message.stream_id, 0), message.version)
    for stream_id, version in store_versions.items():
        if last.get(stream_id, 0) < version:
            verdict.note(
                "lost", f"{stream_id}: JetStream has up to v{last.get(stream_id, 0)}, the store v{version}"
            )


def _check_read_model(
    verdict: Verdict,
    events: list[asyncpg.Record],
    *,
    read_accounts: dict[str, asyncpg.Record],
    entries: Counter[str],
    store_versions: dict[str, int],
    accounts: list[str],
) -> None:
    balances: Counter[str] = Counter()
    movements: Counter[str] = Counter()
    for event in events:
        balances[event["stream_id"]] += _SIGN[event["event_type"]] * event["amount"]
        movements[event["stream_id"]] += 1
    for account in accounts:
        row = read_accounts.get(account)
        if row is None or row["version"] < store_versions.get(account, 0):
            verdict.note("lost", f"read model of {account} is behind the store")
            continue
        if row["balance"] != balances[account]:
            verdict.note(
                "duplicated", f"{account}: read balance {row['balance']}, store fold {balances[account]}"
            )
        if entries[account] != movements[account]:
            kind = "duplicated" if entries[account] > movements[account] else "lost"
            verdict.note(kind, f"{account}: {entries[account]} entries, {movements[account]} events")
    read_sum = sum(read_accounts[account]["balance"] for account in accounts if account in read_accounts)
    external = _deposits_minus_withdrawals(events)
    verdict.conserved_in_read_model = read_sum == external
    if not verdict.conserved_in_read_model:
        verdict.details.append(f"read model: balances sum to {read_sum}, deposits - withdrawals = {external}")
