"""The one event registry: every event type, its codec, its subject and its upcasters.

Events are the public contract. Each type has a stable name and a schema
version, kept as class variables, so renaming a class never changes what is
stored or published. An older version of a type is turned into the current
one by an upcaster when read, so old events stay readable forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import msgspec

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class Event(Protocol):
    event_type: ClassVar[str]
    schema_version: ClassVar[int]


class UnknownEventType(LookupError):
    """A stored event names a type or version this code does not know."""


@dataclass(frozen=True, slots=True)
class EventType:
    cls: type[msgspec.Struct]
    name: str
    schema_version: int
    context: str
    aggregate: str
    decoder: msgspec.json.Decoder[Any]


@dataclass
class EventRegistry:
    """Maps names to types and back, and holds the codec built once for each."""

    _by_name: dict[str, EventType] = field(default_factory=dict)
    _by_class: dict[type[msgspec.Struct], EventType] = field(default_factory=dict)
    # (name, from_version) -> function giving the dict of from_version + 1
    _upcasters: dict[tuple[str, int], Upcaster] = field(default_factory=dict)
    _encoder: msgspec.json.Encoder = field(default_factory=msgspec.json.Encoder)

    def register(self, cls: type[msgspec.Struct], *, context: str, aggregate: str) -> None:
        name: str = getattr(cls, "event_type")  # noqa: B009 - a ClassVar the Protocol promises
        version: int = getattr(cls, "schema_version")  # noqa: B009
        if name in self._by_name:
            raise ValueError(f"event type {name} registered twice")
        entry = EventType(cls, name, version, context, aggregate, msgspec.json.Decoder(cls))
        self._by_name[name] = entry
        self._by_class[cls] = entry

    def register_upcaster(self, name: str, from_version: int, upcaster: Upcaster) -> None:
        self._upcasters[(name, from_version)] = upcaster

    def has_upcaster(self, name: str, from_version: int) -> bool:
        """Whether version `from_version` of `name` is turned into the next one when read."""
        return (name, from_version) in self._upcasters

    def type_of(self, event: msgspec.Struct) -> EventType:
        try:
            return self._by_class[type(event)]
        except KeyError:
            raise UnknownEventType(type(event).__name__) from None

    def by_name(self, name: str) -> EventType:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownEventType(name) from None

    @property
    def types(self) -> Iterable[EventType]:
        return self._by_name.values()

    def encode(self, event: msgspec.Struct) -> bytes:
        return self._encoder.encode(event)

    def decode(self, name: str, schema_version: int, data: bytes | str) -> msgspec.Struct:
        entry = self.by_name(name)
        if schema_version == entry.schema_version:
            decoded: msgspec.Struct = entry.decoder.decode(data)
            return decoded
        if schema_version > entry.schema_version:
            raise UnknownEventType(
                f"{name} v{schema_version} is newer than this code (v{entry.schema_version})"
            )
        payload: dict[str, Any] = msgspec.json.decode(data)
        for version in range(schema_version, entry.schema_version):
            upcaster = self._upcasters.get((name, version))
            if upcaster is None:
                raise UnknownEventType(f"no upcaster for {name} v{version}")
            payload = upcaster(payload)
        converted: msgspec.Struct = msgspec.convert(payload, entry.cls)
        return converted

    def subject(self, prefix: str, stream_type: str, stream_id: str) -> str:
        """`<prefix>.<context>.<aggregate>.<id>`, from the stream alone: publishing
        never needs to know the event's type (a newer type an older relay does
        not know still goes out)."""
        for entry in self._by_name.values():
            if entry.aggregate == stream_type:
                return f"{prefix}.{entry.context}.{stream_type}.{stream_id}"
        raise UnknownEventType(f"no context has an aggregate {stream_type!r}")
