"""ChannelProtocol in the gateway role: ``weblink-protocol.md`` §2–§6."""

from __future__ import annotations

import json

import pytest

from broker.errors import InvalidChannelState
from gateway.weblink.channel import ChannelProtocol
from gateway.weblink.constants import ChannelKind, ChannelState, CloseCode, Role
from gateway.weblink.events import (
    AlertReceived,
    PrinterIdentified,
    QueryAnswered,
    RawDataReceived,
    SgdReplyReceived,
    UnsolicitedMessage,
)
from tests.unit.weblink.frames import (
    ALERT_PQ_JOB_COMPLETED,
    ALERT_SGD_SET,
    CONFIG_HELLO,
    DISCOVERY_B64,
    GETVAR_QUERY,
    GETVAR_REPLY,
    HS_QUERY,
    HS_REPLY,
    MAIN_HELLO,
    RAW_HELLO,
    SGD_BRANCH_REPLY,
    SGD_GET,
    SGD_REPLY,
    SGD_REPLY_VALUE,
    ZPL,
    b64,
    discovery_message,
    splits,
    v3_packet,
    v4_packet,
)
from tests.unit.weblink.helpers import (
    assert_sent,
    assert_violation,
    gateway_channel,
    receive,
)

MAIN, RAW, CONFIG = ChannelKind.MAIN, ChannelKind.RAW, ChannelKind.CONFIG
SGD_REQUEST = {"device.friendly_name": None, "appl.name": None}


class TestConstruction:
    """A gateway socket starts anonymous (§3)."""

    def test_initial_state(self) -> None:
        """Before the first message nothing is known."""
        channel = ChannelProtocol(Role.GATEWAY)
        assert channel.state is ChannelState.AWAITING_HELLO
        assert channel.kind is None
        assert channel.printer_serial is None
        assert channel.discovery is None
        assert channel.channel_id is None
        assert channel.close_code is None
        assert channel.close_reason is None
        assert not channel.has_pending_sgd
        assert not channel.has_pending_query
        assert channel.events_received() == []
        assert channel.data_to_send() == []

    @pytest.mark.parametrize(
        "kwargs", [{"kind": ChannelKind.RAW}, {"printer_serial": "50J000000001"}]
    )
    def test_gateway_takes_no_identity(self, kwargs: dict[str, object]) -> None:
        """The gateway role refuses a kind or serial: the peer supplies them."""
        with pytest.raises(ValueError, match="learns"):
            ChannelProtocol(Role.GATEWAY, **kwargs)  # type: ignore[arg-type]


