"""Settings of the command API process."""

from __future__ import annotations

from typing import Annotated

import msgspec

from shared.settings import HttpApiSettings
from shared.settings.base import Port


class CommandApiSettings(HttpApiSettings, frozen=True, kw_only=True):
    command_api_port: Port = 8000
    idempotency_ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=7 * 24 * 3600)] = 24 * 3600
    require_idempotency_key: bool = False
    command_max_attempts: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10
