"""The gateway's consume-only AMQP connection against the real RabbitMQ.

gateway/amqpconn.py speaks AMQP itself (fix 17 in docs/performance.md): these tests
check what a replica relies on: deliveries whole and in order, acks that RabbitMQ
takes, prefetch, a consumer told when its queue goes, a channel RabbitMQ closed
replaced under the same number, and a bus that reconnects when an operator closes
only its consume connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import pytest
from pamqp import commands

from broker.errors import BrokerUnavailable
from gateway.amqpconn import AmqpConnection
from gateway.amqpwire import Incoming
from tests.support.bus import start_bus
from tests.support.tcp_proxy import TcpProxy
from tests.support.tls import TestCertificates, make_test_certificates

WAIT = 10.0


async def declare(amqp_url: str, queue: str, bodies: list[bytes]) -> None:
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, auto_delete=False)
        for payload in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(payload, message_id=str(len(payload))),
                routing_key=queue,
            )


async def message_count(amqp_url: str, queue: str) -> int:
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        assert count is not None
        return count


async def delete(amqp_url: str, queue: str) -> None:
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)


async def test_deliveries_arrive_whole_one_at_a_time_and_acks_land(
    amqp_url: str, namespace: str
) -> None:
    queue = f"{namespace}.consume"
    bodies = [b"^XA^FDone^FS^XZ", bytes(range(256)) * 1200, b""]  # 300 KiB: many frames
    await declare(amqp_url, queue, bodies)
    lost: list[BaseException | None] = []
    connection = await AmqpConnection.open(amqp_url, name="test", on_lost=lost.append)
    try:
        channel = await connection.channel(1)
        await channel.qos(1)
        arrived: asyncio.Queue[Incoming] = asyncio.Queue()
        await channel.consume(queue, "t1", arrived.put_nowait, lambda: None)
        received = []
        for _ in bodies:
            incoming = await asyncio.wait_for(arrived.get(), WAIT)
            # Prefetch 1: the next one comes only after this ack.
            assert arrived.empty()
            received.append(incoming.body)
            assert incoming.properties.message_id == str(len(incoming.body))
            channel.ack(incoming.deliver.delivery_tag or 0)
        assert received == bodies
        await channel.cancel("t1")
    finally:
        await connection.close()
    assert connection.is_closed
    assert lost == [None]
    # Unacked messages would be back in the queue after the close.
    assert await message_count(amqp_url, queue) == 0
    await delete(amqp_url, queue)


async def test_a_nacked_delivery_comes_back(amqp_url: str, namespace: str) -> None:
    queue = f"{namespace}.nack"
    await declare(amqp_url, queue, [b"label"])
    connection = await AmqpConnection.open(amqp_url, name="test", on_lost=print)
    try:
        channel = await connection.channel(1)
        await channel.qos(1)
        arrived: asyncio.Queue[Incoming] = asyncio.Queue()
        await channel.consume(queue, "t1", arrived.put_nowait, lambda: None)
        first = await asyncio.wait_for(arrived.get(), WAIT)
        assert not first.deliver.redelivered
        channel.nack(first.deliver.delivery_tag or 0)
        again = await asyncio.wait_for(arrived.get(), WAIT)
        assert (again.body, again.deliver.redelivered) == (b"label", True)
        channel.ack(again.deliver.delivery_tag or 0)
    finally:
        await connection.close()
    assert await message_count(amqp_url, queue) == 0
    await delete(amqp_url, queue)


async def test_a_closed_channel_fails_its_call_and_its_number_opens_again(
    amqp_url: str, namespace: str
) -> None:
    queue = f"{namespace}.present"
    await declare(amqp_url, queue, [b"after"])
    connection = await AmqpConnection.open(amqp_url, name="test", on_lost=print)
    try:
        channel = await connection.channel(1)
        cancelled: list[str] = []
        await channel.consume(
            queue, "bystander", lambda _: None, lambda: cancelled.append("bystander")
        )
        with pytest.raises(BrokerUnavailable, match="404"):
            await channel.consume(f"{namespace}.missing", "t", print, lambda: None)
        assert "NOT_FOUND" in (channel.close_reason or "")
        assert channel.is_closed
        assert cancelled == ["bystander"]  # its consumers are told
        channel.ack(1)  # dropped: an ack on a closed channel must not reach the new one
        again = await connection.channel(1)
        arrived: asyncio.Queue[Incoming] = asyncio.Queue()
        await again.consume(queue, "t2", arrived.put_nowait, lambda: None)
        incoming = await asyncio.wait_for(arrived.get(), WAIT)
        assert incoming.body == b"after"
        again.ack(incoming.deliver.delivery_tag or 0)
    finally:
        await connection.close()
    await delete(amqp_url, queue)


async def test_a_consumer_is_told_when_its_queue_is_deleted(
    amqp_url: str, namespace: str
) -> None:
    queue = f"{namespace}.doomed"
    await declare(amqp_url, queue, [])
    connection = await AmqpConnection.open(amqp_url, name="test", on_lost=print)
    try:
        channel = await connection.channel(1)
        cancelled = asyncio.Event()
        await channel.consume(queue, "t", print, cancelled.set)
        await delete(amqp_url, queue)
        await asyncio.wait_for(cancelled.wait(), WAIT)
        assert not channel.is_closed  # the channel goes on for the other consumers
        await channel.qos(1)
    finally:
        await connection.close()


async def test_wrong_credentials_are_a_clear_error(amqp_url: str) -> None:
    wrong = amqp_url.replace("guest:guest@", "guest:wrong@")
    with pytest.raises(BrokerUnavailable, match=r"ACCESS_REFUSED|403|closed"):
        await AmqpConnection.open(wrong, name="test", on_lost=print)


def close_connections_named(name: str) -> int:
    """Close RabbitMQ connections by client-provided name, as an operator would."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    closed = 0
    for line in listing.splitlines():
        pid, _, properties = line.partition("\t")
        if f'{{"connection_name","{name}"}}' in properties:
            subprocess.run(
                ["rabbitmqctl", "-q", "close_connection", pid, "closed by test"],
                capture_output=True,
                timeout=60,
                check=True,
            )
            closed += 1
    return closed