class TestIdentification:
    """The first complete JSON value names the socket (§3, §4.1)."""

    def test_main(self) -> None:
        """A pretty-printed discovery message identifies the main channel."""
        channel = ChannelProtocol(Role.GATEWAY)
        [event] = receive(channel, MAIN_HELLO)
        assert isinstance(event, PrinterIdentified)
        assert (event.kind, event.printer_serial) == (MAIN, "50J000000001")
        assert event.discovery is not None
        assert event.discovery.product_name == "ZTC ZD620-203dpi ZPL"
        assert event.channel_id is None
        assert channel.state is ChannelState.OPEN
        assert channel.kind is MAIN
        assert channel.printer_serial == "50J000000001"
        assert channel.discovery == event.discovery

    @pytest.mark.parametrize(
        ("serial", "packet"),
        [
            ("D3J19320", v4_packet(b"D3J19320")),
            ("XXRBJ123456789012345", v4_packet(b"XXRBJ123456789012345")),
            ("A" * 32, v4_packet(b"A" * 32)),
            ("XXJ1234567", v3_packet()),
        ],
    )
    def test_main_serial_shapes(self, serial: str, packet: bytes) -> None:
        """Serials of any length, a full field and legacy packets all identify."""
        [event] = receive(
            ChannelProtocol(Role.GATEWAY), discovery_message(b64(packet, padding=False))
        )
        assert isinstance(event, PrinterIdentified)
        assert event.printer_serial == serial

    def test_main_split_at_every_byte(self) -> None:
        """The discovery message may arrive in two messages, cut anywhere."""
        for head, tail in splits(MAIN_HELLO):
            channel = ChannelProtocol(Role.GATEWAY)
            events = receive(channel, head, tail)
            assert [type(event) for event in events] == [PrinterIdentified]

    @pytest.mark.parametrize(
        ("message", "kind", "channel_id"),
        [(RAW_HELLO, RAW, "2"), (CONFIG_HELLO, CONFIG, "3")],
    )
    def test_channel_hello(
        self, message: bytes, kind: ChannelKind, channel_id: str
    ) -> None:
        """A channel hello identifies raw or config, keeping channel_id."""
        channel = ChannelProtocol(Role.GATEWAY)
        assert receive(channel, message) == [
            PrinterIdentified(kind, "50J000000001", channel_id=channel_id)
        ]
        assert channel.channel_id == channel_id
        assert channel.discovery is None

    def test_numeric_channel_id(self) -> None:
        """A numeric channel_id is kept as a string."""
        hello = b'{"channel_name":"v1.raw.zebra.com","unique_id":"50J000000001","channel_id":7}'
        channel = ChannelProtocol(Role.GATEWAY)
        receive(channel, hello)
        assert channel.channel_id == "7"

    def test_raw_bytes_after_hello(self) -> None:
        """On raw, bytes after the hello in the same message are raw data."""
        channel = ChannelProtocol(Role.GATEWAY)
        events = receive(channel, RAW_HELLO + b"\x02status\x03")
        assert events[1:] == [RawDataReceived(b"\x02status\x03")]

    def test_json_after_main_hello(self) -> None:
        """On main, JSON after the discovery in the same message is processed."""
        channel = ChannelProtocol(Role.GATEWAY)
        events = receive(channel, MAIN_HELLO + b"\r\n" + ALERT_PQ_JOB_COMPLETED)
        assert [type(event) for event in events] == [PrinterIdentified, AlertReceived]

    def test_config_hello_then_partial_json(self) -> None:
        """On config, a partial value after the hello stays buffered."""
        channel = ChannelProtocol(Role.GATEWAY)
        receive(channel, CONFIG_HELLO + SGD_REPLY[:5])
        channel.send_sgd(SGD_REQUEST)
        assert receive(channel, SGD_REPLY[5:]) == [SgdReplyReceived(SGD_REPLY_VALUE)]

    @pytest.mark.parametrize(
        ("message", "code", "reason"),
        [
            (ALERT_PQ_JOB_COMPLETED, CloseCode.POLICY_VIOLATION, "neither a discovery"),
            (b'{"hello":1}', CloseCode.POLICY_VIOLATION, "neither a discovery"),
            (b"[1, 2]", CloseCode.POLICY_VIOLATION, "JSON object"),
            (b"^XA^XZ", CloseCode.INVALID_DATA, "malformed JSON"),
            (b'{"discovery_b64":}', CloseCode.INVALID_DATA, "malformed JSON"),
            (b'{"discovery_b64":"!!"}', CloseCode.POLICY_VIOLATION, "discovery"),
            (
                discovery_message(b64(v4_packet(b"50J 0001"))),
                CloseCode.POLICY_VIOLATION,
                "invalid printer serial",
            ),
            (
                b'{"channel_name":"v1.stream.zebra.com","unique_id":"50J000000001"}',
                CloseCode.POLICY_VIOLATION,
                "unknown channel_name",
            ),
            (
                b'{"channel_name":"v1.raw.zebra.com","unique_id":"../etc"}',
                CloseCode.POLICY_VIOLATION,
                "invalid unique_id",
            ),
        ],
    )
    def test_bad_first_message(
        self, message: bytes, code: CloseCode, reason: str
    ) -> None:
        """Anything but a valid discovery or hello is a violation with its close code."""
        channel = ChannelProtocol(Role.GATEWAY)
        assert_violation(channel, receive(channel, message), code, reason)
        assert channel.kind is None
        assert channel.printer_serial is None

    def test_text_frame(self) -> None:
        """A text frame is refused with 1003 (§2: binary frames only)."""
        channel = ChannelProtocol(Role.GATEWAY)
        events = receive(channel, MAIN_HELLO.decode())
        assert_violation(channel, events, CloseCode.UNSUPPORTED_DATA, "binary frames")

    def test_hello_too_big(self) -> None:
        """An incomplete first value over the buffer limit is refused with 1009."""
        channel = ChannelProtocol(Role.GATEWAY, max_buffer_size=64)
        events = receive(channel, b'{"discovery_b64":"' + b"A" * 100)
        assert_violation(channel, events, CloseCode.MESSAGE_TOO_BIG, "too big")

    def test_input_ignored_after_violation(self) -> None:
        """After a violation later messages produce no events."""
        channel = ChannelProtocol(Role.GATEWAY)
        receive(channel, b"garbage")
        assert receive(channel, MAIN_HELLO, "text") == []
        assert channel.state is ChannelState.CLOSING
        assert channel.close_code is CloseCode.INVALID_DATA

    def test_bytearray_accepted(self) -> None:
        """Bytes-like messages are accepted like bytes."""
        channel = ChannelProtocol(Role.GATEWAY)
        [event] = receive(channel, bytearray(RAW_HELLO))  # type: ignore[arg-type]
        assert isinstance(event, PrinterIdentified)

    def test_commands_before_hello(self) -> None:
        """Commands need an identified channel."""
        channel = ChannelProtocol(Role.GATEWAY)
        with pytest.raises(InvalidChannelState, match="unidentified"):
            channel.request_channel(RAW)
        with pytest.raises(InvalidChannelState):
            channel.send_raw(ZPL)


