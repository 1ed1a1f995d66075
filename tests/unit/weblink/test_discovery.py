"""Discovery packets: ``weblink-protocol.md`` §4.1."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import WebLinkProtocolError
from gateway.weblink.discovery import (
    Discovery,
    DiscoveryError,
    crc16_xmodem,
    decode_discovery_b64,
    encode_discovery_b64,
)
from tests.unit.weblink.frames import b64, v3_packet, v4_packet

SERIAL_CHARS = st.sampled_from(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
)


class TestCrc:
    """The ``:xxxx`` suffix is CRC-16/XMODEM of the base64 text (§4.1)."""

    def test_check_value(self) -> None:
        """CRC-16/XMODEM of "123456789" is the catalogue check value 0x31C3."""
        assert crc16_xmodem(b"123456789") == 0x31C3

    def test_empty(self) -> None:
        """The CRC of nothing is the initial value 0."""
        assert crc16_xmodem(b"") == 0


class TestDecodeAdvanced:
    """Version 4 ("advanced") packets, fields at the §4.1 offsets."""

    def test_fields(self) -> None:
        """Every field the gateway keeps is read from its offset."""
        discovery = decode_discovery_b64(b64(v4_packet()))
        assert discovery == Discovery(
            version=4,
            printer_serial="50J000000001",
            product_name="ZTC ZD620-203dpi ZPL",
            firmware="V84.20.23Z",
            system_name="LINE-3-PRINTER",
            mac="00:07:4d:9d:18:14",
            ip="192.168.1.76",
            company="ZBR",
            location="Hall B",
            product_number=None,
        )

    @pytest.mark.parametrize(
        "serial", ["D3J19320", "50J000000001", "XXRBJ123456789012345"]
    )
    def test_serial_lengths(self, serial: str) -> None:
        """Serials of 8, 12 and 20 characters are read up to the first NUL."""
        packet = v4_packet(serial.encode())
        assert decode_discovery_b64(b64(packet)).printer_serial == serial

    def test_full_serial_field(self) -> None:
        """A 32-character serial with no NUL stops at the end of its field."""
        serial = "A" * 31 + "Z"
        packet = v4_packet(serial.encode())
        assert packet[220:231] == b"example.com"  # the DNS domain follows, no NUL
        assert decode_discovery_b64(b64(packet)).printer_serial == serial

    def test_padded_serial_is_stripped(self) -> None:
        """Spaces around the serial inside its field are trimmed."""
        packet = v4_packet(b" 50J000000001 ")
        assert decode_discovery_b64(b64(packet)).printer_serial == "50J000000001"

    def test_garbage_after_nul_ignored(self) -> None:
        """Bytes after the first NUL in the serial field are not part of the serial."""
        packet = v4_packet(b"50J000000001\0junk")
        assert decode_discovery_b64(b64(packet)).printer_serial == "50J000000001"

    def test_non_ascii_bytes_replaced(self) -> None:
        """Non-ASCII bytes decode as U+FFFD instead of failing."""
        packet = v4_packet(b"50J\xff01")
        assert decode_discovery_b64(b64(packet)).printer_serial == "50J\ufffd01"

    def test_minimal_packet_to_serial(self) -> None:
        """A packet that ends right after the serial field decodes; MAC and IP are None."""
        discovery = decode_discovery_b64(b64(v4_packet(length=220)))
        assert discovery.printer_serial == "50J000000001"
        assert discovery.mac is None
        assert discovery.ip is None

    def test_zero_mac_and_ip_are_none(self) -> None:
        """An all-zero MAC and 0.0.0.0 read as None."""
        packet = bytearray(v4_packet())
        packet[324:336] = bytes(12)
        discovery = decode_discovery_b64(b64(bytes(packet)))
        assert discovery.mac is None
        assert discovery.ip is None

    @pytest.mark.parametrize("sub_version", [2, 4, 5])
    def test_sub_versions(self, sub_version: int) -> None:
        """Sub-versions seen in the field (2, 4, 5) share the offsets used here."""
        packet = v4_packet(sub_version=sub_version)
        assert decode_discovery_b64(b64(packet)).printer_serial == "50J000000001"


class TestDecodeLegacy:
    """Version 3 (legacy) packets: serial at offset 60, 10 bytes (§4.1)."""

    def test_fields(self) -> None:
        """The legacy layout is read from its own offsets."""
        discovery = decode_discovery_b64(b64(v3_packet()))
        assert discovery == Discovery(
            version=3,
            printer_serial="XXJ1234567",
            product_name="ZTC ZD410-203dpi",
            firmware="V84.20.01",
            system_name="legacy-host",
            mac="00:07:4d:11:22:33",
            ip="10.0.0.7",
            company="ZBR",
            location=None,
            product_number="ZD410AB1",
        )

    def test_short_serial(self) -> None:
        """A legacy serial shorter than 10 characters ends at its NUL."""
        discovery = decode_discovery_b64(b64(v3_packet(b"ABC123")))
        assert discovery.printer_serial == "ABC123"

    def test_too_short(self) -> None:
        """A legacy packet that stops inside the serial field is rejected."""
        with pytest.raises(DiscoveryError, match="offset 60"):
            decode_discovery_b64(b64(v3_packet()[:65]))


class TestEnvelope:
    """The base64 text around the packet: suffix, padding, whitespace (§4.1)."""

    def test_crc_suffix_stripped(self) -> None:
        """The ``:xxxx`` suffix is ignored, whatever its value."""
        text = b64(v4_packet(), crc=False) + ":c0cb"
        assert decode_discovery_b64(text).printer_serial == "50J000000001"

    def test_missing_padding(self) -> None:
        """Base64 without its ``=`` padding decodes."""
        packet = v4_packet(length=221)  # 221 % 3 != 0, so padding is needed
        text = b64(packet, crc=True, padding=False)
        assert "=" not in text
        assert decode_discovery_b64(text).printer_serial == "50J000000001"

    def test_surrounding_whitespace(self) -> None:
        """Whitespace around the value and around the suffix is tolerated."""
        text = "  " + b64(v4_packet(), crc=False) + " \r\n:c0cb\n"
        assert decode_discovery_b64(text).printer_serial == "50J000000001"

    def test_bad_base64(self) -> None:
        """Characters outside the base64 alphabet raise DiscoveryError."""
        with pytest.raises(DiscoveryError, match="base64"):
            decode_discovery_b64("Oiwu!!!!")

    def test_non_ascii(self) -> None:
        """Non-ASCII text raises DiscoveryError, not a bare ValueError."""
        with pytest.raises(DiscoveryError, match="base64"):
            decode_discovery_b64("OiwuéAA")

    def test_impossible_length(self) -> None:
        """A base64 text of impossible length raises DiscoveryError."""
        with pytest.raises(DiscoveryError, match="base64"):
            decode_discovery_b64("OiwuB")

    def test_bad_magic(self) -> None:
        """A packet that does not start with 3A 2C 2E raises DiscoveryError."""
        text = base64.b64encode(b"XYZ\x04" + bytes(300)).decode()
        with pytest.raises(DiscoveryError, match="magic"):
            decode_discovery_b64(text)

    def test_magic_only(self) -> None:
        """The magic bytes alone, without a version byte, are rejected."""
        with pytest.raises(DiscoveryError, match="version byte"):
            decode_discovery_b64("Oiwu")

    def test_empty(self) -> None:
        """An empty value is rejected."""
        with pytest.raises(DiscoveryError):
            decode_discovery_b64("")

    def test_unknown_version(self) -> None:
        """Versions other than 3 and 4 are rejected."""
        text = base64.b64encode(b":,.\x02" + bytes(300)).decode()
        with pytest.raises(DiscoveryError, match="version 2"):
            decode_discovery_b64(text)

    def test_too_short_for_serial(self) -> None:
        """A v4 packet that stops inside the serial field is rejected."""
        with pytest.raises(DiscoveryError, match="too short"):
            decode_discovery_b64(b64(v4_packet(length=200)))

    def test_empty_serial(self) -> None:
        """A packet whose serial field is all NULs is rejected."""
        with pytest.raises(DiscoveryError, match="empty serial"):
            decode_discovery_b64(b64(v4_packet(b"")))

    def test_error_hierarchy(self) -> None:
        """DiscoveryError is both a WebLinkProtocolError and a ValueError."""
        assert issubclass(DiscoveryError, WebLinkProtocolError)
        assert issubclass(DiscoveryError, ValueError)


class TestEncode:
    """The emulator's discovery builder (§10 item 2)."""

    def test_advanced_layout(self) -> None:
        """The encoder writes a v4 sub-version 5 packet with the serial at 188."""
        text = encode_discovery_b64(printer_serial="50J000000001", with_crc=False)
        packet = base64.b64decode(text)
        assert packet[:5] == b":,.\x04\x05"
        assert packet[188:201] == b"50J000000001\0"
        assert len(packet) == 422

    def test_crc_suffix(self) -> None:
        """The suffix is ``:`` plus the lowercase hex CRC of the base64 text."""
        text = encode_discovery_b64(printer_serial="50J000000001")
        body, suffix = text.split(":")
        assert suffix == f"{crc16_xmodem(body.encode()):04x}"

    def test_round_trip_defaults(self) -> None:
        """Decoding the encoder's output gives back every field."""
        text = encode_discovery_b64(printer_serial="50J000000001", location="Dock 4")
        assert decode_discovery_b64(text) == Discovery(
            version=4,
            printer_serial="50J000000001",
            product_name="ZTC ZD621-203dpi ZPL",
            firmware="V93.21.26Z",
            system_name="50J000000001",
            mac="00:07:4d:00:00:01",
            ip="127.0.0.1",
            company="ZBR",
            location="Dock 4",
        )

    def test_round_trip_legacy(self) -> None:
        """A legacy packet round-trips; location and product number are absent."""
        text = encode_discovery_b64(
            printer_serial="XXJ1234567",
            system_name="host",
            mac="00-07-4d-aa-bb-cc",
            ip="10.1.2.3",
            location="ignored",
            legacy=True,
        )
        assert decode_discovery_b64(text) == Discovery(
            version=3,
            printer_serial="XXJ1234567",
            product_name="ZTC ZD621-203dpi ZPL",
            firmware="V93.21.26Z",
            system_name="host",
            mac="00:07:4d:aa:bb:cc",
            ip="10.1.2.3",
            company="ZBR",
        )

    def test_zero_ip(self) -> None:
        """An IP of 0.0.0.0 decodes as None."""
        text = encode_discovery_b64(printer_serial="50J000000001", ip="0.0.0.0")
        assert decode_discovery_b64(text).ip is None

    @pytest.mark.parametrize(
        ("kwargs", "message"),  # None: the stdlib's own message
        [
            ({"printer_serial": ""}, "empty"),
            ({"printer_serial": "X" * 33}, "field holds 32"),
            ({"printer_serial": "X" * 11, "legacy": True}, "field holds 10"),
            ({"printer_serial": "50J000000001", "mac": "00:07:4d"}, "six bytes"),
            ({"printer_serial": "50J000000001", "mac": "zz:07:4d:00:00:01"}, None),
            ({"printer_serial": "50J000000001", "ip": "300.1.1.1"}, None),
            ({"printer_serial": "50J00000000é"}, None),
        ],
    )
    def test_invalid_values(
        self, kwargs: dict[str, object], message: str | None
    ) -> None:
        """Values that cannot be encoded raise ValueError."""
        with pytest.raises(ValueError, match=message):
            encode_discovery_b64(**kwargs)  # type: ignore[arg-type]

    @given(
        serial=st.text(SERIAL_CHARS, min_size=1, max_size=32),
        legacy=st.booleans(),
        with_crc=st.booleans(),
    )
    def test_round_trip_property(
        self, serial: str, legacy: bool, with_crc: bool
    ) -> None:
        """Any valid serial that fits its field survives encode then decode."""
        serial = serial[:10] if legacy else serial
        text = encode_discovery_b64(
            printer_serial=serial, legacy=legacy, with_crc=with_crc
        )
        assert decode_discovery_b64(text).printer_serial == serial