async def test_the_bus_reconnects_when_only_its_consume_connection_is_closed(
    amqp_url: str, namespace: str
) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed")
    replica = f"{namespace}-r1"
    lost = asyncio.Event()
    reconnected = asyncio.Event()

    async def on_reconnected() -> None:
        reconnected.set()

    bus = await start_bus(
        amqp_url,
        namespace,
        replica=replica,
        on_connection_lost=lost.set,
        on_reconnected=on_reconnected,
    )
    queue = f"{namespace}.printer"
    try:
        await declare(amqp_url, queue, [])
        consumer = await bus.consume(queue, consumer_tag="before")
        closed = await asyncio.to_thread(
            close_connections_named, f"zebra-gateway {replica} consume"
        )
        assert closed == 1
        await asyncio.wait_for(lost.wait(), WAIT)
        with pytest.raises(BrokerUnavailable):
            await asyncio.wait_for(consumer.get(), WAIT)
        await asyncio.wait_for(reconnected.wait(), 30)
        consumer = await bus.consume(queue, consumer_tag="after")
        await declare(amqp_url, queue, [b"label"])
        delivery = await asyncio.wait_for(consumer.get(), WAIT)
        assert delivery.body == b"label"
        await delivery.ack()
        await consumer.cancel()
    finally:
        await bus.close()
    assert await message_count(amqp_url, queue) == 0
    await delete(amqp_url, queue)


async def test_publishes_are_confirmed_and_arrive_whole(
    amqp_url: str, namespace: str
) -> None:
    queue = f"{namespace}.published"
    await declare(amqp_url, queue, [])
    bodies = [b'{"status":"printed"}', bytes(range(256)) * 1200, b""]
    connection = await AmqpConnection.open(amqp_url, name="test", on_lost=print)
    try:
        channel = await connection.channel(1)
        await channel.confirm_select()
        confirms = []
        for index, payload in enumerate(bodies):
            properties = commands.Basic.Properties(
                correlation_id=f"job-{index}", headers={"x-zebra-status": "printed"}
            )
            confirm = channel.publish("", queue, payload, properties)
            assert confirm is not None
            confirms.append(confirm)
        await asyncio.wait_for(asyncio.gather(*confirms), WAIT)
    finally:
        await connection.close()
    async with await aio_pika.connect(amqp_url) as reader:
        source = await (await reader.channel()).get_queue(queue)
        for index, payload in enumerate(bodies):
            message = await source.get(no_ack=True, timeout=WAIT)
            assert message is not None
            assert (message.body, message.correlation_id) == (payload, f"job-{index}")
            assert message.headers == {"x-zebra-status": "printed"}
    await delete(amqp_url, queue)


