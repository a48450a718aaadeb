"""The event catalogue: every context's event types in the one registry."""

from __future__ import annotations

from contexts.identity import events as identity_events
from contexts.ledger import events as ledger_events
from shared.eventsourcing.registry import EventRegistry


def build_registry() -> EventRegistry:
    registry = EventRegistry()
    for context in (ledger_events, identity_events):
        for cls in context.EVENT_TYPES:
            registry.register(cls, context=context.CONTEXT, aggregate=context.AGGREGATE)
        for (name, from_version), upcaster in context.UPCASTERS.items():
            registry.register_upcaster(name, from_version, upcaster)
    return registry


REGISTRY = build_registry()
