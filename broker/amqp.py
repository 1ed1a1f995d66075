"""The producer side's only door to RabbitMQ: connect, declare, publish, consume.

This is the one module of ``broker/`` that imports aio-pika and aiormq. Everything it
hands to the rest of the package is plain data (:class:`OutgoingMessage`,
:class:`ReceivedMessage`) or one of our exceptions: each call runs inside
:meth:`AmqpConnection.translate_errors`, which maps aio-pika/aiormq failures to the
most specific :class:`~broker.errors.PrintBrokerError` with ``raise ... from exc``.

Publisher confirms as aio-pika 10 / aiormq 7 surface them (checked against
RabbitMQ 3.10 in ``tests/integration/test_client.py``):

- a ``mandatory`` publish that no queue takes comes back as ``basic.return`` (312
  NO_ROUTE) followed by ``basic.ack``; with ``on_return_raises=True`` aiormq raises
  ``aiormq.exceptions.PublishError`` (a ``DeliveryError`` whose ``frame`` is the
  ``Basic.Return``). It finds the publish by ``message_id``, so every message we
  publish carries one. We raise :class:`~broker.errors.UnroutableMessage`.
- a queue at its ``x-max-length`` with ``x-overflow: reject-publish`` answers
  ``basic.nack``; aiormq raises ``DeliveryError`` with a ``Basic.Nack`` frame. We
  raise :class:`~broker.errors.QueueFull`.

Direct reply-to (``amq.rabbitmq.reply-to``) has two rules: the consumer is a no-ack
consumer, and requests that name it in ``reply_to`` are published on the same channel
that consumes it. :class:`ReplyChannel` keeps both. The RabbitMQ 3.10 pitfall with
``mandatory`` (rabbitmq-server #6124) hits *replies published to* a reply-to address,
which is what the gateway (and our tests' scripted responders) do with
``mandatory=False``; our requests go to ``<ns>.requests`` and may be mandatory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import aio_pika
import aiormq
import aiormq.exceptions
import pamqp.exceptions
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from broker.errors import (
    BrokerUnavailable,
    ConfigurationError,
    PrintBrokerError,
    QueueFull,
    UnroutableMessage,
)
from broker.topology import Channel, ExchangeSpec, Topology

log = structlog.stdlib.get_logger("broker.amqp")

#: RabbitMQ's direct reply-to pseudo-queue (no declaration, no-ack consumers only).
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
#: Seconds to wait for the first TCP + AMQP handshake.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Seconds to wait for one broker operation (a declaration, a publisher confirm).
DEFAULT_OPERATION_TIMEOUT = 10.0
#: ``app_id`` of everything the client library publishes.
APP_ID = "zebra-broker"
#: AMQP ``delivery_mode`` values.
TRANSIENT, PERSISTENT = 1, 2


def public_exchange_specs(topology: Topology) -> tuple[ExchangeSpec, ...]:
    """Return the exchanges of the public contract (see ``Topology.public_exchanges``)."""
    return topology.public_exchanges()


def events_exchange_spec(topology: Topology) -> ExchangeSpec:
    """Return the declaration of ``<ns>.events``."""
    return ExchangeSpec(topology.events_exchange, "topic")


@dataclass(frozen=True)
class OutgoingMessage:
    """A message to publish, in AMQP terms but without an AMQP library.

    Args:
        body: the payload, verbatim.
        message_id: required: aiormq pairs a ``basic.return`` with its publish by it.
        expiration: per-message TTL in seconds (sent as milliseconds), or ``None``.
    """

    body: bytes
    message_id: str
    correlation_id: str | None = None
    reply_to: str | None = None
    type: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    content_type: str | None = None
    expiration: float | None = None
    persistent: bool = True

    def properties(self) -> aiormq.spec.Basic.Properties:
        """Build the AMQP properties (straight for aiormq: aio-pika's ``Message``
        costs more than the publish it wraps)."""
        expiration = (
            None
            if self.expiration is None
            else str(max(1, round(self.expiration * 1000)))
        )
        return aiormq.spec.Basic.Properties(
            headers=dict(self.headers),
            content_type=self.content_type,
            delivery_mode=PERSISTENT if self.persistent else TRANSIENT,
            message_id=self.message_id,
            correlation_id=self.correlation_id,
            reply_to=self.reply_to,
            message_type=self.type,
            expiration=expiration,
            timestamp=datetime.now(UTC),
            app_id=APP_ID,
        )


@dataclass(frozen=True)
class ReceivedMessage:
    """A message taken from a queue, copied out of aio-pika's message object."""

    body: bytes
    headers: Mapping[str, Any]
    routing_key: str | None = None
    exchange: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    type: str | None = None
    content_type: str | None = None

    @classmethod
    def from_aiormq(cls, message: aiormq.abc.DeliveredMessage) -> ReceivedMessage:
        properties = message.header.properties
        return cls(
            body=message.body,
            headers=dict(properties.headers or {}),
            routing_key=message.routing_key,
            exchange=message.exchange,
            message_id=properties.message_id,
            correlation_id=properties.correlation_id,
            reply_to=properties.reply_to,
            type=properties.message_type,
            content_type=properties.content_type,
        )

    @classmethod
    def from_aio_pika(cls, message: AbstractIncomingMessage) -> ReceivedMessage:
        return cls(
            body=message.body,
            headers=dict(message.headers or {}),
            routing_key=message.routing_key,
            exchange=message.exchange,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            reply_to=message.reply_to,
            type=message.type,
            content_type=message.content_type,
        )


