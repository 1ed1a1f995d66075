"""ChannelProtocol in the printer role (the emulator): ``weblink-protocol.md`` §3–§6, §10."""

from __future__ import annotations

import pytest

from broker.errors import InvalidChannelState
from gateway.weblink.alerts import encode_alert
from gateway.weblink.channel import ChannelProtocol
from gateway.weblink.constants import ChannelKind, ChannelState, CloseCode, Role
from gateway.weblink.events import (
    AlertsConfigured,
    ChannelOpenRequested,
    RawDataReceived,
    SgdRequestReceived,
    UnsolicitedMessage,
)
from tests.unit.weblink.frames import (
    CONFIG_HELLO,
    CONFIGURE_ALERT,
    DISCOVERY_B64,
    OPEN_CONFIG,
    OPEN_RAW,
    SGD_GET,
    SGD_REPLY,
    ZPL,
    splits,
)
from tests.unit.weblink.helpers import (
    assert_sent,
    assert_violation,
    printer_channel,
    receive,
)

MAIN, RAW, CONFIG = ChannelKind.MAIN, ChannelKind.RAW, ChannelKind.CONFIG
SGD_REQUEST = {"device.friendly_name": None, "appl.name": None}


class TestConstruction:
    """A printer socket knows what it is from the start."""

    def test_open_at_once(self) -> None:
        """The printer role starts OPEN with its kind and serial."""
        channel = printer_channel(CONFIG)
        assert channel.state is ChannelState.OPEN
        assert channel.kind is CONFIG
        assert channel.printer_serial == "50J000000001"

    @pytest.mark.parametrize(
        "kwargs", [{}, {"kind": MAIN}, {"printer_serial": "50J000000001"}]
    )
    def test_identity_required(self, kwargs: dict[str, object]) -> None:
        """The printer role needs both kind and serial."""
        with pytest.raises(ValueError, match="needs kind and printer_serial"):
            ChannelProtocol(Role.PRINTER, **kwargs)  # type: ignore[arg-type]


class TestMain:
    """Server messages on main, and what the printer sends there (§3, §4)."""

    def test_send_discovery(self) -> None:
        """The discovery goes out pretty-printed with CRLF, like a printer's."""
        channel = printer_channel(MAIN)
        channel.send_discovery(DISCOVERY_B64)
        assert_sent(
            channel,
            b'{\r\n  "discovery_b64" : "' + DISCOVERY_B64.encode() + b'"\r\n}',
        )

    def test_send_discovery_compact(self) -> None:
        """pretty=False sends compact JSON."""
        channel = printer_channel(MAIN)
        channel.send_discovery("abc", pretty=False)
        assert_sent(channel, b'{"discovery_b64":"abc"}')

    def test_open_requests(self) -> None:
        """``{"open": ...}`` for raw and config become ChannelOpenRequested."""
        assert receive(printer_channel(MAIN), OPEN_RAW, OPEN_CONFIG) == [
            ChannelOpenRequested(RAW),
            ChannelOpenRequested(CONFIG),
        ]

    def test_configure_alert(self) -> None:
        """``{"configure_alert": spec}`` becomes AlertsConfigured."""
        assert receive(printer_channel(MAIN), CONFIGURE_ALERT) == [
            AlertsConfigured("ALL MESSAGES,SDK,Y,Y,,,N")
        ]

    def test_unknown_channel_name(self) -> None:
        """Opening an unknown channel name is unsolicited, not an error."""
        assert receive(printer_channel(MAIN), b'{"open":"v1.snmp.zebra.com"}') == [
            UnsolicitedMessage({"open": "v1.snmp.zebra.com"})
        ]

    def test_split_open(self) -> None:
        """Two server messages in one, or one cut in two, parse the same."""
        for head, tail in splits(OPEN_RAW + CONFIGURE_ALERT):
            events = receive(printer_channel(MAIN), head, tail)
            assert events == [
                ChannelOpenRequested(RAW),
                AlertsConfigured("ALL MESSAGES,SDK,Y,Y,,,N"),
            ]

    def test_send_alert(self) -> None:
        """Alerts go out pretty-printed on main."""
        channel = printer_channel(MAIN)
        channel.send_alert(encode_alert(printer_serial="X1", condition="PAPER OUT"))
        [message] = channel.data_to_send()
        assert message.startswith(b'{\r\n  "alert" : {\r\n    "unique_id" : "X1"')

    def test_malformed_json(self) -> None:
        """Malformed JSON from the server is a 1007 violation."""
        channel = printer_channel(MAIN)
        events = receive(channel, b'{"open":]')
        assert_violation(channel, events, CloseCode.INVALID_DATA, "malformed JSON")

    def test_text_frame(self) -> None:
        """A text frame from the server is a 1003 violation (§2)."""
        channel = printer_channel(MAIN)
        events = receive(channel, OPEN_RAW.decode())
        assert_violation(channel, events, CloseCode.UNSUPPORTED_DATA, "text frames")

    @pytest.mark.parametrize(
        "command",
        [
            lambda c: c.send_hello("1"),
            lambda c: c.request_channel(ChannelKind.RAW),
            lambda c: c.configure_alerts(),
        ],
    )
    def test_wrong_commands(self, command: object) -> None:
        """Hello and gateway commands raise on a printer's main channel."""
        with pytest.raises(InvalidChannelState):
            command(printer_channel(MAIN))  # type: ignore[operator]


