"""Settings of an API whose every dependency is down: for tests of the HTTP edge that need no server."""

from __future__ import annotations

from typing import Any

from devstack.ports import free_port


def unreachable_settings() -> dict[str, Any]:
    """Settings fields pointing at free ports nobody listens on; the clients connect lazily, so
    the apps start anyway."""
    return {
        "profile": "test",
        "database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/none",
        "nats_urls": (f"nats://127.0.0.1:{free_port()}",),
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "database_connect_timeout_seconds": 0.5,
        "nats_connect_timeout_seconds": 0.2,
        "redis_timeout_seconds": 0.2,
        "health_check_timeout_seconds": 1.0,
    }
