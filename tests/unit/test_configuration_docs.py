"""docs/configuration.md documents every setting a process reads."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from command_api.settings import CommandApiSettings
from projectors.settings import ProjectorSettings
from query_api.settings import QueryApiSettings
from relay.settings import RelaySettings
from shared.settings import DatabaseSettings, env_var_name

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
SETTINGS_CLASSES = [DatabaseSettings, CommandApiSettings, QueryApiSettings, RelaySettings, ProjectorSettings]


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda cls: cls.__name__)
def test_every_setting_is_documented(cls: type[msgspec.Struct]) -> None:
    """Each field's CQRS_* variable appears in docs/configuration.md."""
    text = DOC.read_text()
    missing = [
        env_var_name(field.name)
        for field in msgspec.structs.fields(cls)
        if f"`{env_var_name(field.name)}`" not in text
    ]
    assert missing == []