async def test_a_publish_rabbitmq_refuses_fails_its_confirm(
    amqp_url: str, namespace: str
) -> None:
    connection = await AmqpConnection.open(amqp_url, name="test", on_lost=print)
    try:
        channel = await connection.channel(1)
        await channel.confirm_select()
        confirm = channel.publish(
            f"{namespace}.no-such-exchange", "k", b"x", commands.Basic.Properties()
        )
        assert confirm is not None
        with pytest.raises(BrokerUnavailable, match="404"):
            await asyncio.wait_for(confirm, WAIT)
        assert channel.is_closed
        with pytest.raises(BrokerUnavailable, match="closed"):
            channel.publish("", "k", b"x", commands.Basic.Properties())
    finally:
        await connection.close()


async def test_the_bus_reopens_a_publish_channel_rabbitmq_closed(
    amqp_url: str, namespace: str
) -> None:
    lost: list[str] = []
    bus = await start_bus(
        amqp_url, namespace, on_connection_lost=lambda: lost.append("lost")
    )
    queue = f"{namespace}.replies"
    try:
        await declare(amqp_url, queue, [])
        # An exchange an operator deleted: that publish fails, the next ones work.
        with pytest.raises(BrokerUnavailable, match="404"):
            await bus._publish(
                f"{namespace}.deleted", "k", b"x", commands.Basic.Properties()
            )
        await bus.publish_reply(queue, b"after", message_type="t", correlation_id="c")
        assert await message_count(amqp_url, queue) == 1
        assert lost == []
    finally:
        await bus.close()
    await delete(amqp_url, queue)


async def test_a_silent_broker_is_noticed_by_missed_heartbeats(amqp_url: str) -> None:
    """A network path that drops everything (no reset) ends the connection."""
    parts = urlsplit(amqp_url)
    proxy = await TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672).start()
    lost: asyncio.Future[BaseException | None] = (
        asyncio.get_running_loop().create_future()
    )
    through_proxy = parts._replace(
        netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}",
        query="heartbeat=2",
    ).geturl()
    connection = await AmqpConnection.open(
        through_proxy, name="test", on_lost=lost.set_result
    )
    try:
        channel = await connection.channel(1)
        await channel.qos(1)
        proxy.freeze()
        # Heartbeat 2 s: four silent half-intervals in a row, about 4-5 s.
        reason = await asyncio.wait_for(lost, WAIT)
        assert "heartbeats" in str(reason)
        assert channel.is_closed
    finally:
        connection.abort()
        await proxy.close()


async def _tls_terminator(
    certificates: TestCertificates, amqp_url: str
) -> asyncio.Server:
    """TLS in front of the test RabbitMQ (which listens in plain TCP only)."""
    parts = urlsplit(amqp_url)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.server_cert, certificates.server_key)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def accept(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        upstream = await asyncio.open_connection(parts.hostname, parts.port or 5672)
        await asyncio.gather(pipe(reader, upstream[1]), pipe(upstream[0], writer))

    return await asyncio.start_server(accept, "127.0.0.1", 0, ssl=context)


async def test_amqps_with_the_urls_ca_file_for_every_connection(
    amqp_url: str, namespace: str, tmp_path: Path
) -> None:
    """amqps:// and ?cafile= reach all three of a replica's connections."""
    certificates = make_test_certificates(tmp_path)
    server = await _tls_terminator(certificates, amqp_url)
    port = server.sockets[0].getsockname()[1]
    parts = urlsplit(amqp_url)
    base = f"amqps://{parts.username}:{parts.password}@localhost:{port}/"
    try:
        with pytest.raises(BrokerUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await AmqpConnection.open(base, name="test", on_lost=print)
        bus = await start_bus(f"{base}?cafile={certificates.ca_cert}", namespace)
        queue = f"{namespace}.tls"
        try:
            await declare(amqp_url, queue, [b"over tls"])
            consumer = await bus.consume(queue, consumer_tag="tls")
            delivery = await asyncio.wait_for(consumer.get(), WAIT)
            assert delivery.body == b"over tls"
            await delivery.ack()
            await consumer.cancel()
            await bus.publish_reply(
                queue, b"reply", message_type="t", correlation_id="c"
            )
            assert await message_count(amqp_url, queue) == 1
        finally:
            await bus.close()
        await delete(amqp_url, queue)
    finally:
        server.close()
