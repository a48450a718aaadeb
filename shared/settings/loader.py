"""Builds a typed settings object from `CQRS_*` environment variables, once.

Each field `name` of a settings Struct is read from `CQRS_NAME`, or from the
file named by `CQRS_NAME_FILE` (Docker and Kubernetes secrets). Values are
converted by msgspec with the field's own type and constraints, so a bad value
fails with the variable's name in the message rather than deep in a request.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec

from shared.settings.secret import Secret

ENV_PREFIX: Final = "CQRS_"
FILE_SUFFIX: Final = "_FILE"

SettingsT = TypeVar("SettingsT", bound=msgspec.Struct)


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the variable."""


def env_var_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def load_settings(cls: type[SettingsT], environ: Mapping[str, str]) -> SettingsT:
    """Read every field of `cls` from `environ`; raise `SettingsError` naming the variable."""
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(cls):
        var = env_var_name(field.name)
        raw = _read_raw(var, environ)
        if raw is None:
            if field.required:
                raise SettingsError(f"{var} is required but not set")
            continue
        values[field.name] = _convert(var, raw, field.type)
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise SettingsError(str(exc)) from exc


def _read_raw(var: str, environ: Mapping[str, str]) -> str | None:
    file_var = var + FILE_SUFFIX
    if file_var not in environ:
        return environ.get(var)
    if var in environ:
        raise SettingsError(f"set either {var} or {file_var}, not both")
    path = Path(environ[file_var])
    try:
        # Secret files usually end with line breaks that are not part of the value.
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SettingsError(f"{file_var}: cannot read {path}: {exc.strerror}") from exc


def _convert(var: str, raw: str, field_type: Any) -> Any:
    value: Any = raw
    if _is_sequence_type(field_type):
        value = [item.strip() for item in raw.split(",") if item.strip()]
    elif _is_struct_type(field_type):
        # Structured settings (the rate-limit policies) are JSON objects.
        try:
            value = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise SettingsError(f"{var}: not valid JSON: {exc}") from exc
    try:
        return msgspec.convert(value, field_type, strict=False, dec_hook=_decode_custom)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"{var}: {exc}") from exc


def _is_sequence_type(field_type: Any) -> bool:
    origin = typing.get_origin(field_type)
    if origin is typing.Annotated:
        return _is_sequence_type(typing.get_args(field_type)[0])
    return origin in (tuple, list, frozenset)


def _is_struct_type(field_type: Any) -> bool:
    return isinstance(field_type, type) and issubclass(field_type, msgspec.Struct)


def _decode_custom(target: type, value: Any) -> Any:
    if target is Secret and isinstance(value, str):
        return Secret(value)
    raise NotImplementedError(f"no conversion to {target!r}")
