"""The client across a lost AMQP connection, cut with a small TCP proxy.

Direct reply-to addresses belong to one channel: when the connection drops, replies
to requests in flight can no longer arrive. The client must say so at once
(BrokerUnavailable) and work again once aio-pika has reconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from broker.client import BrokerClient
from broker.errors import BrokerUnavailable
from broker.schemas import OUTCOME_TYPE, JobStatus, Outcome
from broker.settings import ClientSettings, load_settings
from broker.topology import Channel, Topology
from tests.support.tcp_proxy import TcpProxy
from tests.support.timing import LONG, SHORT

PRINTER = "50J161000398"


@pytest.fixture
async def proxy(amqp_url: str) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the test RabbitMQ."""
    parts = urlsplit(amqp_url)
    running = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await running.start()
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def cleanup(amqp_url: str, namespace: str) -> AsyncIterator[None]:
    """Delete this namespace's queues and exchanges after the test."""
    yield
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        topology = Topology(namespace=namespace)
        for printer_channel in Channel:
            await channel.queue_delete(topology.printer_queue(PRINTER, printer_channel))
        for exchange in (
            topology.requests_exchange,
            topology.events_exchange,
            topology.dead_letter_exchange,
        ):
            await channel.exchange_delete(exchange)


def through(proxy: TcpProxy, amqp_url: str) -> str:
    """The test broker's URL, through the proxy, reconnecting quickly."""
    parts = urlsplit(amqp_url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    return urlunsplit(
        (parts.scheme, netloc, parts.path or "/", "reconnect_interval=0.1", "")
    )


@contextlib.asynccontextmanager
async def delivering_gateway(amqp_url: str, queue: str) -> AsyncIterator[None]:
    """Answer every request on ``queue`` with ``delivered`` (directly, no proxy)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()

        async def answer(message: AbstractIncomingMessage) -> None:
            await message.ack()
            outcome = Outcome(
                job_id=message.message_id or "",
                printer_serial=PRINTER,
                status=JobStatus.DELIVERED,
            )
            await channel.default_exchange.publish(
                aio_pika.Message(
                    b"",
                    correlation_id=message.correlation_id,
                    type=OUTCOME_TYPE,
                    headers=dict(outcome.to_headers()),
                ),
                routing_key=message.reply_to or "",
                mandatory=False,
            )

        consumed = await channel.get_queue(queue)
        await consumed.consume(answer)
        yield


@pytest.mark.usefixtures("cleanup")
async def test_lost_connection_fails_waiting_jobs_then_recovers(
    proxy: TcpProxy,
    amqp_url: str,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cut connection fails waiting handles at once; later requests work again."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        ClientSettings, amqp_url=through(proxy, amqp_url), namespace=namespace
    )
    async with BrokerClient(settings) as client:
        await client.provision(PRINTER)
        waiting = await client.submit(PRINTER, b"^XA^XZ")
        proxy.disconnect_all()
        async with asyncio.timeout(SHORT):
            with pytest.raises(BrokerUnavailable, match="replies in flight"):
                await waiting.outcome()
        queue = Topology(namespace=namespace).printer_queue(PRINTER, Channel.RAW)
        async with delivering_gateway(amqp_url, queue):
            # submit() waits for the reply consumer to be back before publishing.
            async with asyncio.timeout(LONG):
                outcome = await client.print(PRINTER, "^XA^FDagain^FS^XZ")
        assert outcome.status is JobStatus.DELIVERED
