"""Queues, arguments, provisioning, expiry and dead letters (contract §1, §2)."""

from __future__ import annotations

from typing import Any

import aio_pika
import pytest

from broker.errors import QueueFull, UnroutableMessage
from broker.schemas import JobStatus
from broker.topology import Channel
from tests.support.timing import SHORT

SERIAL = "50J000000001"


async def declare_passive(amqp_url: str, name: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return queue.declaration_result.message_count or 0


async def redeclare(amqp_url: str, name: str, arguments: dict[str, Any]) -> None:
    """Declare again with the given arguments: RabbitMQ refuses any that differ."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True, arguments=arguments)


async def test_printer_queues_are_declared_on_first_connect(harness):
    """A printer's raw and config queues exist, with the contract's arguments, once it connects."""
    gateway = await harness.gateway(queue_max_length=500)
    printer = await harness.printer(harness.url(gateway), SERIAL)
    await printer.wait_channel("raw", timeout=SHORT)
    topo = harness.topology
    expected = {
        "x-dead-letter-exchange": f"{harness.namespace}.dlx",
        "x-max-length": 500,
        "x-overflow": "reject-publish",
        "x-single-active-consumer": True,
        "x-queue-type": "classic",
    }
    for channel in ("raw", "config"):
        name = f"{harness.namespace}.printer.{SERIAL}.{channel}"
        await redeclare(harness.amqp_url, name, expected)  # same arguments: accepted
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
            await redeclare(harness.amqp_url, name, {**expected, "x-max-length": 501})
    assert (
        topo.printer_queue(SERIAL, Channel.RAW)
        == f"{harness.namespace}.printer.{SERIAL}.raw"
    )


async def test_provision_declares_queues_before_first_connect(harness):
    """`provision` makes a printer routable before it ever connects."""
    client = await harness.client()
    with pytest.raises(UnroutableMessage):
        await client.submit("50J000000009", b"^XA^XZ")
    await client.provision("50J000000009")
    harness.serials.add("50J000000009")
    await client.submit("50J000000009", b"^XA^XZ")
    name = f"{harness.namespace}.printer.50J000000009.raw"
    assert await declare_passive(harness.amqp_url, name) == 1


async def test_full_queue_refuses_the_publish(harness):
    """A printer queue at its length limit nacks new requests: QueueFull, nothing dropped."""
    client = await harness.client(queue_max_length=2)
    await client.provision("50J000000003")
    harness.serials.add("50J000000003")
    await client.submit("50J000000003", b"^XA^FD1^XZ")
    await client.submit("50J000000003", b"^XA^FD2^XZ")
    with pytest.raises(QueueFull) as caught:
        await client.submit("50J000000003", b"^XA^FD3^XZ")
    assert "50J000000003" in str(caught.value)
    name = f"{harness.namespace}.printer.50J000000003.raw"
    assert await declare_passive(harness.amqp_url, name) == 2


async def test_expired_job_ends_expired_and_never_prints(harness):
    """A job whose lifetime runs out while the printer is offline ends `expired`."""
    await harness.gateway()
    client = await harness.client()
    await client.provision("50J000000004")
    harness.serials.add("50J000000004")
    handle = await client.submit("50J000000004", b"^XA^FDlate^XZ", expiration=0.2)
    outcome = await handle.outcome(timeout=SHORT)
    assert outcome.status is JobStatus.EXPIRED
    assert outcome.job_id == handle.job_id
    assert "lifetime" in outcome.error


async def test_invalid_serial_is_refused_by_the_client(harness):
    """A serial outside [A-Za-z0-9_-]{1,64} never reaches RabbitMQ."""
    client = await harness.client()
    for bad in ("50J.0001", "#", "a" * 65, "", "x*y"):
        with pytest.raises(ValueError, match="serial"):
            await client.submit(bad, b"^XA^XZ")


async def test_expired_job_is_not_printed_when_the_printer_comes_back(harness):
    """After its `expired` outcome, a job never reaches the printer, even once online."""
    gateway = await harness.gateway()
    client = await harness.client()
    await client.provision("50J000000005")
    harness.serials.add("50J000000005")
    stale = await client.submit("50J000000005", b"^XA^FDstale^XZ", expiration=0.1)
    assert (await stale.outcome(timeout=SHORT)).status is JobStatus.EXPIRED
    printer = await harness.printer(harness.url(gateway), "50J000000005")
    fresh = await client.print("50J000000005", b"^XA^FDfresh^XZ", timeout=SHORT)
    assert fresh.status is JobStatus.DELIVERED
    # Requests go out in queue order, so a stale job would have come first.
    assert await printer.wait_for_labels(1, timeout=SHORT) == [b"^XA^FDfresh^XZ"]


async def test_request_dead_lettered_for_another_reason_ends_failed(harness):
    """A request RabbitMQ dead-letters for a reason other than expiry ends `failed`."""
    await harness.gateway()
    client = await harness.client()
    await client.provision("50J000000006")
    harness.serials.add("50J000000006")
    handle = await client.submit("50J000000006", b"^XA^XZ")
    # An operator's tool rejects the request without requeueing it.
    connection = await aio_pika.connect(harness.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            f"{harness.namespace}.printer.50J000000006.raw", passive=True
        )
        message = await queue.get(timeout=SHORT)
        assert message is not None
        await message.reject(requeue=False)
    outcome = await handle.outcome(timeout=SHORT)
    assert outcome.status is JobStatus.FAILED
    assert "rejected" in (outcome.error or "")


async def test_quorum_queues_work_end_to_end(harness):
    """With queue type `quorum`, printer queues are quorum queues and printing works."""
    gateway = await harness.gateway(queue_type="quorum")
    printer = await harness.printer(harness.url(gateway), "50J000000008")
    name = f"{harness.namespace}.printer.50J000000008.raw"
    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
        await redeclare(harness.amqp_url, name, {"x-queue-type": "classic"})
    client = await harness.client(queue_type="quorum")
    outcome = await client.print("50J000000008", b"^XA^FDq^XZ", timeout=SHORT)
    assert outcome.status is JobStatus.DELIVERED
    assert await printer.wait_for_labels(1, timeout=SHORT) == [b"^XA^FDq^XZ"]
