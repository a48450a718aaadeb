"""The JSON schema of every event type at every schema version it has had, as a golden file.

    uv run python -m tests.golden.event_schemas    # record the current versions' schemas

tests/unit/test_event_schemas.py compares the code's types with this record:
a type whose schema changed at the same version fails, and a new version
needs an upcaster from each older one. Recording is a deliberate step: run it
only for a compatible change (a new field with a default) or a new version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import msgspec

from contexts.catalogue import REGISTRY

RECORD: Final = Path(__file__).with_name("event_schemas.json")
Schema = dict[str, Any]


def current_schemas() -> dict[str, tuple[int, Schema]]:
    """Each registered type's schema version and JSON schema (its own properties and required fields)."""
    found: dict[str, tuple[int, Schema]] = {}
    for entry in REGISTRY.types:
        _, components = msgspec.json.schema_components([entry.cls])
        schema = components[entry.cls.__name__]
        found[entry.name] = (
            entry.schema_version,
            {k: schema[k] for k in ("properties", "required") if k in schema},
        )
    return found


def recorded_schemas() -> dict[str, dict[int, Schema]]:
    raw: dict[str, dict[str, Schema]] = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    return {
        name: {int(version): schema for version, schema in versions.items()} for name, versions in raw.items()
    }


def incompatibilities(old: Schema, new: Schema) -> list[str]:
    """Why events written with `old` would not decode as `new` (empty when they would)."""
    problems = []
    old_properties, new_properties = old.get("properties", {}), new.get("properties", {})
    for name, schema in old_properties.items():
        if name not in new_properties:
            problems.append(f"field {name!r} removed or renamed")
        elif new_properties[name] != schema:
            problems.append(f"field {name!r} changed from {schema} to {new_properties[name]}")
    for name in set(new.get("required", [])) - set(old.get("required", [])):
        problems.append(f"field {name!r} is required, and old events lack it (give it a default)")
    return problems


def record() -> None:
    recorded = recorded_schemas()
    for name, (version, schema) in current_schemas().items():
        recorded.setdefault(name, {})[version] = schema
    ordered = {
        name: {str(version): recorded[name][version] for version in sorted(recorded[name])}
        for name in sorted(recorded)
    }
    RECORD.write_text(json.dumps(ordered, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    record()
    print(f"recorded {RECORD}")
