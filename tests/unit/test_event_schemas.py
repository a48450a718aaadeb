"""Events are the public contract: a type never changes incompatibly without a new schema version and
an upcaster (the record: tests/golden/event_schemas.json)."""

from __future__ import annotations

import pytest

from contexts.catalogue import REGISTRY
from tests.golden.event_schemas import current_schemas, incompatibilities, recorded_schemas

RECORD_COMMAND = "uv run python -m tests.golden.event_schemas"
CURRENT = current_schemas()
RECORDED = recorded_schemas()


@pytest.mark.parametrize("name", sorted(CURRENT))
def test_an_event_type_matches_its_record_or_moved_to_a_new_version_with_upcasters(name: str) -> None:
    version, schema = CURRENT[name]
    versions = RECORDED.get(name, {})
    assert versions, f"{name} is not recorded: run `{RECORD_COMMAND}`"
    latest = max(versions)
    assert version >= latest, f"{name}'s schema_version went down from {latest} to {version}"
    if version == latest and schema != versions[latest]:
        problems = incompatibilities(versions[latest], schema)
        assert not problems, (
            f"{name} v{version} changed incompatibly ({'; '.join(problems)}): give it schema_version "
            f"{version + 1} and register an upcaster from v{version}, then run `{RECORD_COMMAND}`"
        )
        pytest.fail(f"{name} v{version} changed compatibly: record it with `{RECORD_COMMAND}`")
    assert version in versions, f"{name} v{version} is new: record it with `{RECORD_COMMAND}`"
    for older in range(min(versions), version):
        assert REGISTRY.has_upcaster(name, older), f"{name} v{older} events cannot be read: no upcaster"


def test_incompatible_changes_are_told_apart_from_compatible_ones() -> None:
    old = {"properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a", "b"]}
    added_optional = {"properties": {**old["properties"], "c": {"type": "string"}}, "required": ["a", "b"]}
    assert incompatibilities(old, added_optional) == []
    added_required = {**added_optional, "required": ["a", "b", "c"]}
    assert incompatibilities(old, added_required) == [
        "field 'c' is required, and old events lack it (give it a default)"
    ]
    renamed = {"properties": {"a": {"type": "string"}, "bb": {"type": "integer"}}, "required": ["a", "bb"]}
    assert "field 'b' removed or renamed" in incompatibilities(old, renamed)
    retyped = {"properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a", "b"]}
    assert incompatibilities(old, retyped)[0].startswith("field 'b' changed")
