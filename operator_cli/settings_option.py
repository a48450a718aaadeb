"""Loading settings in a CLI command: a bad value is a clean error, not a traceback."""

from __future__ import annotations

import os
from typing import TypeVar

import click
import msgspec

from shared.observability.logging import configure_logging
from shared.settings import ProcessSettings, SettingsError, load_settings

SettingsT = TypeVar("SettingsT", bound=msgspec.Struct)


def settings_or_exit(cls: type[SettingsT]) -> SettingsT:
    try:
        settings = load_settings(cls, os.environ)
    except SettingsError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc
    if isinstance(settings, ProcessSettings):
        configure_logging(settings.log_level, settings.log_format)
    return settings
