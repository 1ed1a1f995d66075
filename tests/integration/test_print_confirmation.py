"""`x-zebra-confirm: printed`: outcomes that wait for the printer's job completions."""

from __future__ import annotations

import pytest

from broker.schemas import Confirm, JobStatus
from tests.support.timing import SHORT

SERIAL = "50J000000001"


async def test_printed_waits_for_every_label_of_the_job(harness):
    """A `^PQ3` job with confirm=printed ends `printed` after its third label."""
    gateway = await harness.gateway()
    printer = await harness.printer(harness.url(gateway), SERIAL, label_print_time=0.05)
    await printer.wait_until(lambda: bool(printer.configured_alerts), timeout=SHORT)
    client = await harness.client()
    outcome = await client.print(
        SERIAL, b"^XA^FDthree^FS^PQ3^XZ", confirm=Confirm.PRINTED, timeout=SHORT
    )
    assert outcome.status is JobStatus.PRINTED
    assert printer.labels_printed == 3


async def test_printed_counts_labels_of_earlier_unconfirmed_jobs(harness):
    """Completions of earlier `delivered` jobs do not confirm a later `printed` job."""
    gateway = await harness.gateway()
    printer = await harness.printer(harness.url(gateway), SERIAL, label_print_time=0.05)
    await printer.wait_until(lambda: bool(printer.configured_alerts), timeout=SHORT)
    client = await harness.client()
    first = await client.submit(SERIAL, b"^XA^FDa^FS^PQ2^XZ")
    second = await client.submit(SERIAL, b"^XA^FDb^FS^XZ", confirm=Confirm.PRINTED)
    assert (await first.outcome(timeout=SHORT)).status is JobStatus.DELIVERED
    assert (await second.outcome(timeout=SHORT)).status is JobStatus.PRINTED
    assert printer.labels_printed == 3


async def test_printed_times_out_when_the_printer_never_reports(harness):
    """A printer that never reports completions: confirm=printed ends `timeout`."""
    gateway = await harness.gateway()
    await harness.printer(harness.url(gateway), SERIAL, job_completed_alerts=False)
    client = await harness.client()
    outcome = await client.print(
        SERIAL, b"^XA^FDx^FS^XZ", confirm=Confirm.PRINTED, timeout_ms=300, timeout=SHORT
    )
    assert outcome.status is JobStatus.TIMEOUT
    assert "0.3 s" in (outcome.error or "")


async def test_socket_lost_before_completion_is_uncertain_and_not_resent(harness):
    """A raw socket lost between writing and the completion alert ends `uncertain`."""
    gateway = await harness.gateway()
    printer = await harness.printer(harness.url(gateway), SERIAL, label_print_time=30)
    client = await harness.client()
    handle = await client.submit(SERIAL, b"^XA^FDslow^FS^XZ", confirm=Confirm.PRINTED)
    await printer.wait_for_labels(1, timeout=SHORT)
    await printer.drop()
    outcome = await handle.outcome(timeout=SHORT)
    assert outcome.status is JobStatus.UNCERTAIN
    assert "not resent" in (outcome.error or "")
    # After the printer is back, a new job prints and the uncertain one did not return.
    await printer.wait_channel("raw", timeout=SHORT)
    after = await client.print(SERIAL, b"^XA^FDnext^FS^XZ", timeout=SHORT)
    assert after.status is JobStatus.DELIVERED
    labels = await printer.wait_for_labels(2, timeout=SHORT)
    assert labels == [b"^XA^FDslow^FS^XZ", b"^XA^FDnext^FS^XZ"]


async def test_printed_without_zpl_formats_is_rejected(harness):
    """confirm=printed on data without a complete ^XA…^XZ format is rejected."""
    gateway = await harness.gateway()
    printer = await harness.printer(harness.url(gateway), SERIAL)
    client = await harness.client()
    outcome = await client.print(
        SERIAL,
        b"! 0 200 200 210 1\r\nPRINT\r\n",
        confirm=Confirm.PRINTED,
        timeout=SHORT,
    )
    assert outcome.status is JobStatus.REJECTED
    assert printer.raw_received == bytearray()


@pytest.mark.parametrize("prefetch", [1, 2])
async def test_job_that_expires_behind_a_slow_one_is_expired_not_printed(
    harness, prefetch
):
    """A short-lived job queued behind a slow printed-confirm job ends `expired`.

    With ``prefetch`` 2 the gateway already holds it while the first job prints: its
    expiration still counts there, and it is never sent.
    """
    gateway = await harness.gateway(prefetch=prefetch)
    printer = await harness.printer(harness.url(gateway), SERIAL, label_print_time=0.8)
    await printer.wait_until(lambda: bool(printer.configured_alerts), timeout=SHORT)
    client = await harness.client()
    slow = await client.submit(SERIAL, b"^XA^FDslow^FS^XZ", confirm=Confirm.PRINTED)
    stale = await client.submit(SERIAL, b"^XA^FDstale^FS^XZ", expiration=0.2)
    assert (await slow.outcome(timeout=SHORT)).status is JobStatus.PRINTED
    outcome = await stale.outcome(timeout=SHORT)
    assert outcome.status is JobStatus.EXPIRED
    if prefetch > 1:  # expired in the gateway, not by RabbitMQ
        assert "waited" in (outcome.error or "")
    fresh = await client.print(SERIAL, b"^XA^FDfresh^FS^XZ", timeout=SHORT)
    assert fresh.status is JobStatus.DELIVERED
    labels = await printer.wait_for_labels(2, timeout=SHORT)
    assert labels == [b"^XA^FDslow^FS^XZ", b"^XA^FDfresh^FS^XZ"]