def _reason(exc: BaseException) -> str:
    """Return aiormq's reason text (``NOT_FOUND - no exchange ...``) or ``str(exc)``."""
    text = str(exc) or type(exc).__name__
    return text.strip()


@contextlib.contextmanager
def translate_errors(action: str, *, url: str) -> Iterator[None]:
    """Map aio-pika/aiormq exceptions raised inside the block to our tree.

    Args:
        action: what was being done, for the message (``"declare the topology"``).
        url: the broker URL without credentials, for the message.
    """
    try:
        yield
    except PrintBrokerError:
        raise
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise ConfigurationError(
            f"could not {action}: RabbitMQ refused it ({_reason(exc)}); a queue or "
            "exchange of that name exists with other arguments: make "
            "--queue-type / ZEBRA_BROKER_QUEUE_TYPE and --queue-max-length / "
            "ZEBRA_BROKER_QUEUE_MAX_LENGTH match the gateway's, or delete it"
        ) from exc
    except aiormq.exceptions.ChannelAccessRefused as exc:
        raise ConfigurationError(
            f"could not {action}: RabbitMQ refused access ({_reason(exc)}); give the "
            "user of --amqp-url / ZEBRA_BROKER_AMQP_URL the permissions it needs"
        ) from exc
    except (
        aiormq.exceptions.AuthenticationError,
        aiormq.exceptions.ProbableAuthenticationError,
    ) as exc:
        raise BrokerUnavailable(
            f"could not {action}: RabbitMQ at {url} refused the login "
            f"({_reason(exc)}); check the user and password in --amqp-url / "
            "ZEBRA_BROKER_AMQP_URL"
        ) from exc
    except TimeoutError as exc:
        raise BrokerUnavailable(
            f"could not {action}: RabbitMQ at {url} did not answer in time"
        ) from exc
    except (
        aiormq.exceptions.AMQPError,
        aiormq.exceptions.ChannelInvalidStateError,
        pamqp.exceptions.PAMQPException,
        ConnectionError,
        OSError,
    ) as exc:
        raise BrokerUnavailable(
            f"could not {action}: RabbitMQ at {url} is unavailable ({_reason(exc)})"
        ) from exc


async def declare_exchange(
    channel: AbstractChannel, spec: ExchangeSpec
) -> AbstractExchange:
    """Declare one exchange exactly as :class:`ExchangeSpec` says."""
    return await channel.declare_exchange(spec.name, spec.kind, durable=spec.durable)


async def declare_printer_topology(
    channel: AbstractChannel, topology: Topology, printer_serial: str
) -> tuple[str, ...]:
    """Declare the public exchanges and one printer's queues and bindings.

    These are the gateway's own declarations, built from the same :class:`Topology`
    and :meth:`Topology.printer_queue_spec`; RabbitMQ refuses a redeclaration with
    different arguments (``PRECONDITION_FAILED``), so both sides must agree.

    Returns:
        The names of the printer's queues (raw, config).
    """
    for spec in public_exchange_specs(topology):
        await declare_exchange(channel, spec)
    # The gateway's dead-letter queue too, so that a request that expires before any
    # gateway ever ran still gets its `expired` outcome once one starts.
    dead = await channel.declare_queue(topology.dead_letter_queue, durable=True)
    await dead.bind(topology.dead_letter_exchange, routing_key="")
    names = []
    for printer_channel in (Channel.RAW, Channel.CONFIG):
        queue_spec = topology.printer_queue_spec(printer_serial, printer_channel)
        queue = await channel.declare_queue(
            queue_spec.name,
            durable=queue_spec.durable,
            exclusive=queue_spec.exclusive,
            auto_delete=queue_spec.auto_delete,
            arguments=queue_spec.arguments,
        )
        await queue.bind(
            topology.requests_exchange,
            routing_key=topology.request_key(printer_serial, printer_channel),
        )
        names.append(queue_spec.name)
    return tuple(names)


