"""One projection's durable JetStream pull consumer, and keeping its subscription alive.

The consumer is created from code (filter, ack policy, start position) and
read through `PrefetchingPull`. After NATS restarts, pull requests can be
lost and subscriptions stop receiving although events wait (nats-py issue
#518 and relatives): so after a reconnection, or when fetches stay empty
while JetStream reports pending events, the subscription is made again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from projectors.prefetch import PrefetchingPull
from shared.infrastructure.nats import NatsConnection

_log = structlog.get_logger("projector.consumer")
# Events delivered but not yet acked, across batches: room for four batches.
MAX_ACK_PENDING_BATCHES: Final = 4
# Requested from JetStream beyond the batch being worked on: delivered while it commits.
PREFETCH_BATCHES: Final = 2
# A pull request left open this long ends (JetStream answers 408) and is asked again.
# Short, because events handed back on close wait this long for redelivery (prefetch.py);
# an idle consumer pays one request per period for it.
PULL_REQUEST_EXPIRES_SECONDS: Final = 2.0


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    stream: str
    durable: str
    filter_subject: str
    ack_wait_seconds: float
    batch_size: int
    api_timeout_seconds: float = 5.0


class EventConsumer:
    def __init__(self, nats: NatsConnection, spec: ConsumerSpec, *, stall_check_seconds: float) -> None:
        self._nats = nats
        self.spec = spec
        self._stall_check_seconds = stall_check_seconds
        self._pull: PrefetchingPull | None = None
        self._js: JetStreamContext | None = None
        self._seen_reconnections = -1
        self._empty_since: float | None = None
        self.resubscriptions = 0

    @property
    def max_ack_pending(self) -> int:
        return self.spec.batch_size * MAX_ACK_PENDING_BATCHES

    async def bus_epoch(self) -> str:
        """Identifies the JetStream stream: a stream created anew restarts its sequences."""
        info = await self._jetstream().stream_info(self.spec.stream)
        return str(info.created) if info.created is not None else "unknown"

    async def fetch(self, wait_seconds: float) -> list[Msg]:
        """The next events, or [] when none came within `wait_seconds`."""
        pull = await self._pull_now()
        messages = await pull.take(wait_seconds)
        if not messages:
            await self._check_stall()
            return []
        self._empty_since = None
        return messages

    async def start(self, checkpoint_sequence: int) -> None:
        """Create the durable consumer if it is missing, and subscribe.

        A consumer created anew (the first run, or one deleted by hand) reads
        the stream from its start: below the checkpoint's sequence a batch may
        still have been unacked, and no sequence window is safe with a
        filtered subject. Stream versions skip what was applied; it costs time
        once, never an event.
        """
        js = self._jetstream()
        try:
            await js.consumer_info(self.spec.stream, self.spec.durable)
        except NotFoundError:
            await js.add_consumer(self.spec.stream, self._config())
            _log.info(
                "consumer created; reading the stream from its start",
                consumer=self.spec.durable,
                filter=self.spec.filter_subject,
                checkpoint_sequence=checkpoint_sequence,
            )
        await self._subscribe()

    async def close(self) -> None:
        """Unsubscribe and hand back, for redelivery, what arrived and was never taken."""
        if self._pull is None:
            return
        await self._pull.close()
        self._pull = None

    def _config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.spec.durable,
            filter_subject=self.spec.filter_subject,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.spec.ack_wait_seconds,
            max_deliver=-1,
            max_ack_pending=self.max_ack_pending,
            deliver_policy=DeliverPolicy.ALL,
        )

    def _client(self) -> Client:
        client = self._nats.client
        if client is None or not client.is_connected:
            raise ConnectionError("NATS is not connected")
        return client

    def _jetstream(self) -> JetStreamContext:
        client = self._client()
        if self._js is None:
            self._js = client.jetstream(timeout=self.spec.api_timeout_seconds)
        return self._js

    async def _pull_now(self) -> PrefetchingPull:
        if self._pull is None or self._nats.reconnections != self._seen_reconnections:
            await self._subscribe()
        assert self._pull is not None  # noqa: S101 - _subscribe sets it or raises
        return self._pull

    async def _subscribe(self) -> None:
        await self.close()
        self._seen_reconnections = self._nats.reconnections
        pull = PrefetchingPull(
            self._client(),
            stream=self.spec.stream,
            durable=self.spec.durable,
            batch_size=self.spec.batch_size,
            ahead=self.spec.batch_size * PREFETCH_BATCHES,
            request_expires_seconds=PULL_REQUEST_EXPIRES_SECONDS,
        )
        await pull.open()
        self._pull = pull
        self._empty_since = None

    async def _check_stall(self) -> None:
        now = time.monotonic()
        if self._empty_since is None:
            self._empty_since = now
            return
        if now - self._empty_since < self._stall_check_seconds:
            return
        self._empty_since = now
        info = await self._jetstream().consumer_info(self.spec.stream, self.spec.durable)
        if info.num_pending:
            _log.warning(
                "subscription stalled with events waiting; subscribing again",
                consumer=self.spec.durable,
                pending=info.num_pending,
            )
            self.resubscriptions += 1
            await self._subscribe()
