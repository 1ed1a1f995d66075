"""The benchmark's own AMQP work: the RabbitMQ floors and cleaning up its namespace.

The only module of ``scripts/bench`` that imports aio-pika (hence the ``noqa``: the
project bans it outside ``broker/amqp.py`` and ``gateway/bus.py``). Floors are the
least a Python service built on aio-pika can do, measured on the same broker, with
the same library, in the same run as the product:

- an RPC round trip: publish a request with ``reply_to`` (direct reply-to), a
  consumer publishes the reply and acks, the caller gets it;
- a publish-to-consume hop: publish 1 KiB, time until the consumer has it;
- a consume-and-ack rate: a queue filled with 1 KiB persistent messages, drained with
  prefetch 100 and one ack per message.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from typing import Any

import aio_pika  # noqa: TID251
import aiormq  # noqa: TID251
from aio_pika.abc import (  # noqa: TID251
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    DeliveryMode,
)

from broker.topology import Channel, Topology

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
#: Seconds one floor sample may take before the run is declared broken.
SAMPLE_TIMEOUT = 10.0


async def connect(url: str, name: str) -> AbstractConnection:
    """Open a plain connection named ``name`` in the management UI."""
    return await aio_pika.connect(url, client_properties={"connection_name": name})


#: Declared by RabbitMQ's ``rabbitmq_event_exchange`` plugin (test support only).
EVENT_EXCHANGE = "amq.rabbitmq.event"


async def has_event_exchange(connection: AbstractConnection) -> bool:
    """Whether ``rabbitmq_event_exchange`` is on (its exchange exists).

    The test suite needs it; a production broker does not, and it costs: it
    publishes an event for every binding, consumer and queue created or deleted.
    """
    channel = await connection.channel(publisher_confirms=False)
    try:
        await channel.get_exchange(EVENT_EXCHANGE, ensure=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return False
    finally:
        if not channel.is_closed:
            await channel.close()
    return True


def server_info(connection: AbstractConnection) -> dict[str, Any]:
    """RabbitMQ's product, version and Erlang platform, as the broker announced them."""
    properties: dict[str, Any] = {}
    underlay = getattr(connection, "transport", None)
    amqp = getattr(underlay, "connection", None)
    if amqp is not None:
        properties = dict(getattr(amqp, "server_properties", {}) or {})

    def text(key: str) -> str | None:
        value = properties.get(key)
        return value.decode() if isinstance(value, bytes) else value

    return {
        "product": text("product"),
        "version": text("version"),
        "platform": text("platform"),
    }


async def rpc_round_trips(
    connection: AbstractConnection, queue_name: str, samples: int, warmup: int = 20
) -> list[float]:
    """Time ``samples`` sequential RPCs, in seconds (aio-pika on both sides)."""
    server = await connection.channel(publisher_confirms=False)
    client = await connection.channel(publisher_confirms=False)
    await server.set_qos(prefetch_count=1)
    queue = await server.declare_queue(queue_name, exclusive=True, auto_delete=True)

    async def answer(message: AbstractIncomingMessage) -> None:
        await server.default_exchange.publish(
            aio_pika.Message(message.body, correlation_id=message.correlation_id),
            routing_key=message.reply_to or "",
            mandatory=False,
        )
        await message.ack()

    await queue.consume(answer)
    pending: dict[str, asyncio.Future[None]] = {}

    async def reply(message: AbstractIncomingMessage) -> None:
        future = pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(None)

    replies = await client.get_queue(DIRECT_REPLY_TO, ensure=False)
    await replies.consume(reply, no_ack=True)
    body = b'{"device.friendly_name":null}'
    loop = asyncio.get_running_loop()
    times: list[float] = []
    try:
        for index in range(warmup + samples):
            correlation_id = uuid.uuid4().hex
            future: asyncio.Future[None] = loop.create_future()
            pending[correlation_id] = future
            start = time.perf_counter()
            await client.default_exchange.publish(
                aio_pika.Message(
                    body, correlation_id=correlation_id, reply_to=DIRECT_REPLY_TO
                ),
                routing_key=queue_name,
            )
            async with asyncio.timeout(SAMPLE_TIMEOUT):
                await future
            if index >= warmup:
                times.append(time.perf_counter() - start)
    finally:
        await client.close()
        await server.close()
    return times


