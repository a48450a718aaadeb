"""`cqrs relay`: run the relay until SIGTERM or SIGINT, finishing the batch in flight."""

from __future__ import annotations

import asyncio
import signal

from relay.service import Relay
from relay.settings import RelaySettings


async def run_relay(settings: RelaySettings) -> None:
    relay = Relay(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, relay.stop.set)
    await relay.run()
