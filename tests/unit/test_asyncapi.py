"""docs/asyncapi.yaml: generated from the event types, complete, and never out of date."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from contexts.catalogue import REGISTRY
from operator_cli.docs import asyncapi_yaml

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMMITTED.read_text())
    return loaded


def test_the_committed_document_is_what_the_code_generates() -> None:
    assert COMMITTED.read_text() == asyncapi_yaml(), (
        "docs/asyncapi.yaml is out of date: run `uv run cqrs docs asyncapi --output docs/asyncapi.yaml`"
    )


def test_every_event_type_is_a_message_with_its_schema_version_and_payload() -> None:
    doc = document()
    messages = doc["components"]["messages"]
    schemas = doc["components"]["schemas"]
    assert doc["asyncapi"].startswith("3.")
    assert {entry.name for entry in REGISTRY.types} == set(messages)
    for entry in REGISTRY.types:
        message = messages[entry.name]
        assert message["x-schema-version"] == entry.schema_version
        payload = schemas[message["payload"]["$ref"].rsplit("/", 1)[-1]]
        assert set(payload["properties"]) >= set(entry.cls.__struct_fields__)
        assert message["headers"]["$ref"] == "#/components/schemas/EventHeaders"
    assert {"Nats-Msg-Id", "Event-Type", "Event-Schema-Version"} <= set(schemas["EventHeaders"]["required"])


def test_each_channel_is_the_subject_the_relay_publishes_to() -> None:
    doc = document()
    for entry in REGISTRY.types:
        channel = doc["channels"][f"{entry.context}-{entry.aggregate}"]
        assert channel["address"].replace("{id}", "x") == REGISTRY.subject("events", entry.aggregate, "x")
        assert channel["messages"][entry.name] == {"$ref": f"#/components/messages/{entry.name}"}
    for section in (
        doc["channels"],
        doc["operations"],
        doc["components"]["messages"],
        doc["components"]["schemas"],
    ):
        assert all(KEY.match(key) for key in section)
    for operation in doc["operations"].values():
        assert operation["action"] == "receive"
        assert operation["channel"]["$ref"].removeprefix("#/channels/") in doc["channels"]
