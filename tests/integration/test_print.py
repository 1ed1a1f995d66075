"""Printing end to end: client → RabbitMQ → gateway → emulated printer (contract §1, §2)."""

from __future__ import annotations

import asyncio

from broker.schemas import JobStatus
from tests.support.timing import SHORT

LABEL = b"^XA^FO50,50^A0N,40,40^FDHello^FS^XZ"


async def test_print_reaches_the_printer_and_reports_delivered(harness):
    """A print request is written to the printer's raw channel and ends `delivered`."""
    gateway = await harness.gateway()
    printer = await harness.printer(harness.url(gateway))
    client = await harness.client()
    outcome = await client.print("50J000000001", LABEL, timeout=SHORT)
    assert outcome.status is JobStatus.DELIVERED
    assert outcome.printer_serial == "50J000000001"
    labels = await printer.wait_for_labels(1, timeout=SHORT)
    assert labels == [LABEL]


async def test_large_print_data_arrives_verbatim(harness):
    """Print data larger than one WebSocket message arrives byte for byte, in order."""
    gateway = await harness.gateway(ws_send_chunk_size=4096)
    printer = await harness.printer(harness.url(gateway))
    client = await harness.client()
    graphic = bytes(range(256)) * 1024  # 256 KiB, every byte value
    body = b"^XA^FO0,0^GFA," + graphic + b"^FS^XZ"
    outcome = await client.print("50J000000001", body, timeout=SHORT)
    assert outcome.status is JobStatus.DELIVERED
    labels = await printer.wait_for_labels(1, timeout=SHORT)
    assert labels[0] == body


async def test_jobs_print_in_publish_order(harness):
    """Jobs published back to back print in the order they were published."""
    gateway = await harness.gateway()
    printer = await harness.printer(harness.url(gateway))
    client = await harness.client()
    bodies = [b"^XA^FD%d^FS^XZ" % n for n in range(20)]
    handles = [await client.submit("50J000000001", body) for body in bodies]
    outcomes = await asyncio.gather(*(h.outcome(timeout=SHORT) for h in handles))
    assert {o.status for o in outcomes} == {JobStatus.DELIVERED}
    assert await printer.wait_for_labels(20, timeout=SHORT) == bodies


async def test_job_queued_while_printer_offline_prints_when_it_connects(harness):
    """A job for a known but offline printer waits in its queue and prints on connect."""
    gateway = await harness.gateway()
    client = await harness.client()
    await client.provision("50J000000002")
    handle = await client.submit("50J000000002", LABEL)
    printer = await harness.printer(harness.url(gateway), "50J000000002")
    outcome = await handle.outcome(timeout=SHORT)
    assert outcome.status is JobStatus.DELIVERED
    assert await printer.wait_for_labels(1, timeout=SHORT) == [LABEL]
