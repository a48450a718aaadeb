"""The event registry: every ledger event is registered, encodes stably and stays readable."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import msgspec
import pytest

from contexts.catalogue import REGISTRY
from contexts.ledger.events import (
    EVENT_TYPES,
    AccountClosed,
    AccountOpened,
    LedgerEvent,
    MoneyDeposited,
    MoneyWithdrawn,
    TransferReceived,
    TransferSent,
)
from shared.eventsourcing.registry import EventRegistry, UnknownEventType

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "events"
GOLDEN_NAME = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9]*)\.v(?P<version>[1-9][0-9]*)\.json$")

ACCOUNT = UUID("0192f0a1-3c5e-7b2a-9d41-6f8e2a1b7c01")
OTHER = UUID("0192f0a1-3c5e-7b2a-9d41-6f8e2a1b7d02")
OWNER = UUID("0192f0a1-3c5e-7b2a-9d41-6f8e2a1b7e99")
ENTRY = UUID("0192f0a1-4a10-7c33-8e02-1d5b9f3a6e10")
TRANSFER = UUID("0192f0a1-6c32-7e55-8a24-3f7db05c8032")

SAMPLES: dict[type[LedgerEvent], LedgerEvent] = {
    AccountOpened: AccountOpened(account_id=ACCOUNT, owner_id=OWNER, currency="EUR", name="Household budget"),
    MoneyDeposited: MoneyDeposited(account_id=ACCOUNT, entry_id=ENTRY, amount=250_000, reference="Salary"),
    MoneyWithdrawn: MoneyWithdrawn(account_id=ACCOUNT, entry_id=ENTRY, amount=89_950, reference="Rent"),
    TransferSent: TransferSent(
        account_id=ACCOUNT,
        transfer_id=TRANSFER,
        counterparty_account_id=OTHER,
        amount=4_200,
        reference="Dinner",
    ),
    TransferReceived: TransferReceived(
        account_id=OTHER,
        transfer_id=TRANSFER,
        counterparty_account_id=ACCOUNT,
        amount=4_200,
        reference="Dinner",
    ),
    AccountClosed: AccountClosed(account_id=ACCOUNT),
}


def concrete_ledger_events() -> set[type[LedgerEvent]]:
    """Every class below LedgerEvent that names its own event type."""
    found: set[type[LedgerEvent]] = set()
    pending = list(LedgerEvent.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "event_type" in vars(cls):
            found.add(cls)
    return found


def golden_files() -> list[Path]:
    return sorted(GOLDEN.iterdir())


def sample_ids(cls: type[LedgerEvent]) -> str:
    return cls.event_type


# --- what is registered -----------------------------------------------------


def test_every_ledger_event_class_is_listed_and_registered() -> None:
    """EVENT_TYPES lists exactly the concrete LedgerEvent classes, each registered under its name."""
    assert len(EVENT_TYPES) == len(set(EVENT_TYPES))
    assert set(EVENT_TYPES) == concrete_ledger_events()
    for cls in EVENT_TYPES:
        assert REGISTRY.by_name(cls.event_type).cls is cls
    assert {entry.cls for entry in REGISTRY.types if entry.context == "ledger"} == set(EVENT_TYPES)


def test_every_registered_type_is_fully_described() -> None:
    """Each registered type has a unique name, a schema version of at least 1, a context and an aggregate."""
    entries = list(REGISTRY.types)
    names = [entry.name for entry in entries]

    assert len(names) == len(set(names))
    for entry in entries:
        assert entry.name
        assert entry.name == getattr(entry.cls, "event_type")  # noqa: B009 - a ClassVar
        assert entry.schema_version >= 1
        assert entry.schema_version == getattr(entry.cls, "schema_version")  # noqa: B009
        assert entry.context
        assert entry.aggregate


def test_a_type_cannot_be_registered_twice() -> None:
    """Registering a second type under a name already taken is an error, not a silent overwrite."""
    registry = EventRegistry()
    registry.register(AccountOpened, context="ledger", aggregate="account")

    with pytest.raises(ValueError, match="AccountOpened"):
        registry.register(AccountOpened, context="ledger", aggregate="account")


def test_there_is_a_sample_of_every_registered_ledger_event() -> None:
    """The round-trip samples below cover every ledger event type, so a new type needs a sample."""
    assert set(SAMPLES) == set(EVENT_TYPES)
    for cls, sample in SAMPLES.items():
        assert type(sample) is cls


# --- encoding and decoding --------------------------------------------------


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=sample_ids)
def test_encoding_then_decoding_gives_back_the_same_event(cls: type[LedgerEvent]) -> None:
    """An event decoded from its own encoding equals the original."""
    event = SAMPLES[cls]
    entry = REGISTRY.type_of(event)

    assert REGISTRY.decode(entry.name, entry.schema_version, REGISTRY.encode(event)) == event


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=sample_ids)
def test_ids_encode_as_strings_and_amounts_as_integers(cls: type[LedgerEvent]) -> None:
    """The wire form is plain JSON: UUIDs as their canonical strings, amounts as integers."""
    payload: dict[str, Any] = msgspec.json.decode(REGISTRY.encode(SAMPLES[cls]))

    assert payload["account_id"] == str(SAMPLES[cls].account_id)
    if "amount" in payload:
        assert type(payload["amount"]) is int


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=sample_ids)
def test_an_unknown_extra_field_is_ignored_when_decoding(cls: type[LedgerEvent]) -> None:
    """A consumer still reads an event that a newer producer gave an extra field."""
    event = SAMPLES[cls]
    payload: dict[str, Any] = msgspec.json.decode(REGISTRY.encode(event))
    payload["added_by_a_newer_version"] = {"nested": [1, 2, 3]}

    decoded = REGISTRY.decode(cls.event_type, cls.schema_version, msgspec.json.encode(payload))

    assert decoded == event


def test_an_unknown_event_name_is_refused() -> None:
    """Decoding a type name the code does not know raises UnknownEventType."""
    with pytest.raises(UnknownEventType):
        REGISTRY.decode("AccountTeleported", 1, b'{"account_id": "0192f0a1-3c5e-7b2a-9d41-6f8e2a1b7c01"}')


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=sample_ids)
def test_a_schema_version_newer_than_the_code_is_refused(cls: type[LedgerEvent]) -> None:
    """Decoding a version from the future raises UnknownEventType instead of guessing."""
    with pytest.raises(UnknownEventType, match="newer"):
        REGISTRY.decode(cls.event_type, cls.schema_version + 1, REGISTRY.encode(SAMPLES[cls]))


def test_an_encoded_event_is_published_under_its_context_aggregate_and_id() -> None:
    """The subject of an account's event is <prefix>.ledger.account.<account id>."""
    event = SAMPLES[MoneyDeposited]

    assert REGISTRY.subject("events", "account", str(event.account_id)) == f"events.ledger.account.{ACCOUNT}"


