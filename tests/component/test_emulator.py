"""The printer emulator over real WebSockets, against a small WebLink test server.

The server (``tests/component/weblink_server.py``) is a test double that identifies
sockets with the real core; it is not the gateway.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator

import pytest
import structlog

from gateway.emulator import (
    ConnectFailed,
    EmulatorOptions,
    NotConnected,
    PrinterEmulator,
)
from gateway.emulator.cli import run_printers
from gateway.weblink import ChannelKind, CloseCode
from tests.component.weblink_server import WebLinkTestServer
from tests.support.timing import LONG, SHORT

SERIAL = "50J000000001"
MAIN, RAW, CONFIG = ChannelKind.MAIN, ChannelKind.RAW, ChannelKind.CONFIG
FAST_RETRY = 0.05


@pytest.fixture
async def server() -> AsyncIterator[WebLinkTestServer]:
    async with WebLinkTestServer() as server:
        yield server


class TestConnection:
    """Handshake and identification (``weblink-protocol.md`` §1.3, §1.4, §4.1)."""

    async def test_discovery_names_the_serial(self, server: WebLinkTestServer) -> None:
        """The main socket's pretty-printed discovery decodes to the printer's serial."""
        async with PrinterEmulator(server.url, SERIAL) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            assert main.identified is not None
            assert main.identified.printer_serial == SERIAL
            discovery = main.identified.discovery
            assert discovery is not None
            assert discovery.version == 4
            assert discovery.firmware == printer.options.firmware
            assert main.messages[0].startswith(b"{\r\n")
            assert main.connection.subprotocol == "v1.weblink.zebra.com"
            assert printer.is_connected
            assert printer.connections_made == 1

    async def test_legacy_discovery(self, server: WebLinkTestServer) -> None:
        """A legacy (v3) discovery packet carries a 10-character serial."""
        options = EmulatorOptions(legacy_discovery=True)
        async with PrinterEmulator(server.url, "XXQ1234567", options):
            main = await server.wait_socket(MAIN, SHORT)
            assert main.identified is not None
            assert main.identified.discovery is not None
            assert main.identified.discovery.version == 3
            assert main.identified.printer_serial == "XXQ1234567"

    async def test_missing_content_length_is_refused(self) -> None:
        """A 101 without Content-Length: 0 is refused, so start() raises."""
        async with WebLinkTestServer(content_length=False) as server:
            with pytest.raises(ConnectFailed, match="Content-Length"):
                async with PrinterEmulator(server.url, SERIAL):
                    pass
            assert server.identified(MAIN) == []

    async def test_missing_content_length_accepted_when_lenient(self) -> None:
        """With require_content_length off, the same server is fine."""
        async with WebLinkTestServer(content_length=False) as server:
            options = EmulatorOptions(require_content_length=False)
            async with PrinterEmulator(server.url, SERIAL, options) as printer:
                assert printer.is_connected

    async def test_missing_subprotocol_is_refused(self) -> None:
        """A 101 that does not select v1.weblink.zebra.com is refused."""
        async with WebLinkTestServer(subprotocol=False) as server:
            with pytest.raises(ConnectFailed, match="subprotocol"):
                await PrinterEmulator(server.url, SERIAL).start()

    async def test_nothing_listening(self) -> None:
        """start() raises ConnectFailed when nothing listens at the URL."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(ConnectFailed, match="could not connect"):
            await PrinterEmulator(f"ws://127.0.0.1:{port}/", SERIAL).start()

    async def test_close_sends_1000(self, server: WebLinkTestServer) -> None:
        """Leaving the context manager closes main and channels with 1000."""
        async with PrinterEmulator(server.url, SERIAL) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.request_channel(RAW)
            await printer.wait_channel("raw", SHORT)
            raw = await server.wait_socket(RAW, SHORT)
        assert await server.wait_closed(raw, SHORT) == CloseCode.NORMAL
        assert await server.wait_closed(main, SHORT) == CloseCode.NORMAL
        assert not printer.is_connected