class TestMain:
    """The main channel: open requests, alert configuration, alerts (§3, §4.3)."""

    def test_request_channels(self) -> None:
        """request_channel sends compact ``{"open": ...}`` messages (§9)."""
        channel = gateway_channel(MAIN)
        channel.request_channel(RAW)
        channel.request_channel(CONFIG)
        assert_sent(
            channel, b'{"open":"v1.raw.zebra.com"}', b'{"open":"v1.config.zebra.com"}'
        )

    def test_request_main_is_refused(self) -> None:
        """Only raw and config can be requested."""
        with pytest.raises(ValueError, match="only raw and config"):
            gateway_channel(MAIN).request_channel(MAIN)

    def test_configure_alerts(self) -> None:
        """configure_alerts sends the spec, by default Zebra's servlet's (§4.3)."""
        channel = gateway_channel(MAIN)
        channel.configure_alerts()
        channel.configure_alerts("PAPER OUT,SDK,Y,Y,,,N")
        assert_sent(
            channel,
            b'{"configure_alert":"ALL MESSAGES,SDK,Y,Y,,,N"}',
            b'{"configure_alert":"PAPER OUT,SDK,Y,Y,,,N"}',
        )

    def test_alerts(self) -> None:
        """Alerts arrive as AlertReceived, even several in one message."""
        channel = gateway_channel(MAIN)
        events = receive(channel, ALERT_PQ_JOB_COMPLETED + b"\r\n" + ALERT_SGD_SET)
        assert all(isinstance(event, AlertReceived) for event in events)
        assert [event.alert.condition for event in events] == [  # type: ignore[union-attr]
            "pq_job_completed",
            "sgd_set",
        ]

    def test_alert_split_at_every_byte(self) -> None:
        """An alert cut anywhere is still one AlertReceived."""
        for head, tail in splits(ALERT_PQ_JOB_COMPLETED):
            events = receive(gateway_channel(MAIN), head, tail)
            assert [type(event) for event in events] == [AlertReceived]

    def test_other_json_is_unsolicited(self) -> None:
        """JSON that is not an alert is reported as unsolicited, not as an error."""
        channel = gateway_channel(MAIN)
        message = b'{"discovery_b64":"' + DISCOVERY_B64.encode() + b'"}[1]'
        assert receive(channel, message) == [
            UnsolicitedMessage({"discovery_b64": DISCOVERY_B64}),
            UnsolicitedMessage([1]),
        ]
        assert channel.state is ChannelState.OPEN

    def test_malformed_json_after_good_values(self) -> None:
        """Values before malformed JSON are reported, then the 1007 violation."""
        channel = gateway_channel(MAIN)
        events = receive(channel, ALERT_SGD_SET + b"oops")
        assert isinstance(events[0], AlertReceived)
        assert_violation(channel, events, CloseCode.INVALID_DATA, "malformed JSON")

    def test_too_big(self) -> None:
        """An incomplete value over the limit closes with 1009."""
        channel = gateway_channel(MAIN, max_buffer_size=1024)
        events = receive(channel, b'{"alert":"' + b"x" * 2000)
        assert_violation(channel, events, CloseCode.MESSAGE_TOO_BIG, "too big")

    def test_text_frame(self) -> None:
        """A text frame on an open channel is a 1003 violation."""
        channel = gateway_channel(MAIN)
        events = receive(channel, '{"alert":{}}')
        assert_violation(channel, events, CloseCode.UNSUPPORTED_DATA, "text frames")

    @pytest.mark.parametrize(
        "command",
        [
            lambda c: c.send_sgd({}),
            lambda c: c.send_query(b"~HS", "line"),
            lambda c: c.finish_query(),
            lambda c: c.abandon_sgd(),
            lambda c: c.send_raw(b"x"),
            lambda c: c.send_discovery("x"),
            lambda c: c.send_json({}),
        ],
    )
    def test_wrong_commands(self, command: object) -> None:
        """Commands for other channel kinds or for printers raise InvalidChannelState."""
        with pytest.raises(InvalidChannelState):
            command(gateway_channel(MAIN))  # type: ignore[operator]


