"""Events on the topic exchange (contract §3)."""

from __future__ import annotations

import base64

from broker.schemas import (
    ChannelClosed,
    ChannelOpened,
    JobEvent,
    JobStatus,
    PrinterAlert,
    PrinterData,
    PrinterOffline,
    PrinterOnline,
)
from tests.support.events import watching
from tests.support.timing import SHORT

SERIAL = "50J000000001"


async def test_online_event_carries_discovery_details(harness):
    """`printer.<serial>.online` names the model, firmware, address and replica."""
    gateway = await harness.gateway()
    client = await harness.client()
    async with watching(client, f"printer.{SERIAL}.online") as log:
        await harness.printer(harness.url(gateway), SERIAL)
        event = await log.wait_for(lambda e: isinstance(e, PrinterOnline))
    assert event.printer == SERIAL
    assert event.model is not None
    assert "ZD" in event.model
    assert event.firmware
    assert event.mac
    assert event.ip
    assert event.replica == gateway.settings.replica


async def test_offline_event_carries_close_code(harness):
    """`printer.<serial>.offline` follows the main socket's close, with its code."""
    gateway = await harness.gateway()
    client = await harness.client()
    printer = await harness.printer(harness.url(gateway), SERIAL, reconnect=False)
    async with watching(client, f"printer.{SERIAL}.offline") as log:
        await printer.close()
        event = await log.wait_for(lambda e: isinstance(e, PrinterOffline))
    assert event.close_code == 1000


async def test_channel_events_follow_raw_and_config(harness):
    """Opening and closing raw and config channels publish channel events."""
    gateway = await harness.gateway()
    client = await harness.client()
    async with watching(client, f"printer.{SERIAL}.channel.#") as log:
        await harness.printer(
            harness.url(gateway), SERIAL, close_config_after_reply=True
        )
        await client.sgd_get(SERIAL, "device.friendly_name")
        raw = await log.wait_for(
            lambda e: isinstance(e, ChannelOpened) and e.channel == "raw"
        )
        await log.wait_for(
            lambda e: isinstance(e, ChannelOpened) and e.channel == "config"
        )
        closed = await log.wait_for(
            lambda e: isinstance(e, ChannelClosed) and e.channel == "config"
        )
    assert raw.replica == gateway.settings.replica
    assert closed.close_code == 1000


async def test_alerts_are_published_with_normalised_condition(harness):
    """A `PAPER OUT` alert is `printer.<serial>.alert.paper_out` with state `set`."""
    gateway = await harness.gateway()
    client = await harness.client()
    printer = await harness.printer(harness.url(gateway), SERIAL)
    await printer.wait_until(lambda: bool(printer.configured_alerts), timeout=SHORT)
    async with watching(client, f"printer.{SERIAL}.alert.*") as log:
        await printer.set_fault("paper out", True)
        await printer.set_fault("paper out", False)
        first = await log.wait_for(lambda e: isinstance(e, PrinterAlert))
        cleared = await log.wait_for(
            lambda e: isinstance(e, PrinterAlert) and e.state == "clear"
        )
    assert first.condition == "paper_out"
    assert first.condition_name == "PAPER OUT"
    assert first.state == "set"
    assert cleared.condition == "paper_out"


async def test_sgd_set_alert_carries_setting(harness):
    """An `SGD SET` alert carries the setting's name and value."""
    gateway = await harness.gateway()
    client = await harness.client()
    printer = await harness.printer(harness.url(gateway), SERIAL)
    await printer.wait_until(lambda: bool(printer.configured_alerts), timeout=SHORT)
    async with watching(client, f"printer.{SERIAL}.alert.sgd_set") as log:
        await printer.send_alert(
            "SGD SET",
            setting_name="capture.channel1.data.raw",
            setting_value="8007500111023",
        )
        event = await log.wait_for(lambda e: isinstance(e, PrinterAlert))
    assert event.setting_name == "capture.channel1.data.raw"
    assert event.setting_value == "8007500111023"


async def test_unsolicited_raw_bytes_are_data_events(harness):
    """Raw bytes that answer no request are `printer.<serial>.data`, base64."""
    gateway = await harness.gateway()
    client = await harness.client()
    printer = await harness.printer(harness.url(gateway), SERIAL)
    await printer.wait_channel("raw", timeout=SHORT)
    async with watching(client, f"printer.{SERIAL}.data") as log:
        await printer.send_unsolicited_raw(b"\x02scanner 123\x03")
        event = await log.wait_for(lambda e: isinstance(e, PrinterData))
    assert base64.b64decode(event.data) == b"\x02scanner 123\x03"


async def test_every_outcome_is_also_a_job_event(harness):
    """Each outcome is published as `job.<serial>.<status>` with ids and status."""
    gateway = await harness.gateway()
    client = await harness.client()
    await harness.printer(harness.url(gateway), SERIAL)
    async with watching(client, f"job.{SERIAL}.*") as log:
        outcome = await client.print(SERIAL, b"^XA^XZ", timeout=SHORT)
        event = await log.wait_for(
            lambda e: isinstance(e, JobEvent) and e.job_id == outcome.job_id
        )
    assert event.status is JobStatus.DELIVERED
    assert event.correlation_id == outcome.correlation_id
