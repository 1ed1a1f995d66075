"""One printer's sockets on two gateway processes: everything crosses through RabbitMQ."""

from __future__ import annotations

from broker.schemas import Confirm, JobStatus
from gateway.emulator import EmulatorOptions, PrinterEmulator
from tests.support.processes import GatewayProcess
from tests.support.timing import LONG, SHORT

SERIAL = "50J000000001"


async def test_main_on_one_replica_raw_and_config_on_another(harness):
    """Print, query and read a setting with main on replica A and raw/config on B."""
    a = await GatewayProcess(harness.amqp_url, harness.namespace, "replica-a").start()
    b = await GatewayProcess(harness.amqp_url, harness.namespace, "replica-b").start()
    harness.serials.add(SERIAL)
    try:
        options = EmulatorOptions(
            retry_interval=0.2,
            close_config_after_reply=True,
            channel_urls={"raw": b.url, "config": b.url},
        )
        async with PrinterEmulator(a.url, SERIAL, options) as printer:
            # Replica A declares the queues before it asks for the raw channel.
            await printer.wait_channel("raw", timeout=LONG)
            client = await harness.client()
            outcome = await client.print(SERIAL, b"^XA^FDtwo^FS^XZ", timeout=LONG)
            assert outcome.status is JobStatus.DELIVERED
            assert await printer.wait_for_labels(1, timeout=SHORT) == [
                b"^XA^FDtwo^FS^XZ"
            ]
            for n in range(3):
                answer = await client.sgd_set(SERIAL, "device.friendly_name", f"R{n}")
                assert answer == {"device.friendly_name": f"R{n}"}
            # The completion alert arrives on main (replica A); the raw socket is on B.
            await printer.wait_until(
                lambda: bool(printer.configured_alerts), timeout=SHORT
            )
            printed = await client.print(
                SERIAL, b"^XA^FDp^FS^PQ2^XZ", confirm=Confirm.PRINTED, timeout=LONG
            )
            assert printed.status is JobStatus.PRINTED
            status = await client.query(
                SERIAL, b"~HS", response="frames:3", timeout=LONG
            )
            assert status.count(b"\x03") == 3
            presence = await client.printers()
            assert [(p.printer, p.replica) for p in presence] == [(SERIAL, "replica-a")]
        events_a = {line.get("event") for line in a.lines}
        events_b = {line.get("event") for line in b.lines}
        assert "printer.online" in events_a
        assert "printer.online" not in events_b
        assert "channel.opened" in events_b
        assert "channel.opened" not in events_a
    finally:
        assert await a.stop() == 0
        assert await b.stop() == 0
