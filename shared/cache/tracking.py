"""Redis server-assisted invalidation of the cache tags, for an in-process tier.

Redis tracks the tag version keys for us (`CLIENT TRACKING ... BCAST PREFIX
<prefix>tag:`) and sends the name of every one that changes to a connection
of ours subscribed to `__redis__:invalidate`. redis-py's asyncio client has
no client-side caching, so the listening connection is a small asyncio
protocol around hiredis's parser: it applies an invalidation as soon as the
event loop reads it, without waiting for a task to be scheduled.

Why a local answer can be trusted (`usable`):
- Redis writes a tracking message in the same event-loop turn that executes
  the announcing script, before that script's reply; so by the time a
  projector's announcement has returned, the message is in this process's
  socket buffer, and `usable` looks there (a non-blocking peek) before an
  answer is served locally;
- tracking is checked every `check_seconds` (`CLIENT TRACKINGINFO`: on, in
  broadcast mode, redirected to this listener, redirect not broken) and the
  listener answers a PING each time; while either is late or failed,
  nothing is served locally, and everything kept is dropped, since
  invalidations may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, Final, cast

import hiredis
import structlog
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

_log = structlog.get_logger("cache.tracking")
_CHANNEL: Final = b"__redis__:invalidate"

# Called with the changed keys, or None for "everything" (a flush, or a lost connection).
OnInvalidate = Callable[[list[bytes] | None], None]


def _command(*parts: bytes | str | int) -> bytes:
    encoded = [p if isinstance(p, bytes) else str(p).encode() for p in parts]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded)


class _Listener(asyncio.Protocol):
    """The subscribed connection: parses what Redis pushes and hands it on at once."""

    def __init__(self, on_invalidate: OnInvalidate) -> None:
        self._on_invalidate = on_invalidate
        self._parser = hiredis.Reader()
        self._replies: asyncio.Queue[Any] = asyncio.Queue()
        self.transport: asyncio.Transport | None = None
        self.pong = asyncio.Event()
        self.lost = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport; uvloop's is not an asyncio.Transport subclass, so no isinstance check.
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        while (message := self._parser.gets()) is not False:
            self._handle(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        self._on_invalidate(None)

    def send(self, *parts: bytes | str | int) -> None:
        assert self.transport is not None  # noqa: S101 - sent only once connected
        self.transport.write(_command(*parts))

    async def reply(self, within_seconds: float) -> Any:
        return await asyncio.wait_for(self._replies.get(), within_seconds)

    def _handle(self, message: Any) -> None:
        if isinstance(message, list) and message and message[0] == b"message" and message[1] == _CHANNEL:
            keys = message[2]
            self._on_invalidate(list(keys) if isinstance(keys, list) else None)
        elif isinstance(message, list) and message and message[0] == b"pong":
            self.pong.set()
        else:
            self._replies.put_nowait(message)


class TagTracking:
    """Keeps tracking on for `<prefix>tag:` and says whether local answers are safe right now."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str,
        on_invalidate: OnInvalidate,
        check_seconds: float,
        timeout_seconds: float,
    ) -> None:
        self._url = urllib.parse.urlsplit(url)
        self._tracked_prefix = f"{key_prefix}tag:"
        self._on_invalidate = on_invalidate
        self._check = check_seconds
        self._timeout = timeout_seconds
        self._listener: _Listener | None = None
        self._peek: socket.socket | None = None
        self._healthy_until = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def supports(url: str) -> bool:
        """Plain TCP URLs only (rediss:// and unix:// run without the local tier)."""
        return urllib.parse.urlsplit(url).scheme == "redis"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cache-tag-tracking")

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._teardown()

    @property
    def usable(self) -> bool:
        if time.monotonic() > self._healthy_until or self._peek is None:
            return False
        try:
            self._peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True  # nothing unread: every invalidation Redis sent has been applied
        except OSError:
            return False
        return False  # bytes waiting (or the connection closed): not before they are read

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._track()
            # redis-py's own errors too: one escaping here would end tracking for good.
            except (OSError, TimeoutError, RedisError, hiredis.HiredisError, _TrackingLost) as error:
                _log.warning("cache tag tracking interrupted; local answers off", error=repr(error))
            self._teardown()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)

    async def _track(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self._url.hostname or "127.0.0.1", self._url.port or 6379
        transport, listener = await asyncio.wait_for(
            loop.create_connection(lambda: _Listener(self._on_invalidate), host, port), self._timeout
        )
        self._listener = listener
        if self._url.password is not None:
            auth = [self._url.username, self._url.password] if self._url.username else [self._url.password]
            listener.send("AUTH", *[urllib.parse.unquote(part) for part in auth])
            await self._expect(listener, b"OK")
        listener.send("CLIENT", "ID")
        client_id = await listener.reply(self._timeout)
        listener.send("SUBSCRIBE", _CHANNEL)
        await listener.reply(self._timeout)
        tracker = Redis.from_url(
            self._url.geturl(),
            single_connection_client=True,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            # A silent reconnection would lose tracking: a failure must surface.
            retry=Retry(NoBackoff(), 0),
        )
        try:
            await tracker.client_tracking_on(clientid=client_id, prefix=[self._tracked_prefix], bcast=True)
            sock = transport.get_extra_info("socket")
            self._peek = socket.socket(fileno=os.dup(sock.fileno()))
            # Anything kept before tracking was on may be stale: start empty.
            self._on_invalidate(None)
            while not self._stop.is_set() and not listener.lost.is_set():
                await self._verify(tracker, listener, client_id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._check)
        finally:
            await tracker.aclose()

    async def _verify(self, tracker: Redis, listener: _Listener, client_id: int) -> None:
        listener.pong.clear()
        listener.send("PING")
        info: Any = await tracker.client_trackinginfo()
        pairs = zip(info[::2], info[1::2], strict=True) if isinstance(info, list) else info.items()
        fields = {_text(name): value for name, value in pairs}
        flags = {_text(flag) for flag in fields.get("flags", [])}
        if "on" not in flags or "bcast" not in flags or "broken_redirect" in flags:
            raise _TrackingLost(f"tracking flags {sorted(flags)}")
        if fields.get("redirect") != client_id:
            raise _TrackingLost("tracking redirected elsewhere")
        try:
            await asyncio.wait_for(listener.pong.wait(), self._timeout)
        except TimeoutError:
            raise _TrackingLost("the listener did not answer its PING") from None
        # Trusted until the next check is overdue.
        self._healthy_until = time.monotonic() + 2 * self._check + self._timeout

    async def _expect(self, listener: _Listener, expected: bytes) -> None:
        answer = await listener.reply(self._timeout)
        if answer != expected:
            raise _TrackingLost(f"unexpected answer {answer!r}")

    def _teardown(self) -> None:
        self._healthy_until = 0.0
        if self._peek is not None:
            self._peek.close()
            self._peek = None
        if self._listener is not None and self._listener.transport is not None:
            self._listener.transport.close()
        self._listener = None
        self._on_invalidate(None)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _TrackingLost(Exception):
    """Tracking is off, broken or unverifiable."""
