"""The gateway's RabbitMQ side: the only module in ``gateway/`` that imports aio-pika.

Layout, chosen so one replica can hold thousands of printers:

- three AMQP connections per replica, named ``zebra-gateway <replica>``,
  ``... consume`` and ``... publish`` in the management UI: aio-pika's for
  declarations and the replica's own queues, and two of :mod:`gateway.amqpconn`
  for the printer traffic (deliveries parsed where they arrive, one write per ack
  or publish: fixes 17 and 18 in docs/performance.md);
- ``amqp_channels`` channels on the consume connection, shared by every printer
  consumer (never a channel per printer), each with ``prefetch_count`` ``prefetch`` (default 1) per consumer, so
  a printer channel takes one request at a time, in order. (With 2 the next request
  is already here when the last one is acknowledged, which is faster, but requests
  held here go back to the queue *after* a new socket of the printer may have
  started consuming it: a handover can then reorder jobs.);
- a separate pool of channels for declarations and bindings, so declares run side by
  side instead of queueing behind each other (a durable declare costs ~3 ms), and a
  declare that RabbitMQ refuses closes a declare channel, never a consumer's;
- on the publish connection, one channel with publisher confirms for outcomes and
  job events, and one without for control messages and printer events.

If either connection is lost the bus drops the other too, reports it (``on_connection_lost``), every consumer's
``get`` fails, and the bus reconnects with back-off. Printer sockets stay open: once
connected again the bus restores its own consumers and calls ``on_reconnected``, and
the registry and sessions restore theirs (bindings, printer consumers). Requests
published meanwhile wait in their queues and are delivered afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    ExchangeType,
)
from aiormq.abc import DeliveredMessage

from broker.errors import BrokerUnavailable
from broker.schemas import OUTCOME_TYPE, JobEvent, Outcome, RequestType, encode_event
from broker.topology import Channel, QueueSpec, Topology
from gateway.amqpconn import AmqpChannel, AmqpConnection
from gateway.amqpwire import Incoming
from gateway.control import ALL_REPLICAS_KEY
from gateway.metrics import Metrics
from gateway.settings import GatewaySettings
from gateway.signals import Mailbox

log = structlog.get_logger(__name__)

CONTROL_TYPE = "zebra.control"
TRANSIENT, PERSISTENT = 1, 2
#: Declarations run on this many channels side by side.
DECLARE_CHANNELS = 8
#: Declare channels take numbers from here up (the others are opened below it).
FIRST_DECLARE_CHANNEL = 200


@dataclass
class Delivery:
    """One message taken from a queue, without aio-pika types."""

    body: bytes
    routing_key: str
    exchange: str
    message_type: str | None
    headers: dict[str, Any]
    message_id: str | None
    reply_to: str | None
    correlation_id: str | None
    redelivered: bool
    timestamp: datetime | None = None
    app_id: str | None = None
    #: The per-message TTL the producer set, in milliseconds (AMQP ``expiration``).
    expiration: str | None = None
    received_at: float = 0.0
    #: The channel to acknowledge on and the delivery tag (no channel: no ack).
    _channel: aiormq.Channel | AmqpChannel | None = field(default=None, repr=False)
    _tag: int = field(default=0, repr=False)

    async def ack(self) -> None:
        """Acknowledge the message; a lost channel means RabbitMQ requeues it."""
        channel = self._channel
        if isinstance(channel, AmqpChannel):
            channel.ack(self._tag)
        elif channel is not None:
            try:
                await channel.basic_ack(self._tag, wait=False)
            except (aiormq.exceptions.AMQPError, RuntimeError) as exc:
                log.warning("amqp.ack_failed", error=str(exc))

    async def nack(self, *, requeue: bool = True) -> None:
        """Return the message to its queue (or drop it with ``requeue=False``)."""
        channel = self._channel
        if isinstance(channel, AmqpChannel):
            channel.nack(self._tag, requeue=requeue)
        elif channel is not None:
            try:
                await channel.basic_nack(self._tag, requeue=requeue, wait=False)
            except (aiormq.exceptions.AMQPError, RuntimeError) as exc:
                log.warning("amqp.nack_failed", error=str(exc))


def _delivery(message: DeliveredMessage, *, acked: bool = True) -> Delivery:
    """Our view of a message aiormq delivered (aio-pika's is not built: it costs)."""
    deliver = message.delivery
    assert isinstance(deliver, aiormq.spec.Basic.Deliver)
    channel = message.channel
    return _build(
        deliver,
        message.header.properties,
        message.body,
        channel if acked and isinstance(channel, aiormq.Channel) else None,
    )


def _build(
    deliver: aiormq.spec.Basic.Deliver,
    properties: aiormq.spec.Basic.Properties,
    body: bytes,
    channel: aiormq.Channel | AmqpChannel | None,
) -> Delivery:
    return Delivery(
        body=body,
        routing_key=deliver.routing_key or "",
        exchange=deliver.exchange or "",
        message_type=properties.message_type,
        headers=dict(properties.headers or {}),
        message_id=properties.message_id,
        reply_to=properties.reply_to,
        correlation_id=properties.correlation_id,
        redelivered=bool(deliver.redelivered),
        timestamp=properties.timestamp,
        app_id=properties.app_id,
        expiration=properties.expiration,
        received_at=time.time(),
        _channel=channel,
        _tag=deliver.delivery_tag or 0,
    )


class Consumer:
    """Deliveries of one queue, taken in our own task with :meth:`get`.

    ``get`` raises :class:`BrokerUnavailable` once the consumer is cancelled or its
    channel is gone.
    """

    def __init__(self, queue_name: str) -> None:
        self.queue_name = queue_name
        self.tag: str | None = None
        self._channel: AmqpChannel | None = None
        self._buffer: Mailbox[Delivery | None] = Mailbox()
        self._closed = False
        self._cancelled = False

    def _on_message(self, incoming: Incoming) -> None:
        """Called by the consume connection as the delivery's last frame arrives."""
        channel = self._channel
        if self._closed:
            if channel is not None:
                channel.nack(incoming.deliver.delivery_tag or 0)
            return
        self._buffer.put_nowait(
            _build(incoming.deliver, incoming.properties, incoming.body, channel)
        )

    def stop(self) -> None:
        """Make :meth:`get` fail from now on (call :meth:`cancel` to tell RabbitMQ)."""
        if not self._closed:
            self._closed = True
            self._buffer.put_nowait(None)

    async def get(self) -> Delivery:
        """Wait for the next delivery."""
        item = await self._buffer.get()
        if item is None:
            self._buffer.put_nowait(None)
            raise BrokerUnavailable(f"consumer of {self.queue_name} is closed")
        return item

    async def cancel(self) -> None:
        """Stop consuming and requeue anything received but not yet taken."""
        self.stop()
        channel, tag = self._channel, self.tag
        if not self._cancelled and channel is not None and tag is not None:
            self._cancelled = True
            # If the channel is gone, RabbitMQ has requeued everything already.
            with contextlib.suppress(BrokerUnavailable):
                await channel.cancel(tag)
        while not self._buffer.empty():
            item = self._buffer.get_nowait()
            if item is not None:
                await item.nack(requeue=True)
        self._buffer.put_nowait(None)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a future's outcome as seen (nothing waits on it any more)."""
    if not future.cancelled():
        future.exception()


class Bus:
    """One replica's AMQP connections and everything that goes through them."""

    def __init__(
        self, settings: GatewaySettings, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics(settings.replica, process_metrics=False)
        self.topology: Topology = settings.topology
        self.replica = settings.replica
        self.control_queue_name = self.topology.control_queue(self.replica)
        self._control_properties = aiormq.spec.Basic.Properties(
            content_type="application/json",
            message_type=CONTROL_TYPE,
            app_id=self.replica,
            delivery_mode=TRANSIENT,
            message_id=CONTROL_TYPE,  # unused: hints need no id of their own
        )
        self._connection: AbstractConnection | None = None
        #: Printer queues are consumed on the first (channels 1..amqp_channels),
        #: outcomes, replies, events and hints published on the second (channel 1
        #: with confirms, 2 without). Apart, because RabbitMQ delivered twice as
        #: slowly to a connection that also published (fix 18).
        self._consuming: AmqpConnection | None = None
        self._publishing: AmqpConnection | None = None
        self._consume_channels: list[AmqpChannel] = []
        self._consume_locks: list[asyncio.Lock] = []
        self._publish_channels: dict[bool, AmqpChannel] = {}
        self._publish_lock = asyncio.Lock()
        #: The channel of the replica's own consumers (dead letters, presence, control).
        self._service_channel: AbstractChannel | None = None
        #: Bumped when the connections are lost: a late report of the same loss
        #: from another of them is then ignored.
        self._generation = 0
        #: aiormq channels (no aio-pika wrappers: a passive check of a missing queue
        #: closes its channel, and aio-pika keeps a callback for every channel it
        #: ever opened for the life of the connection).
        self._declare_channels: list[aiormq.Channel | None] = []
        self._declare_locks: list[asyncio.Lock] = []
        self._declare_turn = itertools.count()
        self._declare_number = FIRST_DECLARE_CHANNEL - 1
        self._consumers: dict[int, set[Consumer]] = {}
        self._id_prefix = uuid.uuid4().hex[:16] + "-"
        self._message_count = itertools.count(1)
        self._on_control: Callable[[Delivery], Awaitable[None]] | None = None
        self._on_dead_letter: Callable[[Delivery], Awaitable[None]] | None = None
        self._on_connection_lost: Callable[[], None] | None = None
        self._on_reconnected: Callable[[], Awaitable[None]] | None = None
        #: Times the connection was re-established after a loss.
        self.reconnects = 0
        self.is_ready = asyncio.Event()
        #: Set while the connection is lost (the opposite of ``is_ready`` once started).
        self.connection_lost = asyncio.Event()
        self._closing = False
        self._reconnect_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(
        self,
        *,
        on_control: Callable[[Delivery], Awaitable[None]],
        on_dead_letter: Callable[[Delivery], Awaitable[None]],
        on_connection_lost: Callable[[], None],
        on_reconnected: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Connect, declare the shared topology and start the replica's consumers.

        Raises:
            BrokerUnavailable: RabbitMQ cannot be reached.
        """
        self._on_control = on_control
        self._on_dead_letter = on_dead_letter
        self._on_connection_lost = on_connection_lost
        self._on_reconnected = on_reconnected
        await self._connect()

    async def _connect(self) -> None:
        url = self.settings.amqp_url.get_secret_value()
        generation = self._generation
        name = f"zebra-gateway {self.replica}"
        try:
            connection = await aio_pika.connect(
                url, client_properties={"connection_name": name}
            )
        except (TimeoutError, OSError, aiormq.exceptions.AMQPError) as exc:
            raise BrokerUnavailable(
                f"cannot reach RabbitMQ at {self.settings.amqp_url_for_logs}: {exc}"
            ) from exc
        self._connection = connection
        self._consuming = self._publishing = None
        try:
            self._consuming = await AmqpConnection.open(
                url,
                name=f"{name} consume",
                on_lost=lambda exc: self._lost(generation, exc),
            )
            self._publishing = await AmqpConnection.open(
                url,
                name=f"{name} publish",
                on_lost=lambda exc: self._lost(generation, exc),
            )
            await self._open_channels(connection)
            await self._declare_shared()
        except (aiormq.exceptions.AMQPError, BrokerUnavailable) as exc:
            self._generation += 1  # what the half-open ones report is not a loss
            self._abort_traffic()
            await connection.close()
            raise BrokerUnavailable(
                f"RabbitMQ refused the gateway's setup: {exc}"
            ) from exc
        connection.close_callbacks.add(
            lambda _sender, exc=None: self._lost(generation, exc)
        )
        self.connection_lost.clear()
        self.is_ready.set()
        log.info(
            "amqp.connected", url=self.settings.amqp_url_for_logs, replica=self.replica
        )

    async def _open_channels(self, connection: AbstractConnection) -> None:
        self._publish_channels = {}
        for confirm in (True, False):
            self._publish_channels[confirm] = await self._open_publish_channel(confirm)
        self._service_channel = await connection.channel(publisher_confirms=False)
        await self._service_channel.set_qos(prefetch_count=self.settings.prefetch)
        self._consume_channels = []
        self._consume_locks = []
        self._consumers = {}
        for index in range(self.settings.amqp_channels):
            self._consume_channels.append(await self._open_consume_channel(index))
            self._consume_locks.append(asyncio.Lock())
            self._consumers[index] = set()
        self._declare_channels = [None] * DECLARE_CHANNELS
        self._declare_locks = [asyncio.Lock() for _ in range(DECLARE_CHANNELS)]
        self._declare_number = FIRST_DECLARE_CHANNEL - 1

    def _abort_traffic(self) -> None:
        for connection in (self._consuming, self._publishing):
            if connection is not None:
                connection.abort()

    async def _open_publish_channel(self, confirm: bool) -> AmqpChannel:
        connection = self._publishing
        if connection is None or connection.is_closed:
            raise BrokerUnavailable("no connection to RabbitMQ")
        channel = await connection.channel(2 - confirm)
        if confirm:
            await channel.confirm_select()
        return channel

    async def _open_consume_channel(self, index: int) -> AmqpChannel:
        """Channel ``index + 1`` of the consume connection, with the prefetch set.

        Its consumers are stopped when RabbitMQ closes it (each consumer's
        ``on_cancel``); the next :meth:`consume` on it opens it again.
        """
        connection = self._consuming
        if connection is None or connection.is_closed:
            raise BrokerUnavailable("no connection to RabbitMQ")
        channel = await connection.channel(index + 1)
        await channel.qos(self.settings.prefetch)
        return channel

    async def _declare_shared(self) -> None:
        assert self._service_channel is not None
        topo = self.topology
        channel = self._service_channel
        for spec in topo.gateway_exchanges():
            await channel.declare_exchange(
                spec.name, ExchangeType(spec.kind), durable=spec.durable
            )
        consume = self._service_channel
        assert consume is not None
        amqp = await self._underlay(consume)
        dead = await consume.declare_queue(topo.dead_letter_queue, durable=True)
        await dead.bind(topo.dead_letter_exchange, routing_key="")
        await amqp.basic_consume(dead.name, self._dead_letter_received)
        replicas = await consume.declare_queue(topo.replicas_queue, durable=True)
        await amqp.basic_consume(
            replicas.name, self._ignore, no_ack=True, consumer_tag=self.replica
        )
        control = await consume.declare_queue(
            self.control_queue_name, exclusive=True, auto_delete=True
        )
        await control.bind(topo.presence_exchange, routing_key="")
        await control.bind(topo.control_exchange, routing_key=ALL_REPLICAS_KEY)
        await amqp.basic_consume(control.name, self._control_received, no_ack=True)

    async def _ignore(self, _message: DeliveredMessage) -> None:
        """Nothing is ever published to the replicas queue; consuming it counts us."""

    async def _control_received(self, message: DeliveredMessage) -> None:
        if self._on_control is not None:
            await self._on_control(_delivery(message, acked=False))

    async def _dead_letter_received(self, message: DeliveredMessage) -> None:
        delivery = _delivery(message)
        if self._on_dead_letter is not None:
            await self._on_dead_letter(delivery)

    def _lost(self, generation: int, exc: BaseException | None) -> None:
        """One of the three connections is gone: drop the others, reconnect all."""
        if generation != self._generation:
            return
        self._generation += 1
        self.is_ready.clear()
        for consumers in self._consumers.values():
            for consumer in consumers:
                consumer.stop()
        self._abort_traffic()
        if self._closing:
            return
        self.connection_lost.set()
        log.error("amqp.connection_lost", error=str(exc) if exc else None)
        if self._on_connection_lost is not None:
            self._on_connection_lost()
        self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        connection = self._connection
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await connection.close()
        delay = 0.5
        while not self._closing:
            # A retry delay between attempts, not synchronisation: nothing signals
            # that RabbitMQ is back except a successful connect.
            await asyncio.sleep(delay)
            try:
                await self._connect()
            except BrokerUnavailable as exc:
                log.warning("amqp.reconnect_failed", error=str(exc), retry_in=delay)
                delay = min(delay * 2, 15.0)
            else:
                self.reconnects += 1
                self.metrics.amqp_reconnected()
                log.info("amqp.reconnected", reconnects=self.reconnects)
                if self._on_reconnected is not None:
                    await self._on_reconnected()
                return

    async def close(self) -> None:
        """Close the connections (RabbitMQ requeues every unacked delivery)."""
        self._closing = True
        self.is_ready.clear()
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        for traffic in (self._consuming, self._publishing):
            if traffic is not None:
                await traffic.close()
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()

    # -- declarations ----------------------------------------------------------

    async def _on_declare_channel(
        self, operation: Callable[[aiormq.Channel], Awaitable[Any]]
    ) -> Any:
        """Run ``operation`` on the next declare channel, reopening it if needed."""
        connection = self._connection
        if connection is None or connection.is_closed or connection.transport is None:
            raise BrokerUnavailable("no connection to RabbitMQ")
        index = next(self._declare_turn) % DECLARE_CHANNELS
        async with self._declare_locks[index]:
            channel = self._declare_channels[index]
            try:
                if channel is None or channel.is_closed:
                    amqp = connection.transport.connection
                    assert isinstance(amqp, aiormq.Connection)
                    opened = await amqp.channel(
                        channel_number=self._fresh_channel_number(amqp),
                        publisher_confirms=False,
                    )
                    assert isinstance(opened, aiormq.Channel)
                    channel = self._declare_channels[index] = opened
                return await operation(channel)
            except aiormq.exceptions.ChannelClosed:
                self._declare_channels[index] = None
                raise
            except (aiormq.exceptions.AMQPError, RuntimeError) as exc:
                raise BrokerUnavailable(f"RabbitMQ error: {exc}") from exc

    def _fresh_channel_number(self, amqp: aiormq.Connection) -> int:
        """A number for a new declare channel that no channel of ours had lately.

        A passive check of a missing queue makes RabbitMQ close the channel, and
        aiormq frees its number when RabbitMQ's ``channel.close`` arrives, before it
        has written the ``close-ok`` (which it even drops when its write queue of ten
        frames is full). Its own numbering takes the highest open number plus one, so
        the next channel often got that very number and RabbitMQ, whose channel was
        still open, dropped the connection ("second 'channel.open' seen"): every
        printer consumer of the replica went with it, seen once while 8,000 printers
        connected. Declare channels therefore go round the numbers from
        :data:`FIRST_DECLARE_CHANNEL` to ``channel_max``, skipping those in use: a
        number comes back only after all the others were used.
        """
        highest = amqp.connection_tune.channel_max or 65535
        span = highest - FIRST_DECLARE_CHANNEL + 1
        if span < 2 * DECLARE_CHANNELS:
            raise BrokerUnavailable(
                f"RabbitMQ allows {highest} channels per connection; the gateway "
                f"needs at least {FIRST_DECLARE_CHANNEL + 2 * DECLARE_CHANNELS}"
            )
        for _ in range(span):
            offset = (self._declare_number + 1 - FIRST_DECLARE_CHANNEL) % span
            self._declare_number = FIRST_DECLARE_CHANNEL + offset
            if self._declare_number not in amqp.channels:
                return self._declare_number
        raise BrokerUnavailable("no free AMQP channel number for declarations")

    async def declare_printer_queue(
        self, spec: QueueSpec, routing_key: str
    ) -> tuple[int, int]:
        """Make sure a printer queue and its binding exist; return (messages, consumers).

        A printer seen before (the common case, and all of a reconnect storm) costs
        one passive check; only a new printer's queue is declared and bound. A queue
        that already exists with other arguments (provisioned with other settings)
        is used as it is, with a warning.
        """
        started = time.perf_counter()
        counts = await self.queue_counts(spec.name)
        if counts is not None:
            self.metrics.queue_declared(time.perf_counter() - started)
            return counts

        async def declare(channel: aiormq.Channel) -> tuple[int, int]:
            ok = await channel.queue_declare(
                spec.name, durable=spec.durable, arguments=spec.arguments
            )
            await channel.queue_bind(
                spec.name, self.topology.requests_exchange, routing_key=routing_key
            )
            return ok.message_count or 0, ok.consumer_count or 0

        try:
            declared: tuple[int, int] = await self._on_declare_channel(declare)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            log.warning("amqp.queue_arguments_differ", queue=spec.name, error=str(exc))
            return await self.queue_counts(spec.name) or (0, 0)
        self.metrics.queue_declared(time.perf_counter() - started)
        return declared

    async def queue_counts(self, queue_name: str) -> tuple[int, int] | None:
        """Return (messages waiting, consumers) of a queue, or ``None`` if it is missing.

        A passive declaration: cheap, and a missing queue closes a declare channel,
        never a consumer's.
        """

        async def passive(channel: aiormq.Channel) -> tuple[int, int]:
            ok = await channel.queue_declare(queue_name, passive=True)
            return ok.message_count or 0, ok.consumer_count or 0

        try:
            counts: tuple[int, int] = await self._on_declare_channel(passive)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
        return counts

    async def queue_message_count(self, queue_name: str) -> int | None:
        """Return how many messages wait in a queue, or ``None`` if it is missing."""
        counts = await self.queue_counts(queue_name)
        return None if counts is None else counts[0]

    async def bind_control(self, routing_key: str, *, wakeup: bool = False) -> None:
        """Route control messages for ``routing_key`` to this replica.

        With ``wakeup``, bind to the requests exchange instead (a copy of every SGD
        request tells the replica holding the main socket to open a config channel).
        """
        exchange = (
            self.topology.requests_exchange
            if wakeup
            else self.topology.control_exchange
        )

        async def bind(channel: aiormq.Channel) -> None:
            await channel.queue_bind(
                self.control_queue_name, exchange, routing_key=routing_key
            )

        await self._on_declare_channel(bind)

    async def unbind_control(self, routing_key: str, *, wakeup: bool = False) -> None:
        """Undo :meth:`bind_control`."""
        exchange = (
            self.topology.requests_exchange
            if wakeup
            else self.topology.control_exchange
        )

        async def unbind(channel: aiormq.Channel) -> None:
            await channel.queue_unbind(
                self.control_queue_name, exchange, routing_key=routing_key
            )

        await self._on_declare_channel(unbind)

    # -- consuming -------------------------------------------------------------

    async def consume(self, queue_name: str, *, consumer_tag: str) -> Consumer:
        """Start consuming a printer queue on one of the shared channels."""
        if not self._consume_channels or not self.is_ready.is_set():
            raise BrokerUnavailable("no connection to RabbitMQ")
        index = hash(queue_name) % len(self._consume_channels)
        consumer = Consumer(queue_name)
        try:
            channel = self._consume_channels[index]
            if channel.is_closed:
                async with self._consume_locks[index]:
                    channel = self._consume_channels[index]
                    if channel.is_closed:
                        channel = await self._open_consume_channel(index)
                        self._consume_channels[index] = channel
            consumer._channel = channel
            consumer.tag = await channel.consume(
                queue_name,
                f"{consumer_tag} {id(consumer):x}",
                consumer._on_message,
                consumer.stop,
            )
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(f"cannot consume {queue_name}: {exc}") from exc
        self._consumers[index].add(consumer)
        return consumer

    @staticmethod
    async def _underlay(channel: AbstractChannel) -> aiormq.Channel:
        underlay = await channel.get_underlay_channel()
        assert isinstance(underlay, aiormq.Channel)
        return underlay

    def forget(self, consumer: Consumer) -> None:
        for consumers in self._consumers.values():
            consumers.discard(consumer)

    # -- publishing ------------------------------------------------------------

    async def _channel_for(self, confirm: bool) -> AmqpChannel:
        """The publish channel (reopened if RabbitMQ closed it), once writable."""
        channel = self._publish_channels.get(confirm)
        if channel is None or channel.is_closed:
            if not self.is_ready.is_set():
                raise BrokerUnavailable("no connection to RabbitMQ")
            async with self._publish_lock:
                # A missing exchange, say, closed it: open it again.
                channel = self._publish_channels.get(confirm)
                if channel is None or channel.is_closed:
                    channel = await self._open_publish_channel(confirm)
                    self._publish_channels[confirm] = channel
        await channel.connection.writable()
        return channel

    @staticmethod
    def _write(
        channel: AmqpChannel,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: aiormq.spec.Basic.Properties,
    ) -> asyncio.Future[None] | None:
        """Write one message now; its confirm future on the confirmed channel.

        Never mandatory: a reply to direct reply-to with mandatory set comes back as
        unroutable on RabbitMQ 3.10 (rabbitmq-server #6124).
        """
        try:
            return channel.publish(exchange, routing_key, body, properties)
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(
                f"publish to {exchange or 'reply'} failed: {exc}"
            ) from exc

    @staticmethod
    async def _confirmed(confirm: asyncio.Future[None] | None, exchange: str) -> None:
        if confirm is None:
            return
        try:
            await confirm
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(
                f"publish to {exchange or 'reply'} failed: {exc}"
            ) from exc

    async def _publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: aiormq.spec.Basic.Properties,
        *,
        confirm: bool = True,
    ) -> None:
        """Publish; with ``confirm``, return once RabbitMQ has taken the message.

        Without ``confirm`` the message goes out on the hint channel (no publisher
        confirms): for hints and for events nothing waits on. Either way the bytes
        are written before anything is awaited but a full buffer (fix 18).
        """
        channel = await self._channel_for(confirm)
        written = self._write(channel, exchange, routing_key, body, properties)
        await self._confirmed(written, exchange)

    def _event_message(
        self, event: Any
    ) -> tuple[str, bytes, aiormq.spec.Basic.Properties]:
        return (
            self.topology.events_exchange,
            encode_event(event),
            aiormq.spec.Basic.Properties(
                content_type="application/json",
                message_type=f"zebra.event.{event.event}",
                delivery_mode=PERSISTENT,
                message_id=self._message_id(),
            ),
        )

    def _message_id(self) -> str:
        """Unique per message: this bus's random prefix and a count (no uuid4: it
        reads the kernel's random source, twice per label)."""
        return f"{self._id_prefix}{next(self._message_count):x}"

    def _reply_properties(
        self,
        *,
        message_type: str,
        correlation_id: str | None,
        headers: Mapping[str, Any] | None = None,
        content_type: str | None = None,
    ) -> aiormq.spec.Basic.Properties:
        return aiormq.spec.Basic.Properties(
            message_type=message_type,
            correlation_id=correlation_id,
            headers=dict(headers or {}),
            content_type=content_type,
            delivery_mode=TRANSIENT,
            message_id=self._message_id(),
        )

    async def publish_event(
        self, routing_key: str, event: Any, *, confirm: bool = True
    ) -> None:
        """Publish an event (a model from ``broker.schemas``) to the events exchange.

        Printer events (online, offline, alerts, channels, data) are published with
        ``confirm=False``: nothing waits on them, so they cost no round trip.
        """
        exchange, body, properties = self._event_message(event)
        await self._publish(exchange, routing_key, body, properties, confirm=confirm)

    async def publish_reply(
        self,
        reply_to: str,
        body: bytes,
        *,
        message_type: str,
        correlation_id: str | None,
        headers: Mapping[str, Any] | None = None,
        content_type: str | None = None,
    ) -> None:
        """Publish a reply through the default exchange to ``reply_to``."""
        properties = self._reply_properties(
            message_type=message_type,
            correlation_id=correlation_id,
            headers=headers,
            content_type=content_type,
        )
        await self._publish("", reply_to, body, properties)

    async def publish_outcome(
        self,
        outcome: Outcome,
        reply_to: str | None,
        request_type: RequestType | None = None,
    ) -> None:
        """Send an outcome to its producer (if it asked) and as a job event.

        Reply and event go out together (the reply first; one write with whatever
        else this loop turn sends), and then both confirms are awaited: one round
        trip, no task of its own.
        """
        channel = await self._channel_for(True)
        reply_confirm = None
        exchange, body, properties = self._event_message(
            JobEvent(
                printer=outcome.printer_serial,
                replica=self.replica,
                job_id=outcome.job_id,
                correlation_id=outcome.correlation_id,
                status=outcome.status,
                error=outcome.error,
                type=request_type,
                redelivered=outcome.redelivered or None,
            )
        )
        routing_key = self.topology.job_key(
            outcome.printer_serial, outcome.status.value
        )
        if reply_to:
            reply_properties = self._reply_properties(
                message_type=OUTCOME_TYPE,
                correlation_id=outcome.correlation_id,
                headers=outcome.to_headers(),
            )
            reply_confirm = self._write(
                channel, "", reply_to, outcome.body, reply_properties
            )
        event_confirm = self._write(channel, exchange, routing_key, body, properties)
        try:
            await self._confirmed(reply_confirm, "")
        except BaseException:
            # The request is not acknowledged and comes back (the event may have
            # gone out: events are at least once). A lost channel fails both.
            if event_confirm is not None:
                event_confirm.add_done_callback(_retrieve)
            raise
        await self._confirmed(event_confirm, exchange)

    async def publish_control(self, routing_key: str, body: bytes) -> None:
        """Send an internal control message to the replicas bound to ``routing_key``.

        Control messages are hints (see ``gateway/control.py``), so they go out on a
        channel without publisher confirms: no round trip on the connect path. They
        carry this replica's name as ``app_id``: the registry has already delivered
        them to this replica's own sessions and drops the copy that comes back.
        """
        await self._publish(
            self.topology.control_exchange,
            routing_key,
            body,
            self._control_properties,
            confirm=False,
        )

    def printer_routing(
        self, printer_serial: str, channel: Channel
    ) -> tuple[QueueSpec, str]:
        """Return the queue spec and routing key of one printer channel."""
        return (
            self.topology.printer_queue_spec(printer_serial, channel),
            self.topology.request_key(printer_serial, channel),
        )
