"""A producer with a plain AMQP client and none of our code gets the contract's outcomes.

Everything here follows docs/contract.md by hand: exchange names, routing keys,
properties and headers, with direct reply-to for the answers.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest
from pamqp.commands import Basic

from tests.support.timing import SHORT

SERIAL = "50J000000001"


class RawProducer:
    """Publishes like a producer in another language would, with aio-pika only."""

    def __init__(self, amqp_url: str, namespace: str) -> None:
        self.amqp_url = amqp_url
        self.namespace = namespace
        self.replies: dict[
            str, asyncio.Future[aio_pika.abc.AbstractIncomingMessage]
        ] = {}

    async def __aenter__(self) -> RawProducer:
        self.connection = await aio_pika.connect(self.amqp_url)
        self.channel = await self.connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        reply_queue = await self.channel.get_queue(
            "amq.rabbitmq.reply-to", ensure=False
        )
        await reply_queue.consume(self._on_reply, no_ack=True)
        self.exchange = await self.channel.get_exchange(
            f"{self.namespace}.requests", ensure=False
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connection.close()

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        future = self.replies.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message)

    async def request(
        self,
        routing_key: str,
        body: bytes,
        *,
        message_type: str | None = None,
        headers: dict[str, aio_pika.abc.FieldValue] | None = None,
        message_id: str | None = None,
    ) -> aio_pika.abc.AbstractIncomingMessage:
        correlation_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self.replies[correlation_id] = future
        await self.exchange.publish(
            aio_pika.Message(
                body,
                type=message_type,
                headers=headers or {},
                message_id=message_id,
                correlation_id=correlation_id,
                reply_to="amq.rabbitmq.reply-to",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=routing_key,
            mandatory=True,
        )
        async with asyncio.timeout(SHORT):
            reply: aio_pika.abc.AbstractIncomingMessage = await future
        return reply


@pytest.fixture
async def producer(harness):
    async with RawProducer(harness.amqp_url, harness.namespace) as producer:
        yield producer


async def test_raw_print_gets_delivered_outcome_with_its_job_id(harness, producer):
    """A print published by hand ends `delivered`, with the producer's message_id."""
    gateway = await harness.gateway()
    printer = await harness.printer(harness.url(gateway), SERIAL)
    reply = await producer.request(
        f"{SERIAL}.raw", b"^XA^FDraw^FS^XZ", message_id="job-42"
    )
    assert reply.type == "zebra.outcome"
    assert reply.headers["x-zebra-status"] == "delivered"
    assert reply.headers["x-zebra-job-id"] == "job-42"
    assert reply.headers["x-zebra-printer"] == SERIAL
    assert "x-zebra-error" not in reply.headers
    assert await printer.wait_for_labels(1, timeout=SHORT) == [b"^XA^FDraw^FS^XZ"]


async def test_raw_print_without_message_id_gets_an_assigned_job_id(harness, producer):
    """Without a message_id the gateway assigns a job id and reports it."""
    gateway = await harness.gateway()
    await harness.printer(harness.url(gateway), SERIAL)
    reply = await producer.request(f"{SERIAL}.raw", b"^XA^XZ")
    job_id = reply.headers["x-zebra-job-id"]
    assert isinstance(job_id, str)
    assert uuid.UUID(job_id)


async def test_raw_sgd_get_answers_with_json_body(harness, producer):
    """An SGD read published by hand (type defaults to zebra.sgd on .config) answers ok."""
    gateway = await harness.gateway()
    await harness.printer(harness.url(gateway), SERIAL)
    reply = await producer.request(
        f"{SERIAL}.config", json.dumps({"device.friendly_name": None}).encode()
    )
    assert reply.headers["x-zebra-status"] == "ok"
    assert json.loads(reply.body) == {"device.friendly_name": SERIAL}


async def test_raw_query_with_frames_framing_returns_host_status(harness, producer):
    """`~HS` as zebra.query with frames:3 returns the three STX…ETX lines."""
    gateway = await harness.gateway()
    await harness.printer(harness.url(gateway), SERIAL)
    reply = await producer.request(
        f"{SERIAL}.raw",
        b"~HS",
        message_type="zebra.query",
        headers={"x-zebra-response": "frames:3"},
    )
    assert reply.headers["x-zebra-status"] == "ok"
    assert reply.body.count(b"\x02") == 3
    assert reply.body.count(b"\x03") == 3


async def test_raw_unknown_type_is_rejected_with_reason(harness, producer):
    """An unknown `type` ends `rejected` with a one-sentence reason."""
    gateway = await harness.gateway()
    printer = await harness.printer(harness.url(gateway), SERIAL)
    reply = await producer.request(f"{SERIAL}.raw", b"^XA^XZ", message_type="zebra.fax")
    assert reply.headers["x-zebra-status"] == "rejected"
    assert "zebra.fax" in reply.headers["x-zebra-error"]
    assert reply.body == b""
    assert printer.raw_received == bytearray()


async def test_unknown_printer_is_returned_as_unroutable(harness, producer):
    """With `mandatory`, a request for a printer never seen comes back (312 NO_ROUTE)."""
    await harness.gateway()
    with pytest.raises(aio_pika.exceptions.PublishError) as caught:
        await producer.exchange.publish(
            aio_pika.Message(b"^XA^XZ"), routing_key="NEVERSEEN.raw", mandatory=True
        )
    assert caught.value.message is not None
    returned = caught.value.message.delivery
    assert isinstance(returned, Basic.Return)
    assert returned.reply_code == 312
    assert returned.reply_text == "NO_ROUTE"


async def test_raw_query_without_response_header_is_rejected(harness, producer):
    """A zebra.query without `x-zebra-response` is rejected, and nothing is sent."""
    gateway = await harness.gateway()
    printer = await harness.printer(harness.url(gateway), SERIAL)
    reply = await producer.request(f"{SERIAL}.raw", b"~HS", message_type="zebra.query")
    assert reply.headers["x-zebra-status"] == "rejected"
    assert "x-zebra-response" in reply.headers["x-zebra-error"]
    assert printer.raw_received == bytearray()


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (b'["device.friendly_name"]', {}, "JSON object"),
        (b"{not json", {}, "JSON"),
        (b"{}", {}, "non-empty"),
        (b'{"a": null}', {"x-zebra-timeout-ms": "soon"}, "x-zebra-timeout-ms"),
    ],
)
async def test_raw_invalid_sgd_is_rejected_and_not_requeued(
    harness, producer, body, headers, reason
):
    """An invalid SGD request ends `rejected` at once; the next request is answered."""
    gateway = await harness.gateway()
    await harness.printer(harness.url(gateway), SERIAL)
    reply = await producer.request(f"{SERIAL}.config", body, headers=headers)
    assert reply.headers["x-zebra-status"] == "rejected"
    assert reason in reply.headers["x-zebra-error"]
    good = await producer.request(f"{SERIAL}.config", b'{"device.friendly_name": null}')
    assert good.headers["x-zebra-status"] == "ok"


async def test_raw_print_sent_to_config_key_is_rejected(harness, producer):
    """A zebra.print published with the `.config` key is rejected with the right key."""
    gateway = await harness.gateway()
    await harness.printer(harness.url(gateway), SERIAL)
    reply = await producer.request(
        f"{SERIAL}.config", b"^XA^XZ", message_type="zebra.print"
    )
    assert reply.headers["x-zebra-status"] == "rejected"
    assert "<serial>.raw" in reply.headers["x-zebra-error"]
