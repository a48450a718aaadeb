"""A TCP proxy in front of a dependency, to cut it off or slow it down on command.

Modes: `pass` forwards; `latency` delays every chunk each way; `blackhole`
forwards nothing either way while it lasts, new connections included, and
delivers what waited once it ends, as TCP does after a partition heals (the
client learns of it only by its own timeouts); `reset` aborts every open
connection with a TCP RST and every new one at once (a crash, seen from the
client). Nothing packaged does this in a few lines without root (toxiproxy
is a Go service; tc/iptables need privileges).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Literal

from devstack.ports import free_port

Mode = Literal["pass", "latency", "blackhole", "reset"]
_CHUNK = 65536


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: SO_LINGER 0, then close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """127.0.0.1:`port` -> 127.0.0.1:`upstream_port`, on an event loop of its own thread."""

    def __init__(self, upstream_port: int, name: str = "") -> None:
        self.name = name
        self.upstream_port = upstream_port
        self.port = free_port()
        self.mode: Mode = "pass"
        self.latency_seconds = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"proxy-{name}", daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._passable: asyncio.Event | None = None  # clear while blackholed; made on the proxy's loop

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def set_mode(self, mode: Mode, latency_seconds: float = 0.0) -> None:
        """Switch modes; `reset` also aborts every connection open now."""

        def switch() -> None:
            self.mode = mode
            self.latency_seconds = latency_seconds
            assert self._passable is not None
            if mode == "blackhole":
                self._passable.clear()
            else:
                self._passable.set()
            if mode == "reset":
                for writer in list(self._open):
                    _abort(writer)
                self._open.clear()

        self._loop.call_soon_threadsafe(switch)

    @contextlib.contextmanager
    def fault(self, mode: Mode, latency_seconds: float = 0.0) -> Iterator[None]:
        self.set_mode(mode, latency_seconds)
        try:
            yield
        finally:
            self.set_mode("pass")

    async def _listen(self) -> None:
        self._passable = asyncio.Event()
        self._passable.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            _abort(writer)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.mode == "reset":
            _abort(client_writer)
            return
        self._open.add(client_writer)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            await self._while_blackholed()
            upstream_reader, upstream = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.upstream_port), timeout=5
            )
            upstream_writer = upstream
            self._open.add(upstream)
            await asyncio.gather(
                self._pump(client_reader, upstream),
                self._pump(upstream_reader, client_writer),
            )
        except (OSError, TimeoutError):
            pass
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    self._open.discard(writer)
                    _abort(writer)

    async def _while_blackholed(self) -> None:
        assert self._passable is not None
        await self._passable.wait()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(_CHUNK):
            await self._while_blackholed()
            if self.mode == "latency":
                await asyncio.sleep(self.latency_seconds)
            writer.write(data)
            await writer.drain()
        # The peer closed its half: pass the FIN on, and the other pump ends too.
        with contextlib.suppress(OSError):
            writer.write_eof()
