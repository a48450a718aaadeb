"""The event catalogue: every context's event types in the one registry."""

from __future__ import annotations

from contexts.ledger import events as ledger_events
from shared.eventsourcing.registry import EventRegistry


def build_registry() -> EventRegistry:
    registry = EventRegistry()
    for cls in ledger_events.EVENT_TYPES:
        registry.register(cls, context=ledger_events.CONTEXT, aggregate=ledger_events.AGGREGATE)
    return registry


REGISTRY = build_registry()