async def publish_consume_hops(
    connection: AbstractConnection,
    queue_name: str,
    samples: int,
    size: int = 1024,
    warmup: int = 20,
    *,
    durable_arguments: dict[str, Any] | None = None,
) -> list[float]:
    """Time ``samples`` sequential publish-to-consume hops of ``size`` bytes.

    By default the plainest hop: a transient exclusive queue, transient messages, no
    publisher confirms. With ``durable_arguments``, the hop as the contract makes it
    for a print request: a durable queue with those arguments, persistent messages,
    published mandatory with a publisher confirm.
    """
    durable = durable_arguments is not None
    consumer = await connection.channel(publisher_confirms=False)
    producer = await connection.channel(publisher_confirms=durable)
    await consumer.set_qos(prefetch_count=1)
    queue = await consumer.declare_queue(
        queue_name,
        durable=durable,
        exclusive=not durable,
        auto_delete=not durable,
        arguments=durable_arguments,
    )
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[float] = loop.create_future()

    async def received(message: AbstractIncomingMessage) -> None:
        now = time.perf_counter()
        await message.ack()
        if not arrived.done():
            arrived.set_result(now)

    await queue.consume(received)
    body = b"x" * size
    mode = aio_pika.DeliveryMode.PERSISTENT if durable else None
    times: list[float] = []
    try:
        for index in range(warmup + samples):
            arrived = loop.create_future()
            start = time.perf_counter()
            await producer.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=mode),
                routing_key=queue_name,
                mandatory=durable,
            )
            async with asyncio.timeout(SAMPLE_TIMEOUT):
                end = await arrived
            if index >= warmup:
                times.append(end - start)
    finally:
        await consumer.close()
        if durable:
            # After its consumer is gone: deleting a consumed queue cancels the
            # consumer from the broker's side (a warning from aiormq).
            await producer.queue_delete(queue_name)
        await producer.close()
    return times


async def consume_rate(
    connection: AbstractConnection, queue_name: str, count: int, size: int = 1024
) -> dict[str, Any]:
    """Fill a durable queue with ``count`` persistent messages, then drain it.

    Returns the drain rate over first-to-last delivery (``per_s``), with prefetch
    100 and an ack per message, as a service consuming its queue would.
    """
    filler = await connection.channel(publisher_confirms=True)
    await filler.declare_queue(queue_name, durable=True)
    body = b"x" * size
    for start in range(0, count, 500):
        await asyncio.gather(
            *(
                filler.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=DeliveryMode.PERSISTENT),
                    routing_key=queue_name,
                )
                for _ in range(min(500, count - start))
            )
        )
    consumer = await connection.channel(publisher_confirms=False)
    await consumer.set_qos(prefetch_count=100)
    drain = await consumer.get_queue(queue_name, ensure=False)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    stamps: list[float] = []

    async def received(message: AbstractIncomingMessage) -> None:
        await message.ack()
        stamps.append(time.perf_counter())
        if len(stamps) >= count and not done.done():
            done.set_result(None)

    started = time.perf_counter()
    tag = await drain.consume(received)
    try:
        async with asyncio.timeout(SAMPLE_TIMEOUT + count / 500):
            await done
    finally:
        await drain.cancel(tag)
        await consumer.close()
        await filler.queue_delete(queue_name)
        await filler.close()
    window = stamps[-1] - stamps[0]
    return {
        "messages": count,
        "size": size,
        "per_s": round((count - 1) / window, 1) if window > 0 else None,
        "first_delivery_s": round(stamps[0] - started, 4),
    }


async def publish_many(
    connection: AbstractConnection,
    exchange: str,
    routing_keys: Iterable[str],
    body: bytes,
    message_type: str = "zebra.print",
    batch: int = 500,
) -> int:
    """Publish ``body`` once per routing key (persistent, confirmed in batches).

    Returns how many messages RabbitMQ confirmed.
    """
    channel = await connection.channel(publisher_confirms=True)
    try:
        target = await channel.get_exchange(exchange, ensure=False)
        keys = list(routing_keys)
        for start in range(0, len(keys), batch):
            await asyncio.gather(
                *(
                    target.publish(
                        aio_pika.Message(
                            body,
                            type=message_type,
                            delivery_mode=DeliveryMode.PERSISTENT,
                        ),
                        routing_key=key,
                    )
                    for key in keys[start : start + batch]
                )
            )
    finally:
        await channel.close()
    return len(keys)


async def delete_queues(
    connection: AbstractConnection, names: Iterable[str], channels: int = 8
) -> int:
    """Delete queues (missing ones are fine) over ``channels`` channels side by side.

    Returns how many deletions were sent.
    """
    pending = list(names)
    if not pending:
        return 0
    slices = [pending[index::channels] for index in range(channels)]

    async def work(batch: list[str]) -> None:
        channel: AbstractChannel | None = None
        for name in batch:
            if channel is None or channel.is_closed:
                channel = await connection.channel(publisher_confirms=False)
            try:
                await channel.queue_delete(name)
            except aiormq.exceptions.AMQPError:
                channel = None
        if channel is not None and not channel.is_closed:
            await channel.close()

    await asyncio.gather(*(work(batch) for batch in slices if batch))
    return len(pending)


def printer_queues(topology: Topology, serials: Iterable[str]) -> list[str]:
    """Both queue names of every serial."""
    return [
        topology.printer_queue(serial, kind) for serial in serials for kind in Channel
    ]


async def delete_namespace(connection: AbstractConnection, topology: Topology) -> None:
    """Delete the shared queues and the exchanges of a namespace."""
    await delete_queues(
        connection, [topology.dead_letter_queue, topology.replicas_queue], channels=1
    )
    channel = await connection.channel(publisher_confirms=False)
    try:
        for spec in topology.gateway_exchanges():
            await channel.exchange_delete(spec.name)
    finally:
        await channel.close()


__all__ = [
    "AbstractConnection",
    "connect",
    "consume_rate",
    "delete_namespace",
    "delete_queues",
    "printer_queues",
    "publish_consume_hops",
    "publish_many",
    "rpc_round_trips",
    "server_info",
]