class TestChannels:
    """Opening raw and config sockets on request (§3)."""

    async def test_open_raw_dials_a_second_socket(
        self, server: WebLinkTestServer
    ) -> None:
        """{"open": raw} makes a new socket whose hello names serial and channel id."""
        async with PrinterEmulator(server.url, SERIAL) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.request_channel(RAW)
            raw = await server.wait_socket(RAW, SHORT)
            assert raw.identified is not None
            assert raw.identified.printer_serial == SERIAL
            assert raw.identified.channel_id == "2"
            assert raw.connection is not main.connection
            await printer.wait_channel("raw", SHORT)
            assert printer.channel_open("raw")
            assert not printer.channel_open("config")
            await main.request_channel(CONFIG)
            config = await server.wait_socket(CONFIG, SHORT)
            assert config.identified is not None
            assert config.identified.channel_id == "3"
            assert printer.settings["weblink.ip.conn1.num_connections"] == "3"

    async def test_channel_urls_override(self, server: WebLinkTestServer) -> None:
        """A channel_urls entry sends that channel to another server."""
        async with WebLinkTestServer() as other:
            options = EmulatorOptions(channel_urls={"raw": other.url})
            async with PrinterEmulator(server.url, SERIAL, options):
                main = await server.wait_socket(MAIN, SHORT)
                await main.request_channel(RAW)
                raw = await other.wait_socket(RAW, SHORT)
                assert raw.identified is not None
                assert raw.identified.printer_serial == SERIAL
                assert server.identified(RAW) == []

    async def test_refused_channel_is_never_opened(
        self, server: WebLinkTestServer
    ) -> None:
        """A kind in refuse_channels is ignored; later requests still work."""
        options = EmulatorOptions(refuse_channels=frozenset({"config"}))
        async with PrinterEmulator(server.url, SERIAL, options) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            with structlog.testing.capture_logs() as logs:
                await main.request_channel(CONFIG)
                await main.request_channel(RAW)
                await printer.wait_channel("raw", SHORT)
            assert server.identified(CONFIG) == []
            assert not printer.channel_open("config")
            refused = [log for log in logs if log["event"] == "channel.refused"]
            assert [log["requested"] for log in refused] == ["config"]

    async def test_max_connections(self, server: WebLinkTestServer) -> None:
        """At max_connections the printer ignores further open requests."""
        options = EmulatorOptions(max_connections=2)
        async with PrinterEmulator(server.url, SERIAL, options) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.request_channel(RAW)
            await printer.wait_channel("raw", SHORT)
            with structlog.testing.capture_logs() as logs:
                await main.request_channel(CONFIG)
                await main.configure_alerts()
                # configure_alert follows open on the same socket: once it is
                # handled, so is the open request.
                await printer.wait_until(lambda: bool(printer.configured_alerts), SHORT)
            assert [log["reason"] for log in logs if log["event"] == "channel.refused"]
            assert server.identified(CONFIG) == []

    async def test_server_closed_channel_is_forgotten(
        self, server: WebLinkTestServer
    ) -> None:
        """A channel the server closes is dropped; main stays up and it can reopen."""
        async with PrinterEmulator(server.url, SERIAL) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.request_channel(RAW)
            raw = await server.wait_socket(RAW, SHORT)
            await printer.wait_channel("raw", SHORT)
            await raw.close(CloseCode.GOING_AWAY)
            await printer.wait_channel_closed("raw", SHORT)
            assert ("raw", CloseCode.GOING_AWAY) in printer.close_codes
            assert printer.is_connected
            await main.request_channel(RAW)
            await server.wait_socket(RAW, SHORT, number=2)
            await printer.wait_channel("raw", SHORT)
            assert printer.connections_made == 1


