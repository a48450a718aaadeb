"""The batch plan: which delivered events apply, which versions come from the store, which are duplicates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from contexts.catalogue import REGISTRY
from projectors.applier import StreamState, plan
from projectors.envelope import Envelope, from_message
from projectors.runner import subject_filter

NOW = datetime(2026, 11, 24, tzinfo=UTC)
A = uuid.UUID(int=1)
B = uuid.UUID(int=2)


def event(stream: uuid.UUID, version: int, position: int, *, recorded: bool = True) -> Envelope:
    return Envelope(
        global_position=position,
        event_id=uuid.uuid4(),
        stream_id=stream,
        stream_type="account",
        version=version,
        event_type="AccountClosed",
        schema_version=1,
        recorded_at=NOW if recorded else None,
        data=b"{}",
        event=None,
    )


def versions(events: list[Envelope]) -> list[tuple[uuid.UUID, int]]:
    return sorted((e.stream_id, e.version) for e in events)


def test_new_consecutive_versions_apply_as_delivered() -> None:
    fresh, missing, skipped = plan([event(A, 1, 1), event(A, 2, 2), event(B, 1, 3)], {})
    assert versions(fresh) == sorted([(A, 1), (A, 2), (B, 1)])
    assert missing == {}
    assert skipped == 0


def test_versions_at_or_below_the_applied_one_are_duplicates() -> None:
    delivered = [event(A, 1, 1), event(A, 2, 2), event(A, 3, 3), event(A, 3, 3)]
    fresh, missing, skipped = plan(delivered, {A: StreamState(2, False)})
    assert versions(fresh) == [(A, 3)]
    assert missing == {}
    assert skipped == 3


def test_a_gap_is_read_from_the_store_from_the_first_missing_version() -> None:
    fresh, missing, skipped = plan([event(A, 2, 2), event(A, 5, 5)], {A: StreamState(1, False)})
    assert versions(fresh) == [(A, 2)]
    assert missing == {A: (3, 5)}
    assert skipped == 0


def test_reordered_delivery_is_applied_in_version_order_without_the_store() -> None:
    fresh, missing, _ = plan([event(A, 3, 3), event(A, 1, 1), event(A, 2, 2)], {})
    assert sorted(e.version for e in fresh) == [1, 2, 3]
    assert missing == {}


def test_an_event_without_its_recorded_time_is_read_from_the_store() -> None:
    _, missing, _ = plan([event(A, 1, 1), event(A, 2, 2, recorded=False)], {})
    assert missing == {A: (2, 2)}


def test_a_message_becomes_an_envelope_with_its_headers() -> None:
    account = uuid.uuid4()
    headers = {
        "Nats-Msg-Id": str(uuid.uuid4()),
        "Event-Type": "AccountClosed",
        "Event-Schema-Version": "1",
        "Stream-Id": str(account),
        "Stream-Type": "account",
        "Stream-Version": "4",
        "Global-Position": "42",
        "Recorded-At": NOW.isoformat(),
    }
    envelope = from_message(
        f"events.ledger.account.{account}", headers, f'{{"account_id":"{account}"}}'.encode(), REGISTRY
    )
    assert (envelope.stream_id, envelope.version, envelope.global_position) == (account, 4, 42)
    assert envelope.recorded_at == NOW
    assert envelope.event is not None
    assert envelope.decode_error is None


def test_an_undecodable_event_carries_its_error_instead_of_failing_the_batch() -> None:
    account = uuid.uuid4()
    headers = {
        "Nats-Msg-Id": str(uuid.uuid4()),
        "Event-Type": "MoneyDeposited",
        "Event-Schema-Version": "2",
        "Stream-Id": str(account),
        "Stream-Version": "2",
        "Global-Position": "7",
    }
    envelope = from_message(f"events.ledger.account.{account}", headers, b"{}", REGISTRY)
    assert envelope.event is None
    assert envelope.decode_error is not None
    assert "newer" in envelope.decode_error
    # An older relay sent no Stream-Type: the subject names the aggregate.
    assert envelope.stream_type == "account"
    assert envelope.recorded_at is None


def test_the_subject_filter_is_the_narrowest_covering_the_streams() -> None:
    assert subject_filter("events", REGISTRY, frozenset({"account"})) == "events.ledger.account.>"
    assert subject_filter("events", REGISTRY, frozenset({"user"})) == "events.identity.user.>"
    assert subject_filter("events", REGISTRY, frozenset({"user", "account"})) == "events.>"
