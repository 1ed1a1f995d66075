"""The §9 example conversation, gateway and printer cores wired back to back."""

from __future__ import annotations

from gateway.weblink.alerts import encode_alert
from gateway.weblink.channel import ChannelProtocol
from gateway.weblink.constants import ChannelKind, ChannelState, Role
from gateway.weblink.discovery import encode_discovery_b64
from gateway.weblink.events import (
    AlertReceived,
    AlertsConfigured,
    ChannelOpenRequested,
    PrinterIdentified,
    QueryAnswered,
    RawDataReceived,
    SgdReplyReceived,
    SgdRequestReceived,
)
from gateway.weblink.sgd import encode_json, reply_matches
from tests.unit.weblink.frames import HS_QUERY, HS_REPLY, SERIAL, SGD_GET, ZPL
from tests.unit.weblink.helpers import printer_channel, receive, relay

MAIN, RAW, CONFIG = ChannelKind.MAIN, ChannelKind.RAW, ChannelKind.CONFIG


def test_example_conversation() -> None:
    """Every step of the §9 conversation produces the expected bytes and events."""
    # P→S [main] discovery, pretty-printed.
    printer_main = printer_channel(MAIN)
    printer_main.send_discovery(encode_discovery_b64(printer_serial=SERIAL))
    gateway_main = ChannelProtocol(Role.GATEWAY)
    [identified] = relay(printer_main, gateway_main)
    assert isinstance(identified, PrinterIdentified)
    assert (identified.kind, identified.printer_serial) == (MAIN, SERIAL)
    assert identified.discovery is not None
    assert identified.discovery.firmware == "V93.21.26Z"

    # S→P [main] open raw, configure alerts: compact JSON, as in §9.
    gateway_main.request_channel(RAW)
    gateway_main.configure_alerts()
    sent = gateway_main.data_to_send()
    assert sent == [
        b'{"open":"v1.raw.zebra.com"}',
        b'{"configure_alert":"ALL MESSAGES,SDK,Y,Y,,,N"}',
    ]
    assert receive(printer_main, *sent) == [
        ChannelOpenRequested(RAW),
        AlertsConfigured("ALL MESSAGES,SDK,Y,Y,,,N"),
    ]

    # P→S [raw] hello on a second socket; S→P [raw] a label.
    printer_raw = printer_channel(RAW)
    printer_raw.send_hello("2")
    gateway_raw = ChannelProtocol(Role.GATEWAY)
    assert relay(printer_raw, gateway_raw) == [
        PrinterIdentified(RAW, SERIAL, channel_id="2")
    ]
    gateway_raw.send_raw(ZPL)
    assert relay(gateway_raw, printer_raw) == [RawDataReceived(ZPL)]

    # S→P [main] open config; P→S [config] hello.
    gateway_main.request_channel(CONFIG)
    assert relay(gateway_main, printer_main) == [ChannelOpenRequested(CONFIG)]
    printer_config = printer_channel(CONFIG)
    printer_config.send_hello("3")
    gateway_config = ChannelProtocol(Role.GATEWAY)
    assert relay(printer_config, gateway_config) == [
        PrinterIdentified(CONFIG, SERIAL, channel_id="3")
    ]

    # S→P [config] {}{...}; P→S [config] the reply, in pieces.
    request = {"device.friendly_name": None, "appl.name": None}
    gateway_config.send_sgd(request)
    sent = gateway_config.data_to_send()
    assert sent == [SGD_GET]
    assert receive(printer_config, *sent) == [SgdRequestReceived(request)]
    reply = {"device.friendly_name": "LINE-3", "appl.name": "V84.20.23Z"}
    encoded = encode_json(reply, pretty=True)
    for start in range(0, len(encoded), 7):
        printer_config.send_raw(encoded[start : start + 7])
    assert relay(printer_config, gateway_config) == [SgdReplyReceived(reply)]
    assert reply_matches(request, reply)

    # P→S [config] close 1000 (some firmware, §5).
    gateway_config.receive_closed()
    assert gateway_config.state is ChannelState.CLOSED

    # P→S [main] the job-completed alert.
    printer_main.send_alert(
        encode_alert(printer_serial=SERIAL, condition="PQ JOB COMPLETED")
    )
    [alert] = relay(printer_main, gateway_main)
    assert isinstance(alert, AlertReceived)
    assert alert.alert.condition == "pq_job_completed"
    assert alert.alert.printer_serial == SERIAL

    # S→P [raw] ~HS; P→S [raw] three framed lines, chunked arbitrarily.
    gateway_raw.send_query(HS_QUERY, "frames", 3)
    assert relay(gateway_raw, printer_raw) == [RawDataReceived(HS_QUERY)]
    printer_raw.send_raw(HS_REPLY[:20])
    printer_raw.send_raw(HS_REPLY[20:])
    assert relay(printer_raw, gateway_raw) == [QueryAnswered(HS_REPLY)]
    assert not gateway_raw.has_pending_query
