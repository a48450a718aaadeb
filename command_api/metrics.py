"""What the command API counts beyond the HTTP metrics: each command's outcome, and replays."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter

COMMANDS: Final = Counter(
    "cqrs_commands",
    "Commands that reached execution, by command (the route's handler) and the status answered: "
    "2xx done, 409 refused or conflicting, 422 a reused Idempotency-Key, and so on.",
    ["command", "status"],
)
REPLAYS: Final = Counter(
    "cqrs_idempotency_replays",
    "Answers replayed for a repeated Idempotency-Key (counted in cqrs_commands_total too).",
    ["command"],
)
