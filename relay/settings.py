"""Settings of the relay process."""

from __future__ import annotations

from typing import Annotated

import msgspec

from shared.settings import CommonSettings
from shared.settings.base import Seconds


class RelaySettings(CommonSettings, frozen=True, kw_only=True):
    relay_batch_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000
    relay_max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 256
    relay_publish_timeout_seconds: Seconds = 5.0
    relay_poll_interval_seconds: Seconds = 1.0
    relay_standby_check_seconds: Seconds = 1.0
    idempotency_sweep_interval_seconds: Seconds = 60.0
    # Touched on every round, active or standing by: a container health check
    # reads its age (until the relay serves /health on a port of its own).
    relay_heartbeat_path: str | None = None
    # Health (`/health/live`, `/health/ready` with the outbox's backlog) and `/metrics`, on
    # `CQRS_OPS_HOST`; 0: none.
    relay_ops_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9102
