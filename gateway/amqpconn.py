"""The replica's printer-traffic AMQP connection: requests in; acks, outcomes out.

A plain :class:`asyncio.Protocol` around :class:`gateway.amqpwire.Wire`: bytes from
RabbitMQ are parsed where they arrive and each delivery is handed to its consumer's
callback in the same call, with no task per frame or per message; an ack or a
publish is one write, and a publisher confirm resolves a future. Declarations,
bindings and the replica's own queues stay on aio-pika's connection in
:mod:`gateway.bus`.

What it does not do, because the gateway never needs it: get, mandatory publishes
(no basic.return), transactions, connection.blocked (RabbitMQ then stops reading;
writes wait in the transport), SASL mechanisms other than PLAIN and EXTERNAL.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import structlog
from pamqp import commands
from pamqp.base import Frame

from broker.errors import BrokerUnavailable
from gateway.amqpwire import (
    HEARTBEAT,
    PROTOCOL_HEADER,
    Incoming,
    Method,
    Wire,
    WireError,
)

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=Frame)

#: Half-heartbeat intervals without a byte from RabbitMQ that end the connection.
SILENT_HALF_INTERVALS = 4

#: What the client tells RabbitMQ it understands.
CAPABILITIES = {
    "consumer_cancel_notify": True,
    "basic.nack": True,
    "authentication_failure_close": True,
}


class AmqpChannel:
    """One open channel: consumers, acks and nacks, publishes and their confirms.

    A channel RabbitMQ closed stays closed: its acks are dropped (RabbitMQ has
    requeued those messages) and a new :class:`AmqpChannel` takes its place.
    """

    def __init__(self, connection: AmqpConnection, number: int) -> None:
        self.connection = connection
        self.number = number
        self.is_closed = False
        self.close_reason: str | None = None
        self._consumers: dict[
            str, tuple[Callable[[Incoming], None], Callable[[], None]]
        ]
        self._consumers = {}
        self._waiters: collections.deque[asyncio.Future[Frame]] = collections.deque()
        #: Publisher confirms: off until :meth:`confirm_select`.
        self._confirming = False
        self._published = 0
        self._unconfirmed: dict[int, asyncio.Future[None]] = {}

    async def rpc(self, method: Frame, reply: type[M]) -> M:
        """Send a synchronous method and wait for its reply (RabbitMQ keeps order)."""
        if self.is_closed:
            raise BrokerUnavailable(
                f"channel {self.number} is closed: {self.close_reason}"
            )
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.connection.write(Wire.method(self.number, method))
        answer = await waiter
        if not isinstance(answer, reply):
            raise WireError(f"{answer.name} in reply to {method.name}")
        return answer

    async def confirm_select(self) -> None:
        """Put the channel in confirm mode: :meth:`publish` then returns a future."""
        await self.rpc(commands.Confirm.Select(), commands.Confirm.SelectOk)
        self._confirming = True

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: commands.Basic.Properties,
    ) -> asyncio.Future[None] | None:
        """Write one message; in confirm mode, a future RabbitMQ's confirm resolves.

        Raises:
            BrokerUnavailable: the channel is closed (the future fails the same way
                if it closes before the confirm, or if RabbitMQ nacks the message).
        """
        if self.is_closed:
            raise BrokerUnavailable(
                f"channel {self.number} is closed: {self.close_reason}"
            )
        connection = self.connection
        data = connection.wire.publish(
            self.number, exchange, routing_key, body, properties
        )
        future: asyncio.Future[None] | None = None
        if self._confirming:
            self._published += 1
            future = asyncio.get_running_loop().create_future()
            self._unconfirmed[self._published] = future
        connection.write(data)
        return future

    def _confirmed(self, method: commands.Basic.Ack | commands.Basic.Nack) -> None:
        tag = method.delivery_tag or 0
        tags = [t for t in self._unconfirmed if t <= tag] if method.multiple else [tag]
        for each in tags:
            future = self._unconfirmed.pop(each, None)
            if future is None or future.done():
                continue
            if isinstance(method, commands.Basic.Ack):
                future.set_result(None)
            else:
                future.set_exception(
                    BrokerUnavailable("RabbitMQ could not take the message (nack)")
                )

    async def qos(self, prefetch_count: int) -> None:
        await self.rpc(
            commands.Basic.Qos(prefetch_count=prefetch_count), commands.Basic.QosOk
        )

    async def consume(
        self,
        queue: str,
        consumer_tag: str,
        on_delivery: Callable[[Incoming], None],
        on_cancel: Callable[[], None],
    ) -> str:
        """Start consuming; ``on_delivery`` runs in the socket's callback."""
        self._consumers[consumer_tag] = (on_delivery, on_cancel)
        try:
            ok = await self.rpc(
                commands.Basic.Consume(queue=queue, consumer_tag=consumer_tag),
                commands.Basic.ConsumeOk,
            )
        except BaseException:
            self._consumers.pop(consumer_tag, None)
            raise
        return ok.consumer_tag or consumer_tag

    async def cancel(self, consumer_tag: str) -> None:
        """Stop a consumer; deliveries already on the wire for it are requeued."""
        if self.is_closed or consumer_tag not in self._consumers:
            return
        await self.rpc(
            commands.Basic.Cancel(consumer_tag=consumer_tag), commands.Basic.CancelOk
        )
        self._consumers.pop(consumer_tag, None)

    def ack(self, delivery_tag: int) -> None:
        if not self.is_closed:
            self.connection.write(Wire.ack(self.number, delivery_tag))

    def nack(self, delivery_tag: int, *, requeue: bool = True) -> None:
        if not self.is_closed:
            method = commands.Basic.Nack(delivery_tag=delivery_tag, requeue=requeue)
            self.connection.write(Wire.method(self.number, method))

    def _deliver(self, incoming: Incoming) -> None:
        consumer = self._consumers.get(incoming.deliver.consumer_tag or "")
        if consumer is None:
            # Sent before our basic.cancel reached RabbitMQ: give it back.
            self.nack(incoming.deliver.delivery_tag or 0)
            return
        consumer[0](incoming)

    def _method(self, method: Frame) -> None:
        if isinstance(method, commands.Basic.Ack | commands.Basic.Nack):
            self._confirmed(method)
        elif isinstance(method, commands.Channel.Close):
            self.connection.write(Wire.method(self.number, commands.Channel.CloseOk()))
            self._closed(f"{method.reply_code} {method.reply_text}")
        elif isinstance(method, commands.Basic.Cancel):
            # RabbitMQ cancels a consumer whose queue was deleted.
            consumer = self._consumers.pop(method.consumer_tag or "", None)
            if not method.nowait:
                cancel_ok = commands.Basic.CancelOk(consumer_tag=method.consumer_tag)
                self.connection.write(Wire.method(self.number, cancel_ok))
            if consumer is not None:
                consumer[1]()
        elif isinstance(method, commands.Channel.Flow):
            flow_ok = commands.Channel.FlowOk(active=method.active)
            self.connection.write(Wire.method(self.number, flow_ok))
        elif self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(method)
        else:
            log.warning(
                "amqp.unexpected_method", channel=self.number, method=method.name
            )

    def _closed(self, reason: str) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        self.close_reason = reason
        error = BrokerUnavailable(f"channel {self.number} closed: {reason}")
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
        unconfirmed, self._unconfirmed = self._unconfirmed, {}
        for future in unconfirmed.values():
            if not future.done():
                future.set_exception(error)
        consumers, self._consumers = self._consumers, {}
        for _, on_cancel in consumers.values():
            on_cancel()


