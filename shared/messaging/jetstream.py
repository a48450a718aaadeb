"""The JetStream stream that carries the events, created and kept up to date from code."""

from __future__ import annotations

from typing import Final

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.errors import NotFoundError

# Long enough to cover a relay restart that re-publishes what it had in flight.
DUPLICATE_WINDOW_SECONDS: Final = 300.0


def stream_config(name: str, subject_prefix: str, *, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=name,
        subjects=[f"{subject_prefix}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        num_replicas=replicas,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> StreamInfo:
    """Create the stream, or update it in place when its configuration changed."""
    try:
        info = await js.stream_info(config.name or "")
    except NotFoundError:
        return await js.add_stream(config)
    current = info.config
    if current.subjects != config.subjects or current.duplicate_window != config.duplicate_window:
        return await js.update_stream(config)
    return info