# --- golden samples ---------------------------------------------------------


def test_every_golden_file_is_named_after_a_type_and_version() -> None:
    """Each golden sample is named <EventType>.v<schema_version>.json."""
    files = golden_files()

    assert files
    for path in files:
        assert GOLDEN_NAME.match(path.name), path.name


def test_every_registered_type_has_a_golden_sample_of_its_current_version() -> None:
    """Adding an event type or a schema version without a golden sample fails here."""
    present = {path.name for path in golden_files()}

    for entry in REGISTRY.types:
        assert f"{entry.name}.v{entry.schema_version}.json" in present


@pytest.mark.parametrize("path", golden_files(), ids=lambda path: path.name)
def test_a_golden_sample_decodes_into_its_registered_class(path: Path) -> None:
    """Every stored sample, of any version ever published, still decodes into the current class."""
    match = GOLDEN_NAME.match(path.name)
    assert match, path.name
    name, version = match["name"], int(match["version"])
    data = path.read_bytes()

    decoded = REGISTRY.decode(name, version, data)

    entry = REGISTRY.by_name(name)
    assert type(decoded) is entry.cls
    if version == entry.schema_version:
        # Nothing in the sample was dropped or changed: a field removed from the class or
        # changed in type would decode silently (unknown fields are ignored) but not re-encode.
        golden: dict[str, Any] = msgspec.json.decode(data)
        encoded: dict[str, Any] = msgspec.json.decode(REGISTRY.encode(decoded))
        assert {key: encoded.get(key) for key in golden} == golden


# --- upcasting --------------------------------------------------------------


class DemoV2(msgspec.Struct, frozen=True, kw_only=True):
    """A test-only event whose version 2 added a label."""

    event_type: ClassVar[str] = "Demo"
    schema_version: ClassVar[int] = 2
    demo_id: UUID
    label: str


DEMO_ID = UUID("0192f0a1-7d43-7f66-9b35-4a8ec16d9143")


def demo_registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(DemoV2, context="demo", aggregate="thing")
    registry.register_upcaster("Demo", 1, lambda payload: {**payload, "label": "unlabelled"})
    return registry


def test_an_upcaster_turns_an_old_version_into_the_current_class() -> None:
    """A v1 payload is upcast on read and decodes into the v2 class."""
    decoded = demo_registry().decode("Demo", 1, f'{{"demo_id": "{DEMO_ID}"}}'.encode())

    assert decoded == DemoV2(demo_id=DEMO_ID, label="unlabelled")


def test_the_current_version_decodes_without_upcasting() -> None:
    """A payload already at the current version is decoded as it is."""
    data = f'{{"demo_id": "{DEMO_ID}", "label": "kept"}}'.encode()

    assert demo_registry().decode("Demo", 2, data) == DemoV2(demo_id=DEMO_ID, label="kept")


def test_an_old_version_without_an_upcaster_is_refused() -> None:
    """An old version with no upcaster path to the current one raises UnknownEventType."""
    registry = EventRegistry()
    registry.register(DemoV2, context="demo", aggregate="thing")

    with pytest.raises(UnknownEventType, match="no upcaster"):
        registry.decode("Demo", 1, f'{{"demo_id": "{DEMO_ID}"}}'.encode())
