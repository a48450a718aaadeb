"""Settings of the projector process."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from shared.settings import CommonSettings, env_var_name
from shared.settings.base import Seconds


class ProjectorSettings(CommonSettings, frozen=True, kw_only=True):
    # Events fetched and committed together: one transaction per batch.
    projector_batch_size: Annotated[int, msgspec.Meta(ge=1, le=5_000)] = 500
    # How long one fetch waits for the first event; bounds how soon a stop is seen.
    projector_fetch_timeout_seconds: Seconds = 1.0
    # Attempts at an event that fails before it is parked (or halts its projection).
    projector_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 3
    projector_retry_delay_seconds: Seconds = 0.05
    # JetStream redelivers what is not acked in this time (a crashed projector's batch).
    projector_ack_wait_seconds: Seconds = 30.0
    # Fetches that find nothing for this long make the projector ask JetStream
    # whether events are waiting, and subscribe again if so (a subscription
    # can stall after a server restart).
    projector_stall_check_seconds: Seconds = 5.0
    # How often a halted projection checks whether an operator resumed it.
    projector_halt_poll_seconds: Seconds = 1.0
    # The durable consumer of projection NAME is `<prefix>NAME`.
    projector_consumer_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]*$")] = "projection-"
    # Touched after every fetch, idle or busy: a container health check reads its age.
    projector_heartbeat_path: str | None = None
    # Health (`/health/live`, `/health/ready` with each projection's lag) and `/metrics`, on
    # `CQRS_OPS_HOST`; 0: none. Several projector processes on one host need a port each.
    projector_ops_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9103
    # Tests only: kill this process with SIGKILL right before or right after a
    # batch commits, to prove recovery at exactly those points. Refused
    # outside the test profile.
    projector_crash_point: Literal["none", "before_commit", "after_commit"] = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.projector_crash_point != "none" and self.profile != "test":
            raise ValueError(f"{env_var_name('projector_crash_point')} is for the test profile only")