class TestRaw:
    """ZPL, job-completed alerts and status answers on raw (§4.3, §6)."""

    async def test_pq_labels_and_alerts_after_configure(
        self, server: WebLinkTestServer
    ) -> None:
        """^PQ3 prints three labels; PQ JOB COMPLETED alerts only after configure."""
        async with PrinterEmulator(server.url, SERIAL) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.request_channel(RAW)
            raw = await server.wait_socket(RAW, SHORT)
            label = b"^XA^FO50,50^A0N,40,40^FDHello^FS^PQ3^XZ"

            await raw.send_raw(label)
            assert await printer.wait_for_labels(1, SHORT) == [label]
            await printer.wait_for_printed(3, SHORT)
            assert printer.alerts_sent == []

            await main.configure_alerts()
            await printer.wait_until(lambda: bool(printer.configured_alerts), SHORT)
            # Split across messages at an awkward place, as a gateway may send it.
            await raw.send_raw(label[:20])
            await raw.send_raw(label[20:])
            await printer.wait_for_labels(2, SHORT)
            await server.wait_for(lambda: len(main.alerts) >= 3, SHORT)
            assert [alert.condition for alert in main.alerts] == [
                "pq_job_completed"
            ] * 3
            assert {alert.printer_serial for alert in main.alerts} == {SERIAL}
            assert printer.labels_printed == 6
            assert printer.settings["odometer.total_label_count"] == "6"
            assert bytes(printer.raw_received) == label * 2

    async def test_host_status_answer(self, server: WebLinkTestServer) -> None:
        """~HS is answered with three STX…ETX CR LF frames in one message."""
        async with PrinterEmulator(server.url, SERIAL):
            main = await server.wait_socket(MAIN, SHORT)
            await main.request_channel(RAW)
            raw = await server.wait_socket(RAW, SHORT)
            await raw.send_raw(b"~HS")
            await server.wait_for(lambda: raw.raw.count(b"\x03") >= 3, SHORT)
            assert raw.messages[1:] == [bytes(raw.raw)]
            frames = bytes(raw.raw).split(b"\r\n")
            assert len(frames) == 4
            assert frames[-1] == b""
            assert all(
                f.startswith(b"\x02") and f.endswith(b"\x03") for f in frames[:3]
            )

    async def test_host_status_silent_while_head_open(
        self, server: WebLinkTestServer
    ) -> None:
        """With the head open ~HS gets no answer (§6), and HEAD OPEN alerts go out."""
        async with PrinterEmulator(server.url, SERIAL) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.configure_alerts()
            await main.request_channel(RAW)
            raw = await server.wait_socket(RAW, SHORT)
            await printer.wait_until(lambda: bool(printer.configured_alerts), SHORT)
            await printer.set_fault("head open", True)
            await raw.send_raw(b"~HS~HI")
            # ~HI is answered after ~HS would have been: only ~HI's line arrives.
            await server.wait_for(lambda: b"\x03" in raw.raw, SHORT)
            assert bytes(raw.raw).startswith(b"\x02ZTC ZD620")
            assert printer.settings["head.latch"] == "open"

            await printer.set_fault("head open", False)
            await server.wait_for(lambda: len(main.alerts) >= 2, SHORT)
            assert [(a.condition, a.state) for a in main.alerts] == [
                ("head_open", "set"),
                ("head_open", "clear"),
            ]

    async def test_fault_holds_printing(self, server: WebLinkTestServer) -> None:
        """While paused no label prints; clearing the pause prints it."""
        async with PrinterEmulator(server.url, SERIAL) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.request_channel(RAW)
            raw = await server.wait_socket(RAW, SHORT)
            await printer.set_fault("printer paused", True)
            await raw.send_raw(b"^XA^FDx^FS^XZ~HS")
            await server.wait_for(lambda: raw.raw.count(b"\x03") >= 3, SHORT)
            line1, line2, *_ = bytes(raw.raw).split(b"\r\n")
            assert line1.split(b",")[2] == b"1"  # pause flag
            assert line2.split(b",")[8] == b"00000001"  # labels remaining
            assert printer.labels_printed == 0
            await printer.set_fault("printer paused", False)
            await printer.wait_for_printed(1, SHORT)

    async def test_getvar_and_setvar(self, server: WebLinkTestServer) -> None:
        """! U1 setvar stores a value and getvar answers it quoted."""
        async with PrinterEmulator(server.url, SERIAL) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.request_channel(RAW)
            raw = await server.wait_socket(RAW, SHORT)
            await raw.send_raw(
                b'! U1 setvar "device.friendly_name" "LINE-3"\r\n'
                b'! U1 getvar "device.friendly_name"\r\n'
            )
            await server.wait_for(lambda: raw.raw == b'"LINE-3"', SHORT)
            assert printer.settings["device.friendly_name"] == "LINE-3"

    async def test_unsolicited_raw(self, server: WebLinkTestServer) -> None:
        """send_unsolicited_raw puts bytes on the raw socket."""
        async with PrinterEmulator(server.url, SERIAL) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.request_channel(RAW)
            raw = await server.wait_socket(RAW, SHORT)
            await printer.wait_channel("raw", SHORT)
            await printer.send_unsolicited_raw(b"hello")
            await server.wait_for(lambda: raw.raw == b"hello", SHORT)

    async def test_json_sgd_on_raw(self, server: WebLinkTestServer) -> None:
        """{}{...} on raw is answered with the same JSON SGD reply (§5)."""
        options = EmulatorOptions(pretty_json=False)
        async with PrinterEmulator(server.url, SERIAL, options):
            main = await server.wait_socket(MAIN, SHORT)
            await main.request_channel(RAW)
            raw = await server.wait_socket(RAW, SHORT)
            await raw.send_raw(b'{}{"appl.name":null}')
            expected = b'{"appl.name":"' + options.firmware.encode() + b'"}'
            await server.wait_for(lambda: raw.raw == expected, SHORT)