class TestConfig:
    """JSON SGD on the config channel, replies paired in order (§5)."""

    def test_send_sgd(self) -> None:
        """send_sgd sends the ``{}``-prefixed request and marks it pending."""
        channel = gateway_channel(CONFIG)
        channel.send_sgd(SGD_REQUEST)
        assert_sent(channel, SGD_GET)
        assert channel.has_pending_sgd

    def test_reply_split_at_every_byte(self) -> None:
        """A pretty reply cut anywhere pairs with the pending request."""
        for head, tail in splits(SGD_REPLY):
            channel = gateway_channel(CONFIG)
            channel.send_sgd(SGD_REQUEST)
            assert receive(channel, head, tail) == [SgdReplyReceived(SGD_REPLY_VALUE)]
            assert not channel.has_pending_sgd

    def test_branch_reply(self) -> None:
        """A branch get is answered with keys below the branch."""
        channel = gateway_channel(CONFIG)
        channel.send_sgd({"weblink": None})
        [event] = receive(channel, SGD_BRANCH_REPLY)
        assert isinstance(event, SgdReplyReceived)
        assert event.reply["weblink.enable"] == "on"

    def test_mismatched_reply_still_paired(self) -> None:
        """Pairing is by order; a reply with other keys is still the reply."""
        channel = gateway_channel(CONFIG)
        channel.send_sgd({"ip.port": None})
        assert receive(channel, b'{"appl.name":"V84"}') == [
            SgdReplyReceived({"appl.name": "V84"})
        ]

    def test_one_request_at_a_time(self) -> None:
        """A second request while one is pending raises."""
        channel = gateway_channel(CONFIG)
        channel.send_sgd(SGD_REQUEST)
        with pytest.raises(InvalidChannelState, match="already pending"):
            channel.send_sgd(SGD_REQUEST)

    def test_second_value_is_unsolicited(self) -> None:
        """Two replies to one request: the second is unsolicited."""
        channel = gateway_channel(CONFIG)
        channel.send_sgd(SGD_REQUEST)
        events = receive(channel, SGD_REPLY + b'{"x":"1"}')
        assert events == [
            SgdReplyReceived(SGD_REPLY_VALUE),
            UnsolicitedMessage({"x": "1"}),
        ]

    def test_alert_does_not_answer(self) -> None:
        """An alert on config is an alert, and the request stays pending."""
        channel = gateway_channel(CONFIG)
        channel.send_sgd(SGD_REQUEST)
        [event] = receive(channel, ALERT_SGD_SET)
        assert isinstance(event, AlertReceived)
        assert channel.has_pending_sgd

    def test_non_object_does_not_answer(self) -> None:
        """A JSON array is not a reply; the request stays pending."""
        channel = gateway_channel(CONFIG)
        channel.send_sgd(SGD_REQUEST)
        assert receive(channel, b"[]") == [UnsolicitedMessage([])]
        assert channel.has_pending_sgd

    def test_reply_without_request(self) -> None:
        """A reply nobody asked for is unsolicited."""
        channel = gateway_channel(CONFIG)
        assert receive(channel, SGD_REPLY) == [UnsolicitedMessage(SGD_REPLY_VALUE)]

    def test_abandon(self) -> None:
        """After abandon_sgd a late reply is unsolicited and a new request may go."""
        channel = gateway_channel(CONFIG)
        channel.send_sgd(SGD_REQUEST)
        channel.abandon_sgd()
        assert not channel.has_pending_sgd
        assert receive(channel, SGD_REPLY) == [UnsolicitedMessage(SGD_REPLY_VALUE)]
        channel.abandon_sgd()  # nothing pending: a no-op
        channel.send_sgd(SGD_REQUEST)
        assert channel.has_pending_sgd

    def test_close_drops_pending(self) -> None:
        """The printer closing the socket (1000 after a reply, §5) drops the request."""
        channel = gateway_channel(CONFIG)
        channel.send_sgd(SGD_REQUEST)
        channel.receive_closed()
        assert channel.state is ChannelState.CLOSED
        assert not channel.has_pending_sgd
        assert receive(channel, SGD_REPLY) == []
        with pytest.raises(InvalidChannelState, match="open channel"):
            channel.send_sgd(SGD_REQUEST)

    def test_unserialisable_request(self) -> None:
        """A request that is not JSON raises and leaves nothing pending."""
        channel = gateway_channel(CONFIG)
        with pytest.raises(TypeError):
            channel.send_sgd({"x": object()})
        assert not channel.has_pending_sgd
        assert channel.data_to_send() == []