class AmqpConnection(asyncio.Protocol):
    """One TCP (or TLS) connection to RabbitMQ for printer traffic (in or out)."""

    def __init__(self, on_lost: Callable[[BaseException | None], None]) -> None:
        self._on_lost = on_lost
        self.wire = Wire()
        self._transport: asyncio.Transport | None = None
        self._channel0: collections.deque[asyncio.Future[Frame]] = collections.deque()
        self._channels: dict[int, AmqpChannel] = {}
        self.channel_max = 2047
        self.heartbeat = 0
        self.is_closed = False
        self._heard = False
        self._timer: asyncio.TimerHandle | None = None
        #: Half-heartbeat intervals in a row in which nothing arrived.
        self._silent = 0
        self._gone = asyncio.Event()
        self._pending: list[bytes] | None = None
        #: Cleared while the transport's buffer is over its high-water mark.
        self._writable = asyncio.Event()
        self._writable.set()
        self._lost_reason: BaseException | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        name: str,
        on_lost: Callable[[BaseException | None], None],
        handshake_timeout: float = 30.0,
    ) -> AmqpConnection:
        """Connect and log in.

        Raises:
            BrokerUnavailable: RabbitMQ cannot be reached or refused the login.
        """
        target = _Target(url)
        loop = asyncio.get_running_loop()
        connection = cls(on_lost)
        try:
            async with asyncio.timeout(handshake_timeout):
                await loop.create_connection(
                    lambda: connection,
                    target.host,
                    target.port,
                    ssl=target.ssl_context(),
                    server_hostname=target.host if target.tls else None,
                )
                await connection._handshake(target, name)
        except (OSError, TimeoutError, BrokerUnavailable) as exc:
            connection.abort()
            raise BrokerUnavailable(f"AMQP connection failed: {exc}") from exc
        return connection

    async def _handshake(self, target: _Target, name: str) -> None:
        start = await self._expect(None, commands.Connection.Start)
        mechanisms = start.mechanisms.split()
        mechanism = "EXTERNAL" if target.external else "PLAIN"
        if mechanism not in mechanisms:
            raise WireError(f"RabbitMQ does not offer {mechanism} ({start.mechanisms})")
        response = "" if target.external else f"\0{target.user}\0{target.password}"
        properties: dict[str, Any] = {
            "product": "zebra-gateway",
            "connection_name": name,
            "capabilities": CAPABILITIES,
        }
        ok = commands.Connection.StartOk(
            client_properties=properties, mechanism=mechanism, response=response
        )
        tune = await self._expect(ok, commands.Connection.Tune)
        self.channel_max = tune.channel_max or 65535
        self.heartbeat = target.heartbeat
        frame_max = tune.frame_max or 131072
        self.wire.frame_max = frame_max
        self.write(
            Wire.method(
                0,
                commands.Connection.TuneOk(
                    channel_max=self.channel_max,
                    frame_max=frame_max,
                    heartbeat=self.heartbeat,
                ),
            )
        )
        await self._expect(
            commands.Connection.Open(virtual_host=target.vhost),
            commands.Connection.OpenOk,
        )
        if self.heartbeat:
            self._timer = asyncio.get_running_loop().call_later(
                self.heartbeat / 2, self._beat
            )

    async def _expect(self, method: Frame | None, reply: type[M]) -> M:
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._channel0.append(waiter)
        if method is not None:
            self.write(Wire.method(0, method))
        answer = await waiter
        if not isinstance(answer, reply):
            raise WireError(f"{answer.name} instead of {reply.name}")
        return answer

    async def channel(self, number: int) -> AmqpChannel:
        """Open channel ``number`` (a closed channel's number may be used again)."""
        if self.is_closed:
            raise BrokerUnavailable("the consume connection is closed")
        if not 0 < number <= self.channel_max:
            raise BrokerUnavailable(
                f"RabbitMQ allows {self.channel_max} channels per connection; "
                f"channel {number} is needed"
            )
        channel = AmqpChannel(self, number)
        self._channels[number] = channel
        await channel.rpc(commands.Channel.Open(), commands.Channel.OpenOk)
        return channel

    async def close(self) -> None:
        """Close politely (RabbitMQ requeues what was not acked)."""
        if self.is_closed or self._transport is None:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._channel0.append(waiter)
        self.write(
            Wire.method(
                0,
                commands.Connection.Close(
                    reply_code=200, reply_text="closing", class_id=0, method_id=0
                ),
            )
        )
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await waiter
        self.abort()
        await self._gone.wait()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def writable(self) -> None:
        """Wait while RabbitMQ is not reading (a full buffer, or connection.blocked).

        Publishers call this first: writes never wait, so without it messages nothing
        confirms (hints, printer events) could pile up in memory.
        """
        if not self._writable.is_set():
            await self._writable.wait()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def write(self, data: bytes) -> None:
        """Queue bytes for the socket; they go out in one write per loop turn.

        Every ack, publish and method of one turn of the event loop (a hundred
        printers' outcomes, say) becomes one system call and fewer TCP segments for
        RabbitMQ to read: fix 20 in docs/performance.md. Order is kept.
        """
        pending = self._pending
        if pending is None:
            self._pending = [data]
            asyncio.get_running_loop().call_soon(self.flush)
        else:
            pending.append(data)

    def flush(self) -> None:
        """Write what this turn queued (also called before the socket closes)."""
        pending, self._pending = self._pending, None
        transport = self._transport
        if pending and transport is not None and not transport.is_closing():
            transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(PROTOCOL_HEADER)

    def data_received(self, data: bytes) -> None:
        self._heard = True
        try:
            events = self.wire.receive(data)
        except WireError as exc:
            log.error("amqp.consume_wire_error", error=str(exc))
            self._lost_reason = exc
            self.abort()
            return
        channels = self._channels
        for event in events:
            if isinstance(event, Incoming):
                channel = channels.get(event.channel)
                if channel is not None:
                    try:
                        channel._deliver(event)
                    except Exception:  # a consumer's bug must not end the others
                        log.exception("amqp.consumer_failed", channel=event.channel)
            elif event.channel == 0:
                self._connection_method(event)
            else:
                channel = channels.get(event.channel)
                if channel is not None:
                    channel._method(event.method)
                    if channel.is_closed:
                        self._channels.pop(event.channel, None)

    def _connection_method(self, event: Method) -> None:
        method = event.method
        if isinstance(method, commands.Connection.Close):
            self.write(Wire.method(0, commands.Connection.CloseOk()))
            self.flush()
            self._lost_reason = BrokerUnavailable(
                f"RabbitMQ closed the connection: {method.reply_code} {method.reply_text}"
            )
            if self._transport is not None:
                self._transport.close()
            self._fail_channel0(self._lost_reason)
        elif isinstance(
            method, commands.Connection.Blocked | commands.Connection.Unblocked
        ):
            pass
        elif self._channel0:
            waiter = self._channel0.popleft()
            if not waiter.done():
                waiter.set_result(method)

    def _fail_channel0(self, error: BaseException) -> None:
        while self._channel0:
            waiter = self._channel0.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_closed = True
        self._gone.set()
        self._writable.set()  # publishers then find the channel closed
        if self._timer is not None:
            self._timer.cancel()
        reason = self._lost_reason or exc
        error = BrokerUnavailable(f"consume connection lost: {reason or 'closed'}")
        self._fail_channel0(error)
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            channel._closed(str(error))
        self._on_lost(reason)

    def _beat(self) -> None:
        """Every half heartbeat: send one; silence for two heartbeats ends it.

        RabbitMQ sends a heartbeat whenever it has sent nothing for half the
        interval, so four silent half-intervals in a row (AMQP's "two missed
        heartbeats") mean a dead path, not a quiet broker.
        """
        if self.is_closed:
            return
        self._silent = 0 if self._heard else self._silent + 1
        self._heard = False
        if self._silent >= SILENT_HALF_INTERVALS:
            self._lost_reason = BrokerUnavailable("RabbitMQ missed its heartbeats")
            self.abort()
            return
        self.write(HEARTBEAT)
        self._timer = asyncio.get_running_loop().call_later(
            self.heartbeat / 2, self._beat
        )


class _Target:
    """The parts of an ``amqp://`` or ``amqps://`` URL the connection uses."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise BrokerUnavailable(f"not an AMQP URL: scheme {parts.scheme!r}")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        self.tls = parts.scheme == "amqps"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (5671 if self.tls else 5672)
        self.user = unquote(parts.username or "guest")
        self.password = unquote(parts.password or "guest")
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        self.vhost = unquote(path) or "/"
        try:
            self.heartbeat = int(query.get("heartbeat", "60"))
        except ValueError:
            raise BrokerUnavailable(
                "the AMQP URL's heartbeat= must be a whole number of seconds"
            ) from None
        self.external = query.get("auth", "plain").lower() == "external"
        self._query = query

    def ssl_context(self) -> ssl.SSLContext | None:
        """aio-pika's query options: cafile, capath, certfile, keyfile, no_verify_ssl."""
        if not self.tls:
            return None
        query = self._query
        context = ssl.create_default_context(
            cafile=query.get("cafile"), capath=query.get("capath")
        )
        if "certfile" in query:
            context.load_cert_chain(query["certfile"], query.get("keyfile"))
        if query.get("no_verify_ssl", "0") != "0":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