class TestAlerts:
    """Which alerts go out on main, and when (§4.3)."""

    async def test_only_configured_conditions(self, server: WebLinkTestServer) -> None:
        """A spec naming PAPER OUT lets that alert through but not job completions."""
        async with PrinterEmulator(server.url, SERIAL) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.configure_alerts("PAPER OUT,SDK,Y,N,,,N")
            await main.request_channel(RAW)
            raw = await server.wait_socket(RAW, SHORT)
            await printer.wait_until(lambda: bool(printer.configured_alerts), SHORT)
            await raw.send_raw(b"^XA^XZ")
            await printer.wait_for_printed(1, SHORT)
            await printer.set_fault("paper out", True)
            await printer.set_fault("paper out", False)  # on-clear is N
            await printer.set_fault("Paper Out", True)
            await server.wait_for(lambda: len(main.alerts) >= 2, SHORT)
            assert [(a.condition, a.state) for a in main.alerts] == [
                ("paper_out", "set"),
                ("paper_out", "set"),
            ]
            assert printer.settings["media.status"] == "out"
            assert printer.faults == {"paper out"}

    async def test_alerts_without_configure(self, server: WebLinkTestServer) -> None:
        """With alerts_only_when_configured off, completions go out at once."""
        options = EmulatorOptions(alerts_only_when_configured=False)
        async with PrinterEmulator(server.url, SERIAL, options) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.request_channel(RAW)
            raw = await server.wait_socket(RAW, SHORT)
            await raw.send_raw(b"^XA^PQ2^XZ")
            alerts = await printer.wait_for_alerts(2, SHORT)
            assert [a["alert"]["condition"] for a in alerts] == ["PQ JOB COMPLETED"] * 2
            await server.wait_for(lambda: len(main.alerts) >= 2, SHORT)

    async def test_send_alert_knob(self, server: WebLinkTestServer) -> None:
        """send_alert sends any alert, configured or not, with the given fields."""
        async with PrinterEmulator(server.url, SERIAL) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await printer.send_alert(
                "SGD SET",
                setting_name="capture.channel1.data.raw",
                setting_value="8007500111023",
                time_stamp="2024-05-02 10:15:07",
            )
            await server.wait_for(lambda: len(main.alerts) >= 1, SHORT)
            alert = main.alerts[0]
            assert alert.condition == "sgd_set"
            assert alert.setting_value == "8007500111023"
            assert alert.printer_time == "2024-05-02 10:15:07"

    async def test_knobs_need_a_socket(self, server: WebLinkTestServer) -> None:
        """send_unsolicited_raw without a raw socket raises NotConnected."""
        async with PrinterEmulator(server.url, SERIAL) as printer:
            with pytest.raises(NotConnected):
                await printer.send_unsolicited_raw(b"x")
            with pytest.raises(ValueError, match="unknown fault"):
                await printer.set_fault("on fire", True)