class TestRaw:
    """The raw channel: bytes out, bytes and query answers in (§6)."""

    def test_send_raw(self) -> None:
        """send_raw queues one binary message per call; empty data is skipped."""
        channel = gateway_channel(RAW)
        channel.send_raw(ZPL)
        channel.send_raw(bytearray(b"^XA^XZ"))  # type: ignore[arg-type]
        channel.send_raw(b"")
        assert_sent(channel, ZPL, b"^XA^XZ")

    def test_send_raw_refuses_str(self) -> None:
        """A str would become a text frame, so it is refused."""
        with pytest.raises(TypeError, match="bytes, not str"):
            gateway_channel(RAW).send_raw(ZPL.decode())  # type: ignore[arg-type]

    def test_unsolicited_bytes(self) -> None:
        """Bytes without a pending query are RawDataReceived, one per message."""
        channel = gateway_channel(RAW)
        assert receive(channel, b"a", b"b") == [
            RawDataReceived(b"a"),
            RawDataReceived(b"b"),
        ]

    def test_hs_query_split_at_every_byte(self) -> None:
        """A ``~HS`` answer cut anywhere completes at its third frame."""
        for head, tail in splits(HS_REPLY):
            channel = gateway_channel(RAW)
            channel.send_query(HS_QUERY, "frames", 3)
            assert_sent(channel, HS_QUERY)
            events = receive(channel, head, tail)
            answered = [e for e in events if isinstance(e, QueryAnswered)]
            extra = b"".join(e.data for e in events if isinstance(e, RawDataReceived))
            assert len(answered) == 1
            assert answered[0].data + extra == HS_REPLY
            assert not channel.has_pending_query

    def test_leftover_bytes(self) -> None:
        """Bytes after the answer are reported as RawDataReceived."""
        channel = gateway_channel(RAW)
        channel.send_query(GETVAR_QUERY, "line")
        assert receive(channel, GETVAR_REPLY + b"more") == [
            QueryAnswered(GETVAR_REPLY),
            RawDataReceived(b"more"),
        ]

    def test_one_query_at_a_time(self) -> None:
        """A second query while one is pending raises."""
        channel = gateway_channel(RAW)
        channel.send_query(HS_QUERY, "frames", 3)
        with pytest.raises(InvalidChannelState, match="already pending"):
            channel.send_query(HS_QUERY, "frames", 3)

    def test_bad_framing(self) -> None:
        """A bad framing raises before anything is sent or pending."""
        channel = gateway_channel(RAW)
        with pytest.raises(ValueError, match="framing"):
            channel.send_query(HS_QUERY, "frame")
        assert channel.data_to_send() == []
        assert not channel.has_pending_query

    def test_idle_query_finished_by_session(self) -> None:
        """An idle query collects until finish_query, which emits no event."""
        channel = gateway_channel(RAW)
        channel.send_query(b"^HH", "idle")
        assert receive(channel, b"part 1,", b"part 2") == []
        assert channel.finish_query() == b"part 1,part 2"
        assert channel.events_received() == []
        assert not channel.has_pending_query
        assert receive(channel, b"late") == [RawDataReceived(b"late")]

    def test_finish_without_query(self) -> None:
        """finish_query with nothing pending raises."""
        with pytest.raises(InvalidChannelState, match="no raw query"):
            gateway_channel(RAW).finish_query()

    def test_finish_after_close(self) -> None:
        """A partial answer can still be collected after close()."""
        channel = gateway_channel(RAW)
        channel.send_query(HS_QUERY, "frames", 3)
        receive(channel, HS_REPLY[:10])
        channel.close(CloseCode.GOING_AWAY, "shutdown")
        assert channel.finish_query() == HS_REPLY[:10]

    def test_close_drops_query(self) -> None:
        """receive_closed drops the pending query."""
        channel = gateway_channel(RAW)
        channel.send_query(HS_QUERY, "frames", 3)
        channel.receive_closed()
        assert not channel.has_pending_query
        with pytest.raises(InvalidChannelState):
            channel.finish_query()

    def test_text_frame(self) -> None:
        """Text frames are refused on raw too."""
        channel = gateway_channel(RAW)
        events = receive(channel, "~HS")
        assert_violation(channel, events, CloseCode.UNSUPPORTED_DATA, "text frames")

    def test_json_commands_refused(self) -> None:
        """Main and config commands raise on a raw channel."""
        channel = gateway_channel(RAW)
        with pytest.raises(InvalidChannelState, match="needs a main channel"):
            channel.configure_alerts()
        with pytest.raises(InvalidChannelState, match="needs a config channel"):
            channel.send_sgd({})


