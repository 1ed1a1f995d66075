"""Identifying sockets and reading server messages: ``weblink-protocol.md`` §3."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.weblink.constants import ChannelKind
from gateway.weblink.events import (
    AlertsConfigured,
    ChannelOpenRequested,
    PrinterIdentified,
    UnsolicitedMessage,
)
from gateway.weblink.messages import (
    HelloError,
    build_hello,
    identify,
    parse_server_message,
)
from tests.unit.weblink.frames import (
    CONFIG_HELLO,
    CONFIGURE_ALERT,
    DISCOVERY_B64,
    OPEN_CONFIG,
    OPEN_RAW,
    RAW_HELLO,
    b64,
    v4_packet,
)

HELLO = {"channel_name": "v1.raw.zebra.com", "unique_id": "50J000000001"}


class TestIdentify:
    """The first value on a socket names its channel and printer."""

    def test_discovery(self) -> None:
        """``discovery_b64`` identifies the main channel with the packet's serial."""
        identified = identify({"discovery_b64": DISCOVERY_B64})
        assert identified.kind is ChannelKind.MAIN
        assert identified.printer_serial == "50J000000001"
        assert identified.discovery is not None
        assert identified.channel_id is None

    @pytest.mark.parametrize(
        ("message", "kind", "channel_id"),
        [(RAW_HELLO, ChannelKind.RAW, "2"), (CONFIG_HELLO, ChannelKind.CONFIG, "3")],
    )
    def test_channel_hello(
        self, message: bytes, kind: ChannelKind, channel_id: str
    ) -> None:
        """A channel hello names raw or config; unique_id becomes printer_serial."""
        assert identify(json.loads(message)) == PrinterIdentified(
            kind, "50J000000001", channel_id=channel_id
        )

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [(7, "7"), (2.5, "2.5"), (None, None), ("conn1.2", "conn1.2")],
    )
    def test_channel_id_forms(self, raw: Any, expected: str | None) -> None:
        """channel_id may be a number, missing or null; it is kept as a string."""
        assert identify({**HELLO, "channel_id": raw}).channel_id == expected

    def test_channel_id_missing(self) -> None:
        """A hello without channel_id is accepted with channel_id None."""
        assert identify(HELLO).channel_id is None

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            ([], "JSON object, not a list"),
            ("x", "JSON object, not a str"),
            ({}, "keys: none"),
            ({"alert": {"condition": "PAPER OUT"}}, "keys: 'alert'"),
            ({"discovery_b64": 42}, "must be a string"),
            ({"discovery_b64": "!!"}, "undecodable discovery packet"),
            ({"discovery_b64": b64(v4_packet(b"50J 0001"))}, "invalid printer serial"),
            ({**HELLO, "channel_name": "v1.stream.zebra.com"}, "unknown channel_name"),
            ({**HELLO, "channel_name": 5}, "unknown channel_name"),
            ({**HELLO, "unique_id": "50J/0001"}, "invalid unique_id"),
            ({**HELLO, "unique_id": None}, "invalid unique_id"),
            ({**HELLO, "unique_id": "X" * 65}, "invalid unique_id"),
            ({**HELLO, "channel_id": True}, "channel_id must be"),
            ({**HELLO, "channel_id": ["2"]}, "channel_id must be"),
        ],
    )
    def test_rejected(self, value: Any, reason: str) -> None:
        """Anything but a valid discovery or channel hello raises HelloError."""
        with pytest.raises(HelloError, match=reason):
            identify(value)

    def test_long_values_are_cut(self) -> None:
        """Peer-supplied values in error messages are shortened."""
        with pytest.raises(HelloError) as info:
            identify({**HELLO, "channel_name": "x" * 500})
        assert len(str(info.value)) < 120
        assert "..." in str(info.value)


class TestBuildHello:
    """The emulator's channel hello (§3)."""

    def test_shape(self) -> None:
        """build_hello produces what identify accepts."""
        hello = build_hello(ChannelKind.CONFIG, "50J000000001", "3")
        assert hello == {
            "channel_name": "v1.config.zebra.com",
            "unique_id": "50J000000001",
            "channel_id": "3",
        }
        assert identify(hello).kind is ChannelKind.CONFIG


class TestParseServerMessage:
    """What a printer makes of the server's messages on main (§3, §4.3)."""

    @pytest.mark.parametrize(
        ("message", "event"),
        [
            (OPEN_RAW, ChannelOpenRequested(ChannelKind.RAW)),
            (OPEN_CONFIG, ChannelOpenRequested(ChannelKind.CONFIG)),
            (CONFIGURE_ALERT, AlertsConfigured("ALL MESSAGES,SDK,Y,Y,,,N")),
        ],
    )
    def test_known(self, message: bytes, event: object) -> None:
        """open and configure_alert become their events."""
        assert parse_server_message(json.loads(message)) == event

    @pytest.mark.parametrize(
        "value",
        [
            {"open": "v1.main.zebra.com"},
            {"open": 1},
            {"configure_alert": None},
            {"other": 1},
            [1],
        ],
    )
    def test_unknown(self, value: Any) -> None:
        """Unknown channel names and other values are unsolicited."""
        assert parse_server_message(value) == UnsolicitedMessage(value)
