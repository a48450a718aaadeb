"""The JetStream stream that carries the events, created and kept up to date from code."""

from __future__ import annotations

from typing import Final

import nats
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.errors import NotFoundError

from shared.settings import CommonSettings

# Long enough to cover a relay restart that re-publishes what it had in flight.
DUPLICATE_WINDOW_SECONDS: Final = 300.0


def stream_config(
    name: str,
    subject_prefix: str,
    *,
    replicas: int = 1,
    max_age_seconds: float = 0,
    max_bytes: int = -1,
) -> StreamConfig:
    """The stream's configuration; 0 / -1 limits mean unlimited (PostgreSQL keeps everything anyway)."""
    return StreamConfig(
        name=name,
        subjects=[f"{subject_prefix}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        num_replicas=replicas,
        max_age=max_age_seconds,
        max_bytes=max_bytes,
    )


def stream_config_from(settings: CommonSettings) -> StreamConfig:
    return stream_config(
        settings.nats_stream,
        settings.nats_subject_prefix,
        replicas=settings.nats_stream_replicas,
        max_age_seconds=settings.nats_stream_max_age_seconds,
        max_bytes=settings.nats_stream_max_bytes,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> StreamInfo:
    """Create the stream, or update it in place when its configuration changed."""
    try:
        info = await js.stream_info(config.name or "")
    except NotFoundError:
        return await js.add_stream(config)
    current = info.config
    if (
        current.subjects != config.subjects
        or current.duplicate_window != config.duplicate_window
        or current.discard != config.discard
        or (current.num_replicas or 1) != (config.num_replicas or 1)
        or (current.max_age or 0) != (config.max_age or 0)
        or (current.max_bytes or -1) != (config.max_bytes or -1)
    ):
        return await js.update_stream(config)
    return info


async def ensure_stream_once(settings: CommonSettings) -> StreamInfo:
    """Connect, set the stream up as the settings say, disconnect: for one-shot tools."""
    client = await nats.connect(
        servers=list(settings.nats_urls),
        connect_timeout=settings.nats_connect_timeout_seconds,
        max_reconnect_attempts=3,
    )
    try:
        return await ensure_stream(client.jetstream(), stream_config_from(settings))
    finally:
        await client.close()