class TestClose:
    """close() and receive_closed() (§7 close codes)."""

    def test_close(self) -> None:
        """close() records the code and reason and moves to CLOSING."""
        channel = gateway_channel(MAIN)
        channel.close(CloseCode.GOING_AWAY, "duplicate main connection")
        assert channel.state is ChannelState.CLOSING
        assert channel.close_code is CloseCode.GOING_AWAY
        assert channel.close_reason == "duplicate main connection"
        assert channel.data_to_send() == []

    def test_first_close_wins(self) -> None:
        """A later close() keeps the first code, also after a violation."""
        channel = gateway_channel(MAIN)
        receive(channel, b"junk")
        channel.close(CloseCode.NORMAL, "bye")
        assert channel.close_code is CloseCode.INVALID_DATA

    def test_close_before_hello(self) -> None:
        """A socket that never said hello can be closed (hello timeout)."""
        channel = ChannelProtocol(Role.GATEWAY)
        channel.close(CloseCode.POLICY_VIOLATION, "no hello within 10 s")
        assert channel.state is ChannelState.CLOSING
        assert receive(channel, MAIN_HELLO) == []

    def test_commands_after_close(self) -> None:
        """Commands on a closing channel raise."""
        channel = gateway_channel(MAIN)
        channel.close(CloseCode.NORMAL, "bye")
        with pytest.raises(InvalidChannelState, match="open channel; it is closing"):
            channel.request_channel(RAW)

    def test_receive_closed(self) -> None:
        """receive_closed moves to CLOSED from any state and is idempotent."""
        channel = ChannelProtocol(Role.GATEWAY)
        channel.receive_closed()
        channel.receive_closed()
        assert channel.state is ChannelState.CLOSED
        channel.close(CloseCode.NORMAL, "late")
        assert channel.close_code is None
        assert receive(channel, MAIN_HELLO) == []


def test_reply_json_is_whole_value() -> None:
    """The SgdReplyReceived reply is the decoded object itself."""
    channel = gateway_channel(CONFIG)
    channel.send_sgd({"a": None})
    [event] = receive(channel, json.dumps({"a": {"b": [1, "2"]}}).encode())
    assert event == SgdReplyReceived({"a": {"b": [1, "2"]}})