class TestConfig:
    """JSON SGD on the config channel (§5, §8.2, §8.3)."""

    async def test_get_and_set_round_trip(self, server: WebLinkTestServer) -> None:
        """Get answers the table, set stores and answers the value in effect."""
        async with PrinterEmulator(server.url, SERIAL) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.request_channel(CONFIG)
            config = await server.wait_socket(CONFIG, SHORT)
            reply = await config.send_sgd(
                {"device.friendly_name": None, "appl.name": None, "no.such": None},
                SHORT,
            )
            assert reply == {
                "device.friendly_name": SERIAL,
                "appl.name": printer.options.firmware,
                "no.such": "?",
            }
            reply = await config.send_sgd({"device.friendly_name": "LINE-3"}, SHORT)
            assert reply == {"device.friendly_name": "LINE-3"}
            assert printer.settings["device.friendly_name"] == "LINE-3"
            assert printer.sgd_requests[-1] == {"device.friendly_name": "LINE-3"}
            assert not config.is_closed

    async def test_split_replies_and_close_after_reply(
        self, server: WebLinkTestServer
    ) -> None:
        """Replies arrive in pieces of at most N bytes, then config closes with 1000."""
        options = EmulatorOptions(split_replies=16, close_config_after_reply=True)
        async with PrinterEmulator(server.url, SERIAL, options) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            assert len(main.messages) > 1
            assert all(len(message) <= 16 for message in main.messages)

            await main.request_channel(CONFIG)
            config = await server.wait_socket(CONFIG, SHORT)
            reply = await config.send_sgd({"device.friendly_name": "LINE-3"}, SHORT)
            assert reply == {"device.friendly_name": "LINE-3"}
            assert all(len(message) <= 16 for message in config.messages)
            assert await server.wait_closed(config, SHORT) == CloseCode.NORMAL
            await printer.wait_channel_closed("config", SHORT)

            # Re-open lazily, as the gateway must (§5).
            await main.request_channel(CONFIG)
            config = await server.wait_socket(CONFIG, SHORT, number=2)
            reply = await config.send_sgd({"device.friendly_name": None}, SHORT)
            assert reply == {"device.friendly_name": "LINE-3"}
            assert await server.wait_closed(config, SHORT) == CloseCode.NORMAL


