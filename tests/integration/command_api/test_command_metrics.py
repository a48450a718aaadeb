"""The command API's own metrics: each command's outcome by status, and idempotent replays."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from tests.integration.command_api.conftest import CommandClient, User, open_account


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_outcomes_and_replays_are_counted_per_command(client: CommandClient, alice: User) -> None:
    account = await open_account(client, alice.headers)
    path = f"/v1/accounts/{account}"
    done = counted("cqrs_commands_total", command="deposit", status="201")
    refused = counted("cqrs_commands_total", command="withdraw", status="409")
    replays = counted("cqrs_idempotency_replays_total", command="deposit")

    key = {**alice.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"amount": 500, "reference": "salary"}
    assert (await client.post(f"{path}/deposits", json=body, headers=key)).status_code == 201
    replay = await client.post(f"{path}/deposits", json=body, headers=key)
    assert replay.headers["idempotent-replayed"] == "true"
    overdraw = await client.post(
        f"{path}/withdrawals", json={"amount": 10_000, "reference": "x"}, headers=alice.headers
    )
    assert overdraw.status_code == 409

    assert counted("cqrs_commands_total", command="deposit", status="201") == done + 2
    assert counted("cqrs_idempotency_replays_total", command="deposit") == replays + 1
    assert counted("cqrs_commands_total", command="withdraw", status="409") == refused + 1
    metrics = (await client.get("/metrics")).text
    assert 'cqrs_commands_total{command="deposit",status="201"}' in metrics
