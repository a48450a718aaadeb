"""The fault proxy itself, against a local echo server: each mode does what the scenarios rely on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from devstack.ports import free_port
from tests.fault.proxy import FaultProxy

pytestmark = pytest.mark.fault


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    port = free_port()
    server = await asyncio.start_server(_echo, "127.0.0.1", port)
    fault_proxy = FaultProxy(port, "echo")
    await asyncio.to_thread(fault_proxy.start)
    try:
        yield fault_proxy
    finally:
        await asyncio.to_thread(fault_proxy.stop)
        server.close()


async def _round_trip(port: int, payload: bytes, seconds: float = 2.0) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), seconds)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), seconds)
    finally:
        writer.close()


async def _mode_applied(proxy: FaultProxy, mode: str) -> None:
    deadline = time.monotonic() + 2
    while proxy.mode != mode:
        assert time.monotonic() < deadline, f"the proxy never switched to {mode}"
        await asyncio.sleep(0.01)  # the switch runs on the proxy's own loop: polled with a deadline


async def test_pass_forwards_both_ways(proxy: FaultProxy) -> None:
    assert await _round_trip(proxy.port, b"hello") == b"hello"


async def test_latency_delays_each_way(proxy: FaultProxy) -> None:
    proxy.set_mode("latency", 0.2)
    await _mode_applied(proxy, "latency")
    started = time.monotonic()
    assert await _round_trip(proxy.port, b"slow") == b"slow"
    assert time.monotonic() - started >= 0.4  # 0.2 s there and 0.2 s back


async def test_blackhole_answers_nothing_then_delivers_once_healed(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    proxy.set_mode("blackhole")
    await _mode_applied(proxy, "blackhole")
    writer.write(b"anyone?")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(7), 0.5)
    with pytest.raises(TimeoutError):
        await _round_trip(proxy.port, b"new", seconds=0.5)  # a new connection hears nothing either
    proxy.set_mode("pass")
    assert await asyncio.wait_for(reader.readexactly(7), 2) == b"anyone?"
    writer.close()


async def test_reset_aborts_open_and_new_connections(proxy: FaultProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    proxy.set_mode("reset")
    await _mode_applied(proxy, "reset")
    writer.write(b"x")
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(reader.readexactly(1), 2)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await _round_trip(proxy.port, b"y")
    proxy.set_mode("pass")
    await _mode_applied(proxy, "pass")
    assert await _round_trip(proxy.port, b"back") == b"back"
