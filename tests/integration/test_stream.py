"""The JetStream stream is created from code, idempotently."""

from __future__ import annotations

import nats
from nats.js.api import StorageType

from shared.messaging.jetstream import DUPLICATE_WINDOW_SECONDS, ensure_stream, stream_config
from tests.support.isolation import StreamNames


async def test_ensure_stream_creates_then_leaves_it_alone(nats_url: str, stream_names: StreamNames) -> None:
    """The first call creates a file-backed stream with a dedupe window; the second changes nothing."""
    client = await nats.connect(servers=[nats_url], connect_timeout=5)
    try:
        js = client.jetstream()
        config = stream_config(stream_names.stream, stream_names.subject_prefix)
        created = await ensure_stream(js, config)
        again = await ensure_stream(js, config)
        ack = await js.publish(
            f"{stream_names.subject_prefix}.ledger.account.1", b"{}", headers={"Nats-Msg-Id": "e1"}
        )
        duplicate = await js.publish(
            f"{stream_names.subject_prefix}.ledger.account.1", b"{}", headers={"Nats-Msg-Id": "e1"}
        )
    finally:
        await client.close()
    assert created.config.storage == StorageType.FILE
    assert created.config.subjects == [f"{stream_names.subject_prefix}.>"]
    assert created.config.duplicate_window == DUPLICATE_WINDOW_SECONDS
    assert again.created == created.created
    assert ack.duplicate is not True
    assert duplicate.duplicate is True
    assert duplicate.seq == ack.seq


async def test_ensure_stream_applies_a_changed_limit(nats_url: str, stream_names: StreamNames) -> None:
    """A new retention limit in the settings updates the existing stream in place."""
    client = await nats.connect(servers=[nats_url], connect_timeout=5)
    try:
        js = client.jetstream()
        await ensure_stream(js, stream_config(stream_names.stream, stream_names.subject_prefix))
        updated = await ensure_stream(
            js, stream_config(stream_names.stream, stream_names.subject_prefix, max_age_seconds=3600)
        )
    finally:
        await client.close()
    assert updated.config.max_age == 3600