class AmqpConnection:
    """One robust AMQP connection and the few things the client does with it.

    Build it with :meth:`connect`. The connection reconnects by itself (aio-pika's
    ``connect_robust``); short-lived work (declarations, passive checks) runs on
    temporary channels so that a channel error never touches the reply channel.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        *,
        url_for_logs: str,
        operation_timeout: float = DEFAULT_OPERATION_TIMEOUT,
    ) -> None:
        self._connection = connection
        self.url_for_logs = url_for_logs
        self.operation_timeout = operation_timeout

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        connection_name: str,
        url_for_logs: str,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        operation_timeout: float = DEFAULT_OPERATION_TIMEOUT,
    ) -> AmqpConnection:
        """Open a robust connection named ``connection_name`` in the management UI.

        Raises:
            BrokerUnavailable: RabbitMQ cannot be reached or refused the login.
        """
        with translate_errors("connect", url=url_for_logs):
            connection = await aio_pika.connect_robust(
                url,
                timeout=connect_timeout,
                client_properties={"connection_name": connection_name},
            )
        log.debug("amqp.connected", url=url_for_logs, connection_name=connection_name)
        return cls(
            connection, url_for_logs=url_for_logs, operation_timeout=operation_timeout
        )

    def translate_errors(self, action: str) -> contextlib.AbstractContextManager[None]:
        """Map aio-pika/aiormq exceptions inside the block to our tree."""
        return translate_errors(action, url=self.url_for_logs)

    @property
    def is_closed(self) -> bool:
        return self._connection.is_closed

    async def close(self) -> None:
        """Close the connection (and every channel on it)."""
        with self.translate_errors("close the connection"):
            await self._connection.close()

    @contextlib.asynccontextmanager
    async def temporary_channel(self, action: str) -> AsyncIterator[AbstractChannel]:
        """Open a channel for ``action``, translate its errors and always close it.

        A channel error (a failed passive declaration, ``PRECONDITION_FAILED``) closes
        the channel on the broker side; keeping such work off the reply channel keeps
        outcomes flowing.
        """
        with self.translate_errors(action):
            async with asyncio.timeout(self.operation_timeout):
                channel = await self._connection.channel(publisher_confirms=False)
            try:
                yield channel
            finally:
                await channel.close()

    async def provision(
        self, topology: Topology, printer_serial: str
    ) -> tuple[str, ...]:
        """Declare the public exchanges and one printer's queues (see
        :func:`declare_printer_topology`)."""
        action = f"provision printer {printer_serial!r}"
        async with self.temporary_channel(action) as channel:
            async with asyncio.timeout(self.operation_timeout):
                return await declare_printer_topology(channel, topology, printer_serial)

    async def exchange_exists(self, name: str) -> bool:
        """Return whether exchange ``name`` exists (a passive declaration)."""
        async with self.temporary_channel(f"look up exchange {name!r}") as channel:
            try:
                async with asyncio.timeout(self.operation_timeout):
                    await channel.get_exchange(name, ensure=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return False
        return True

    async def queue_consumer_count(self, name: str) -> int | None:
        """Return the consumer count of queue ``name``, or ``None`` if it is absent."""
        async with self.temporary_channel(f"look up queue {name!r}") as channel:
            try:
                async with asyncio.timeout(self.operation_timeout):
                    queue = await channel.get_queue(name, ensure=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return None
        return queue.declaration_result.consumer_count

    async def open_reply_channel(
        self,
        on_reply: Callable[[ReceivedMessage], None],
        on_lost: Callable[[BrokerUnavailable], None],
    ) -> ReplyChannel:
        """Open the channel that publishes requests and consumes their replies.

        Args:
            on_reply: called with every message sent to our reply-to address.
            on_lost: called when the channel is lost (replies addressed to it can no
                longer arrive); the channel comes back with the connection.
        """
        with self.translate_errors("open the reply channel"):
            async with asyncio.timeout(self.operation_timeout):
                channel = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
        assert isinstance(channel, AbstractRobustChannel)
        replies = ReplyChannel(
            channel,
            on_reply=on_reply,
            on_lost=on_lost,
            url_for_logs=self.url_for_logs,
            operation_timeout=self.operation_timeout,
        )
        await replies.start()
        return replies

    def subscribe(
        self,
        exchange: ExchangeSpec,
        pattern: str,
        *,
        queue_name: str,
        prefetch_count: int = 100,
    ) -> Subscription:
        """Return a subscription to ``exchange`` with binding key ``pattern``.

        Enter it (``async with``) to declare and bind its queue.
        """
        return Subscription(
            self._connection,
            exchange,
            pattern,
            queue_name=queue_name,
            prefetch_count=prefetch_count,
            url_for_logs=self.url_for_logs,
            operation_timeout=self.operation_timeout,
        )


class ReplyChannel:
    """A publisher-confirm channel that also consumes RabbitMQ direct reply-to.

    Requests naming :data:`DIRECT_REPLY_TO` in ``reply_to`` are published here, on the
    channel whose no-ack consumer receives the replies, as RabbitMQ requires. When the
    connection drops, replies addressed to the old channel are lost: ``on_lost`` is
    called, and the consumer is started again once aio-pika has reopened the channel.
    Publishing waits for that (up to ``operation_timeout``).
    """

    #: The ``reply_to`` of requests published on this channel.
    reply_to = DIRECT_REPLY_TO

    def __init__(
        self,
        channel: AbstractRobustChannel,
        *,
        on_reply: Callable[[ReceivedMessage], None],
        on_lost: Callable[[BrokerUnavailable], None],
        url_for_logs: str,
        operation_timeout: float,
    ) -> None:
        self._channel = channel
        self._on_reply = on_reply
        self._on_lost = on_lost
        self._url_for_logs = url_for_logs
        self._operation_timeout = operation_timeout
        self._consuming = asyncio.Event()
        self._closing = False

    async def start(self) -> None:
        """Start consuming replies and watching for channel loss."""
        self._channel.close_callbacks.add(self._closed)
        self._channel.reopen_callbacks.add(self._reopened)
        await self._consume()

    async def _consume(self) -> None:
        # On aiormq's channel, as publishing: aio-pika's message objects cost more
        # than a reply. (A reopened channel comes back through ``_reopened``.)
        with translate_errors("consume replies", url=self._url_for_logs):
            async with asyncio.timeout(self._operation_timeout):
                channel = await self._channel.get_underlay_channel()
                assert isinstance(channel, aiormq.Channel)
                await channel.basic_consume(
                    DIRECT_REPLY_TO, self._delivered, no_ack=True
                )
        self._consuming.set()

    async def _delivered(self, message: aiormq.abc.DeliveredMessage) -> None:
        self._on_reply(ReceivedMessage.from_aiormq(message))

    def _closed(self, _sender: Any, exc: BaseException | None = None) -> None:
        was_consuming = self._consuming.is_set()
        self._consuming.clear()
        if self._closing or not was_consuming:
            # Our own close, or a second notice of the same loss.
            return
        log.warning("amqp.reply_channel_lost", reason=str(exc) if exc else None)
        self._on_lost(
            BrokerUnavailable(
                f"the channel to RabbitMQ at {self._url_for_logs} was lost "
                f"({exc or 'closed'}); replies in flight can no longer arrive"
            )
        )

    async def _reopened(self, _sender: Any) -> None:
        if self._closing:
            return
        await self._consume()
        log.info("amqp.reply_channel_restored")

    async def close(self) -> None:
        """Stop consuming and close the channel."""
        self._closing = True
        with translate_errors("close the reply channel", url=self._url_for_logs):
            await self._channel.close()

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        message: OutgoingMessage,
        *,
        mandatory: bool = True,
        printer_serial: str | None = None,
        queue: str | None = None,
    ) -> None:
        """Publish ``message`` and wait for RabbitMQ's publisher confirm.

        Args:
            exchange: exchange name (it must exist: publishing to a missing
                exchange closes the channel).
            mandatory: ask RabbitMQ to return the message if no queue takes it.
            printer_serial: for the error messages.
            queue: the queue the message is meant for, for :class:`QueueFull`.

        Raises:
            UnroutableMessage: ``mandatory`` and nothing took the message.
            QueueFull: a queue at its length limit refused it (``basic.nack``).
            BrokerUnavailable: the connection is down, or no confirm came in time
                (the message may or may not have been taken).
        """
        serial = printer_serial or "?"
        action = f"publish to {exchange!r} with routing key {routing_key!r}"
        try:
            # After a reconnect, wait until replies can arrive again.
            async with asyncio.timeout(self._operation_timeout):
                await self._consuming.wait()
        except TimeoutError as exc:
            raise BrokerUnavailable(
                f"no connection to RabbitMQ at {self._url_for_logs} for "
                f"{self._operation_timeout:g} s; the request for printer {serial!r} "
                "was not sent"
            ) from exc
        with translate_errors(action, url=self._url_for_logs):
            try:
                async with asyncio.timeout(self._operation_timeout):
                    channel = await self._channel.get_underlay_channel()
                    assert isinstance(channel, aiormq.Channel)
                    await channel.basic_publish(
                        message.body,
                        exchange=exchange,
                        routing_key=routing_key,
                        properties=message.properties(),
                        mandatory=mandatory,
                        # The confirm is the wait; flushing each write is not.
                        wait=False,
                    )
            except TimeoutError as exc:
                raise BrokerUnavailable(
                    f"RabbitMQ at {self._url_for_logs} did not confirm the request "
                    f"for printer {serial!r} within {self._operation_timeout:g} s; "
                    "it may or may not have been queued"
                ) from exc
            except aiormq.exceptions.PublishError as exc:
                # Checked before DeliveryError, its base class: basic.return.
                raise UnroutableMessage(serial, routing_key) from exc
            except aiormq.exceptions.DeliveryError as exc:
                # basic.nack: with our queues, a queue at x-max-length that
                # rejects publishes (x-overflow: reject-publish).
                raise QueueFull(serial, queue or routing_key) from exc


class Subscription:
    """An exclusive, auto-delete queue bound to one exchange, read as an iterator.

    Messages are acknowledged as they are taken (at most once): a subscription is
    for watching, and RabbitMQ's consumer timeout never sees a held delivery.
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        exchange: ExchangeSpec,
        pattern: str,
        *,
        queue_name: str,
        prefetch_count: int,
        url_for_logs: str,
        operation_timeout: float,
    ) -> None:
        self._connection = connection
        self._exchange = exchange
        self._pattern = pattern
        self.queue_name = queue_name
        self._prefetch_count = prefetch_count
        self._url_for_logs = url_for_logs
        self._operation_timeout = operation_timeout
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._received: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()

    async def __aenter__(self) -> Self:
        action = f"subscribe to {self._exchange.name!r} with {self._pattern!r}"
        with translate_errors(action, url=self._url_for_logs):
            async with asyncio.timeout(self._operation_timeout):
                self._channel = await self._connection.channel(publisher_confirms=False)
                try:
                    await self._channel.set_qos(prefetch_count=self._prefetch_count)
                    # Passively first: a producer needs no configure permission on
                    # the events exchange (which would also let it delete it). Only
                    # where no gateway ever ran is it declared here.
                    try:
                        exchange = await self._channel.get_exchange(
                            self._exchange.name, ensure=True
                        )
                    except aiormq.exceptions.ChannelNotFoundEntity:
                        # The 404 closed the channel: take a new one.
                        self._channel = await self._connection.channel(
                            publisher_confirms=False
                        )
                        await self._channel.set_qos(prefetch_count=self._prefetch_count)
                        exchange = await declare_exchange(self._channel, self._exchange)
                    self._queue = await self._channel.declare_queue(
                        self.queue_name, exclusive=True, auto_delete=True
                    )
                    await self._queue.bind(exchange, self._pattern)
                    self._consumer_tag = await self._queue.consume(self._delivered)
                except BaseException:
                    await self._close()
                    raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with translate_errors("unsubscribe", url=self._url_for_logs):
            await self._close()

    async def _close(self) -> None:
        self._received.put_nowait(None)
        channel, self._channel = self._channel, None
        if channel is None or channel.is_closed:
            return
        async with asyncio.timeout(self._operation_timeout):
            if self._queue is not None:
                if self._consumer_tag is not None:
                    # Cancel first: deleting a consumed queue makes the broker
                    # cancel the consumer, which aio-pika reports as an anomaly.
                    await self._queue.cancel(self._consumer_tag)
                await self._queue.delete(if_unused=False, if_empty=False)
            await channel.close()

    async def _delivered(self, message: AbstractIncomingMessage) -> None:
        await self._received.put(message)

    def end(self) -> None:
        """End iteration (the connection is being closed for good)."""
        self._received.put_nowait(None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ReceivedMessage:
        message = await self._received.get()
        if message is None:
            self._received.put_nowait(None)
            raise StopAsyncIteration
        with translate_errors("acknowledge a message", url=self._url_for_logs):
            await message.ack()
        return ReceivedMessage.from_aio_pika(message)
