"""Pulls a durable consumer's events ahead of the projector, in place of nats-py's `fetch`.

nats-py's `fetch(n)` sends a pull request per call and waits for every
message with an `asyncio.wait_for` of its own: the projector measured about
50 µs of CPU per message there, and the bus sat idle while a batch committed.
Here pull requests stay open ahead of the projector (`ahead` messages beyond
what it holds), JetStream streams into one inbox while a batch commits, a
subscription callback only appends, and a batch is whatever has arrived, up
to the batch size: one wait per batch, none per message.

The requests are bookkept by count and expiry only to decide when to ask for
more; no event depends on that bookkeeping: JetStream redelivers whatever is
delivered and never acked, and `close` hands back what arrived unprocessed.

Handing back is a nak delayed until every request this pull sent has
expired: JetStream cannot cancel a pull request, and one still open after
the inbox is gone would take a nacked event to nowhere, where it waits for
ack_wait (NATS 2.9 did so in CI). The delay is bounded by the requests' expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

_STATUS_HEADER = "Status"
# 408: a request expired; 409: a request ended early (limits, consumer deleted, leader change).
_REQUEST_ENDED = frozenset({"408", "409"})
# The server counts a request's expiry from when it received it, a little after we sent it.
_EXPIRY_MARGIN_SECONDS = 0.25


@dataclass(slots=True)
class _Request:
    remaining: int
    expires_at: float


class _PullRequest(msgspec.Struct):
    batch: int
    expires: int  # nanoseconds


_encode_request = msgspec.json.Encoder().encode


class PrefetchingPull:
    """One inbox subscription and the pull requests that feed it."""

    def __init__(
        self,
        client: Client,
        *,
        stream: str,
        durable: str,
        batch_size: int,
        ahead: int,
        request_expires_seconds: float,
    ) -> None:
        self._client = client
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._batch_size = batch_size
        self._ahead = max(ahead, batch_size)
        self._expires_seconds = request_expires_seconds
        self._arrived: deque[Msg] = deque()
        self._ready = asyncio.Event()
        self._requests: deque[_Request] = deque()
        self._subscription: Subscription | None = None
        self._inbox = ""
        # When the last request sent expires: no request of ours is open at the server after that.
        self._asked_until = 0.0

    @property
    def prefetched(self) -> int:
        """Events arrived and not yet taken."""
        return len(self._arrived)

    async def open(self) -> None:
        self._inbox = self._client.new_inbox()
        self._subscription = await self._client.subscribe(self._inbox, cb=self._on_message)
        await self._ask_for_more()

    async def take(self, wait_seconds: float) -> list[Msg]:
        """Up to one batch of what arrived, waiting at most `wait_seconds` for the first."""
        if not self._arrived:
            await self._ask_for_more()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), wait_seconds)
        await self._gather_streaming()
        count = min(len(self._arrived), self._batch_size)
        batch = [self._arrived.popleft() for _ in range(count)]
        if not self._arrived:
            self._ready.clear()
        # Asked before the batch is worked on, so the server streams the next one meanwhile.
        await self._ask_for_more()
        return batch

    async def _gather_streaming(self) -> None:
        """Let messages still streaming in join the batch, without waiting for any that are not.

        nats-py hands over what one socket read held (some tens of events);
        each yield to the event loop lets it parse the next read if one is
        ready. The first yield that brings nothing ends the batch: no timer,
        so a lone event is not delayed.
        """
        while 0 < len(self._arrived) < self._batch_size:
            before = len(self._arrived)
            await asyncio.sleep(0)
            if len(self._arrived) == before:
                return

    async def close(self) -> list[Msg]:
        """Stop receiving and hand back (nak) what arrived and was never taken; returns those events.

        Each nak is delayed until this pull's requests have expired, so the
        redelivery reaches a live request (the next pull's), not one of ours.
        """
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None
        untaken = list(self._arrived)
        self._arrived.clear()
        self._ready.clear()
        self._requests.clear()
        open_for = self._asked_until - time.monotonic()
        delay = open_for + _EXPIRY_MARGIN_SECONDS if open_for > 0 else None
        for message in untaken:
            with contextlib.suppress(Exception):
                await message.nak(delay=delay)
        return untaken

    async def _on_message(self, message: Msg) -> None:
        headers = message.headers
        if not message.data and headers is not None and _STATUS_HEADER in headers:
            if headers[_STATUS_HEADER] in _REQUEST_ENDED and self._requests:
                self._requests.popleft()
            return  # 100 heartbeats and 404s carry nothing
        if self._requests:
            front = self._requests[0]
            front.remaining -= 1
            if front.remaining <= 0:
                self._requests.popleft()
        self._arrived.append(message)
        self._ready.set()

    async def _ask_for_more(self) -> None:
        now = time.monotonic()
        while self._requests and self._requests[0].expires_at <= now:
            self._requests.popleft()
        outstanding = sum(request.remaining for request in self._requests)
        wanted = self._ahead - outstanding - len(self._arrived)
        # Small top-ups wait until they are worth a request, unless nothing is asked at all.
        if wanted <= 0 or (outstanding and wanted < self._batch_size):
            return
        expires = int(self._expires_seconds * 1_000_000_000)
        self._requests.append(_Request(remaining=wanted, expires_at=now + self._expires_seconds))
        self._asked_until = now + self._expires_seconds
        request = _encode_request(_PullRequest(batch=wanted, expires=expires))
        await self._client.publish(self._next_subject, request, reply=self._inbox)
