"""Typed settings read once from `CQRS_*` environment variables."""

from shared.settings.base import (
    CommonSettings,
    DatabaseSettings,
    HttpApiSettings,
    ProcessSettings,
)
from shared.settings.loader import SettingsError, env_var_name, load_settings
from shared.settings.secret import Secret

__all__ = [
    "CommonSettings",
    "DatabaseSettings",
    "HttpApiSettings",
    "ProcessSettings",
    "Secret",
    "SettingsError",
    "env_var_name",
    "load_settings",
]
