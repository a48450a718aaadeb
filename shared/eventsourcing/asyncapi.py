"""The AsyncAPI 3 document of the events, generated from the registry's msgspec types.

Downstream consumers read it to subscribe: one channel per aggregate
(`<prefix>.<context>.<aggregate>.{id}`), the messages it carries with their
headers (design.md §4) and payload schemas, and each type's schema version.
`cqrs docs asyncapi` writes it; docs/asyncapi.yaml is the committed copy, and
a test fails when it is out of date.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from shared.eventsourcing.registry import EventRegistry, EventType

ASYNCAPI_VERSION: Final = "3.0.0"
SCHEMA_REF: Final = "#/components/schemas/{name}"

_HEADERS: Final = {
    "Nats-Msg-Id": ("The event id (uuid): JetStream drops a copy published again within its window.", True),
    "Event-Type": ("The event type, the message's name below.", True),
    "Event-Schema-Version": ("The payload's schema version (an integer, as text).", True),
    "Stream-Id": ("The aggregate's id (uuid), also the subject's last token.", True),
    "Stream-Type": ("The aggregate type, also the subject's third token.", True),
    "Stream-Version": ("The event's version in its stream: 1, 2, ... with no gap.", True),
    "Global-Position": ("The event's position in the whole store: increasing, gaps possible.", True),
    "Recorded-At": ("When the event was stored (ISO 8601, UTC).", True),
    "Correlation-Id": ("The id of the request that started the work (for tracing a flow).", False),
    "Causation-Id": ("The id of the request that caused this event.", False),
    "traceparent": ("W3C trace context of the request, when it carried one.", False),
}


def _headers_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": "string", "description": text} for name, (text, _) in _HEADERS.items()},
        "required": [name for name, (_, required) in _HEADERS.items() if required],
    }


def _channel_key(entry: EventType) -> str:
    # Component and channel keys are [A-Za-z0-9_-] in AsyncAPI 3.
    return f"{entry.context}-{entry.aggregate}"


def asyncapi_document(
    registry: EventRegistry, *, version: str, subject_prefix: str = "events"
) -> dict[str, Any]:
    """The document as plain data, ordered so that its YAML is stable from run to run."""
    types = sorted(registry.types, key=lambda entry: (entry.context, entry.aggregate, entry.name))
    _, schemas = msgspec.json.schema_components([entry.cls for entry in types], ref_template=SCHEMA_REF)
    schemas = {name: schemas[name] for name in sorted(schemas)}
    schemas["EventHeaders"] = _headers_schema()
    messages = {
        entry.name: {
            "name": entry.name,
            "title": entry.name,
            "summary": f"{entry.context} {entry.aggregate} event, schema version {entry.schema_version}.",
            "contentType": "application/json",
            "headers": {"$ref": SCHEMA_REF.format(name="EventHeaders")},
            "payload": {"$ref": SCHEMA_REF.format(name=entry.cls.__name__)},
            "x-schema-version": entry.schema_version,
        }
        for entry in types
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for entry in types:
        key = _channel_key(entry)
        channel = channels.setdefault(
            key,
            {
                "address": f"{subject_prefix}.{entry.context}.{entry.aggregate}.{{id}}",
                "title": f"{entry.context} {entry.aggregate} events",
                "description": (
                    f"Every event of one {entry.aggregate}, in its stream's order; subscribe to "
                    f"`{subject_prefix}.{entry.context}.{entry.aggregate}.*` for all of them."
                ),
                "parameters": {"id": {"description": f"The {entry.aggregate}'s id (uuid)."}},
                "messages": {},
            },
        )
        channel["messages"][entry.name] = {"$ref": f"#/components/messages/{entry.name}"}
    for key in channels:
        operations[f"receive-{key}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": f"Consume the {key.replace('-', ' ')} events (a durable JetStream consumer).",
            "messages": [{"$ref": f"#/channels/{key}/messages/{name}"} for name in channels[key]["messages"]],
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "CQRS platform events",
            "version": version,
            "description": (
                "The events the platform publishes on NATS JetStream (stream EVENTS), the public "
                "contract for downstream consumers: docs/events.md explains delivery (at least once, "
                "in order per aggregate, deduplicate by Nats-Msg-Id) and schema versions."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "The deployment's NATS (CQRS_NATS_URLS); events are in the JetStream stream.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
