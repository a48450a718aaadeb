"""Settings of the command API process."""

from __future__ import annotations

from shared.settings import HttpApiSettings
from shared.settings.base import Port


class CommandApiSettings(HttpApiSettings, frozen=True, kw_only=True):
    command_api_port: Port = 8000