class TestConfig:
    """JSON SGD requests arrive as ``{}{...}`` (§5)."""

    def test_send_hello(self) -> None:
        """The hello names the channel, the serial and the channel id, pretty-printed."""
        channel = printer_channel(CONFIG)
        channel.send_hello("3")
        assert_sent(channel, CONFIG_HELLO)
        assert channel.channel_id == "3"

    def test_request(self) -> None:
        """The ``{}`` prefix and the request give one SgdRequestReceived."""
        assert receive(printer_channel(CONFIG), SGD_GET) == [
            SgdRequestReceived(SGD_REQUEST)
        ]

    def test_request_split_at_every_byte(self) -> None:
        """However the request is cut, it is one event."""
        for head, tail in splits(SGD_GET):
            events = receive(printer_channel(CONFIG), head, tail)
            assert events == [SgdRequestReceived(SGD_REQUEST)]

    def test_lone_object(self) -> None:
        """A request without the ``{}`` prefix is accepted too."""
        assert receive(printer_channel(CONFIG), b'{"ip.port":"1234"}') == [
            SgdRequestReceived({"ip.port": "1234"})
        ]

    def test_requests_in_a_row(self) -> None:
        """Several prefixed requests in a row each give one event."""
        events = receive(printer_channel(CONFIG), b'{}{"a":null}{}{"b":null}')
        assert events == [
            SgdRequestReceived({"a": None}),
            SgdRequestReceived({"b": None}),
        ]

    def test_empty_request(self) -> None:
        """``{}{}`` is an empty request after its prefix."""
        assert receive(printer_channel(CONFIG), b"{}{}") == [SgdRequestReceived({})]

    def test_non_object(self) -> None:
        """An array on config is unsolicited."""
        assert receive(printer_channel(CONFIG), b"[1]") == [UnsolicitedMessage([1])]

    def test_reply_in_pieces(self) -> None:
        """send_raw lets the emulator fragment a JSON reply, as printers do (§2)."""
        channel = printer_channel(CONFIG)
        channel.send_raw(SGD_REPLY[:10])
        channel.send_raw(SGD_REPLY[10:])
        assert_sent(channel, SGD_REPLY[:10], SGD_REPLY[10:])

    def test_send_json_and_alert(self) -> None:
        """Replies and alerts may be sent compact or pretty on config."""
        channel = printer_channel(CONFIG)
        channel.send_json({"a": "1"}, pretty=False)
        channel.send_alert({"alert": {}}, pretty=False)
        assert_sent(channel, b'{"a":"1"}', b'{"alert":{}}')


class TestRaw:
    """The printer's raw channel is a plain byte pipe (§6)."""

    def test_bytes_in(self) -> None:
        """Every message is RawDataReceived, JSON-looking or not."""
        assert receive(printer_channel(RAW), ZPL, b"{}{") == [
            RawDataReceived(ZPL),
            RawDataReceived(b"{}{"),
        ]

    def test_send_hello_and_bytes(self) -> None:
        """The raw hello and raw bytes go out as binary messages."""
        channel = printer_channel(RAW)
        channel.send_hello("2")
        channel.send_raw(b"\x02x\x03\r\n")
        channel.send_json(["x"])
        [hello, data, value] = channel.data_to_send()
        assert hello.startswith(b'{\r\n  "channel_name" : "v1.raw.zebra.com"')
        assert (data, value) == (b"\x02x\x03\r\n", b'[\r\n  "x"\r\n]')

    def test_alert_refused(self) -> None:
        """Alerts are for main or config, not raw."""
        with pytest.raises(InvalidChannelState, match="main or config"):
            printer_channel(RAW).send_alert({"alert": {}})

    def test_gateway_only_commands(self) -> None:
        """Query commands belong to the gateway."""
        channel = printer_channel(RAW)
        with pytest.raises(InvalidChannelState, match="gateway command"):
            channel.send_query(b"~HS", "line")
        with pytest.raises(InvalidChannelState, match="gateway command"):
            channel.finish_query()

    def test_closed(self) -> None:
        """After receive_closed, input is ignored and commands raise."""
        channel = printer_channel(RAW)
        channel.receive_closed()
        assert receive(channel, b"x") == []
        with pytest.raises(InvalidChannelState):
            channel.send_raw(b"x")