class TestFailures:
    """Text frames, drops, duplicates and reconnects (§2, §4.2, §7, §8.1)."""

    async def test_text_frame_closes_with_1003(self, server: WebLinkTestServer) -> None:
        """A text frame from the server makes the printer close that socket with 1003."""
        options = EmulatorOptions(retry_interval=FAST_RETRY)
        async with PrinterEmulator(server.url, SERIAL, options) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            with structlog.testing.capture_logs() as logs:
                await main.send_text('{"open":"v1.raw.zebra.com"}')
                code = await server.wait_closed(main, SHORT)
            assert code == CloseCode.UNSUPPORTED_DATA
            assert any(
                log["event"] == "weblink.text_frame_received"
                and log["log_level"] == "error"
                for log in logs
            )
            assert server.identified(RAW) == []
            # Losing main that way still means reconnecting.
            await server.wait_socket(MAIN, LONG, number=2)
            await printer.wait_connected(SHORT)

    async def test_malformed_json_closes_with_1007(
        self, server: WebLinkTestServer
    ) -> None:
        """Bad JSON on main is a protocol violation: the printer closes with 1007."""
        options = EmulatorOptions(retry_interval=FAST_RETRY)
        async with PrinterEmulator(server.url, SERIAL, options) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.connection.send(b'{"open": nope}')
            assert await server.wait_closed(main, SHORT) == CloseCode.INVALID_DATA
            await server.wait_socket(MAIN, LONG, number=2)
            await printer.wait_connected(SHORT)

    async def test_unsolicited_json_is_ignored(self, server: WebLinkTestServer) -> None:
        """JSON the printer does not understand is logged and otherwise ignored."""
        async with PrinterEmulator(server.url, SERIAL) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            with structlog.testing.capture_logs() as logs:
                await main.connection.send(b'{"hello":1}')
                await main.configure_alerts()
                await printer.wait_until(lambda: bool(printer.configured_alerts), SHORT)
            assert any(log["event"] == "message.unsolicited" for log in logs)
            assert printer.is_connected
            assert not main.is_closed

    async def test_unreachable_channel_url(self, server: WebLinkTestServer) -> None:
        """A channel that cannot be dialled is logged; main stays up."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        options = EmulatorOptions(channel_urls={"raw": f"ws://127.0.0.1:{port}/"})
        async with PrinterEmulator(server.url, SERIAL, options) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            with structlog.testing.capture_logs() as logs:
                await main.request_channel(RAW)
                await printer.wait_until(
                    lambda: any(
                        log["event"] == "channel.connect_failed" for log in logs
                    ),
                    SHORT,
                )
            assert printer.is_connected

    async def test_server_close_reconnects_after_retry_interval(
        self, server: WebLinkTestServer
    ) -> None:
        """Main closed by the server: channels close too, then main is dialled again."""
        options = EmulatorOptions(retry_interval=FAST_RETRY)
        async with PrinterEmulator(server.url, SERIAL, options) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.request_channel(RAW)
            raw = await server.wait_socket(RAW, SHORT)
            await main.close(CloseCode.GOING_AWAY)
            assert await printer.wait_main_closed(SHORT) == CloseCode.GOING_AWAY
            assert await server.wait_closed(raw, SHORT) == CloseCode.GOING_AWAY
            second = await server.wait_socket(MAIN, LONG, number=2)
            assert second.identified is not None
            assert second.identified.printer_serial == SERIAL
            await printer.wait_connected(SHORT)
            assert printer.connections_made == 2

    async def test_drop_reconnects(self, server: WebLinkTestServer) -> None:
        """drop() cuts the TCP connections (1006 at the server); main comes back."""
        options = EmulatorOptions(retry_interval=FAST_RETRY)
        async with PrinterEmulator(server.url, SERIAL, options) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.request_channel(RAW)
            raw = await server.wait_socket(RAW, SHORT)
            await printer.wait_channel("raw", SHORT)
            await printer.drop()
            assert not printer.is_connected
            assert await server.wait_closed(main, SHORT) is None
            assert await server.wait_closed(raw, SHORT) is None
            await server.wait_socket(MAIN, LONG, number=2)
            await printer.wait_connected(SHORT)
            assert printer.connections_made == 2
            assert ("main", None) in printer.close_codes

    async def test_no_reconnect_when_disabled(self, server: WebLinkTestServer) -> None:
        """With reconnect off, a lost main stays lost."""
        options = EmulatorOptions(reconnect=False)
        async with PrinterEmulator(server.url, SERIAL, options) as printer:
            main = await server.wait_socket(MAIN, SHORT)
            await main.close(CloseCode.GOING_AWAY)
            assert await printer.wait_main_closed(SHORT) == CloseCode.GOING_AWAY
            assert not printer.is_connected
            assert printer.connections_made == 1

    async def test_extra_main_survives_closing_the_old(
        self, server: WebLinkTestServer
    ) -> None:
        """A duplicate main carries on when the server closes the older one (§4.2)."""
        options = EmulatorOptions(retry_interval=FAST_RETRY)
        async with PrinterEmulator(server.url, SERIAL, options) as printer:
            old = await server.wait_socket(MAIN, SHORT)
            await printer.open_extra_main()
            new = await server.wait_socket(MAIN, SHORT, number=2)
            assert new.identified is not None
            assert new.identified.printer_serial == SERIAL
            assert printer.connections_made == 2
            await old.close(CloseCode.GOING_AWAY)
            assert await printer.wait_main_closed(SHORT) == CloseCode.GOING_AWAY
            assert printer.is_connected
            # The newest main takes requests and gets the alerts.
            await new.configure_alerts()
            await new.request_channel(RAW)
            raw = await server.wait_socket(RAW, SHORT)
            await raw.send_raw(b"^XA^XZ")
            await server.wait_for(lambda: len(new.alerts) >= 1, SHORT)
            assert printer.connections_made == 2

    async def test_start_without_wait_keeps_dialling(self) -> None:
        """start(wait=False) retries every retry_interval until a gateway answers."""
        options = EmulatorOptions(retry_interval=FAST_RETRY)
        async with WebLinkTestServer(content_length=False) as refusing:
            printer = PrinterEmulator(refusing.url, SERIAL, options)
            try:
                await printer.start(wait=False)
                # Two refused attempts prove the printer retries.
                await refusing.wait_for(lambda: len(refusing.sockets) >= 2, LONG)
                assert not printer.is_connected
            finally:
                await printer.close()


class TestCli:
    """``zebra-printer-emulator`` runs printers until SIGTERM."""

    async def test_sigterm_closes_with_1000(self, server: WebLinkTestServer) -> None:
        """Two printers connect; SIGTERM closes both mains with 1000 and returns 0."""
        serials = ["50J000000009", "50J000000010"]
        task = asyncio.create_task(
            run_printers(server.url, serials, EmulatorOptions(retry_interval=1.0))
        )
        for serial in serials:
            await server.wait_socket(MAIN, SHORT, printer_serial=serial)
        os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(SHORT):
            assert await task == 0
        for sock in server.identified(MAIN):
            assert await server.wait_closed(sock, SHORT) == CloseCode.NORMAL
