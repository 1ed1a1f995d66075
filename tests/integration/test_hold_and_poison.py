"""Jobs wait while the printer would spoil them; a request that kills its channel ends."""

from __future__ import annotations

import aio_pika
import pytest

from broker.errors import PrinterError
from broker.schemas import JobStatus, PrinterHold
from tests.support.consumers import ConsumerWatch
from tests.support.events import watching
from tests.support.timing import LONG, SHORT

SERIAL = "50J000000001"


async def queued(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


async def test_paper_out_holds_jobs_in_order_until_it_clears(harness):
    """Paper out: no job is sent, they wait in order, the hold shows; then all print."""
    raw_queue = f"{harness.namespace}.printer.{SERIAL}.raw"
    async with ConsumerWatch(harness.amqp_url, raw_queue) as consumers:
        gateway = await harness.gateway()
        printer = await harness.printer(harness.url(gateway), SERIAL)
        await printer.wait_until(lambda: bool(printer.configured_alerts), timeout=SHORT)
        client = await harness.client()
        await consumers.wait_for_count(raw_queue, 1, timeout=SHORT)
        async with watching(client, f"printer.{SERIAL}.hold") as log:
            await printer.set_fault("paper out", True)
            held = await log.wait_for(lambda e: isinstance(e, PrinterHold) and e.held)
            assert held.conditions == ["paper_out"]
            # The raw channel stopped consuming: nothing can be sent now.
            await consumers.wait_for_count(raw_queue, 0, timeout=SHORT)
            bodies = [b"^XA^FD%d^XZ" % n for n in range(3)]
            handles = [await client.submit(SERIAL, body) for body in bodies]
            assert await queued(harness.amqp_url, raw_queue) == 3
            assert printer.labels == []
            presence = await client.printers()
            assert presence[0].held == ["paper_out"]

            await printer.set_fault("paper out", False)
            released = await log.wait_for(
                lambda e: isinstance(e, PrinterHold) and not e.held
            )
            assert released.conditions == []
        for handle in handles:
            assert (await handle.outcome(timeout=SHORT)).status is JobStatus.DELIVERED
        assert await printer.wait_for_labels(3, timeout=SHORT) == bodies


async def test_held_job_still_expires(harness):
    """A job held by a printer condition keeps its expiry and ends `expired`."""
    gateway = await harness.gateway()
    printer = await harness.printer(harness.url(gateway), SERIAL)
    await printer.wait_until(lambda: bool(printer.configured_alerts), timeout=SHORT)
    client = await harness.client()
    async with watching(client, f"printer.{SERIAL}.hold") as log:
        await printer.set_fault("head open", True)
        await log.wait_for(lambda e: isinstance(e, PrinterHold) and e.held)
    handle = await client.submit(SERIAL, b"^XA^FDlate^XZ", expiration=0.3)
    assert (await handle.outcome(timeout=SHORT)).status is JobStatus.EXPIRED
    await printer.set_fault("head open", False)
    fresh = await client.print(SERIAL, b"^XA^FDfresh^XZ", timeout=SHORT)
    assert fresh.status is JobStatus.DELIVERED
    assert await printer.wait_for_labels(1, timeout=SHORT) == [b"^XA^FDfresh^XZ"]


async def test_request_that_kills_its_channel_fails_after_bounded_attempts(harness):
    """An SGD request the printer crashes on ends `failed` after max_attempts; no loop."""
    gateway = await harness.gateway(max_attempts=3)
    printer = await harness.printer(
        harness.url(gateway),
        SERIAL,
        abort_on=b"crash.me",
        close_config_after_reply=True,
    )
    client = await harness.client()
    with pytest.raises(PrinterError) as caught:
        await client.sgd_get(SERIAL, "crash.me", timeout=LONG)
    outcome = caught.value.outcome
    assert outcome.status is JobStatus.FAILED
    assert "3 times" in (outcome.error or "")
    # The printer is fine for everything else, and the poison is gone.
    assert await client.sgd_get(SERIAL, "device.friendly_name") == {
        "device.friendly_name": SERIAL
    }
    assert printer.connections_made == 1
