"""The discovery packet a printer sends as ``discovery_b64`` on the main channel.

``weblink-protocol.md`` §4.1: the value is standard base64 of Zebra's binary discovery
packet (the UDP discovery structure), optionally followed by ``:`` and four hex digits
(CRC-16/XMODEM of the base64 text). Integers are big-endian, strings NUL-padded ASCII.
The printer serial is the *device unique id* field, read up to its first NUL: never a
fixed slice, since serials are not all 12 characters long.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass

from broker.errors import WebLinkProtocolError

#: Every discovery packet starts with ``:,.`` (§4.1, offset 0).
MAGIC = b":,."
#: Byte 3: 3 is the legacy layout, 4 the "advanced" one (§4.1).
LEGACY_VERSION = 3
ADVANCED_VERSION = 4
#: The advanced sub-version written by :func:`encode_discovery_b64` (seen 2, 4, 5).
ADVANCED_SUB_VERSION = 5

# (offset, length) of each field, from the §4.1 tables.
_V4_FIELDS: dict[str, tuple[int, int]] = {
    "company": (8, 5),
    "system_name": (13, 63),
    "product_name": (76, 32),
    "firmware": (108, 16),
    "location": (124, 36),
    "printer_serial": (188, 32),
    "mac": (324, 6),
    "ip": (332, 4),
}
#: A v4 sub-version 5 packet ends after the 802.1X byte at offset 420 (§4.1); a real
#: one is 422 bytes long (one trailing zero).
_V4_LENGTH = 422

_V3_FIELDS: dict[str, tuple[int, int]] = {
    "product_number": (4, 8),
    "product_name": (12, 20),
    "firmware": (39, 10),
    # Not in §4.1's table: the Link-OS SDK legacy layout puts the company abbreviation
    # between the firmware and the MAC, and a real legacy sample agrees.
    "company": (49, 5),
    "mac": (54, 6),
    "printer_serial": (60, 10),
    "ip": (72, 4),
    "system_name": (84, 25),
}
_V3_LENGTH = 109


class DiscoveryError(WebLinkProtocolError, ValueError):
    """A ``discovery_b64`` value could not be decoded."""


@dataclass(frozen=True)
class Discovery:
    """What the gateway keeps from a printer's discovery packet (§4.1).

    Attributes:
        version: 3 (legacy layout) or 4 (advanced layout).
        printer_serial: The device unique id, i.e. the printer's serial number.
        product_name: For example ``ZTC ZD620-203dpi ZPL``.
        firmware: For example ``V84.20.23Z``.
        system_name: Often the serial again, or a host name set by the user.
        mac: ``aa:bb:cc:dd:ee:ff``; ``None`` when absent or all zeros.
        ip: Dotted quad; ``None`` when absent or ``0.0.0.0``.
        company: Company abbreviation, usually ``ZBR``.
        location: The printer's configured location (advanced packets only).
        product_number: Legacy packets only.
    """

    version: int
    printer_serial: str
    product_name: str | None = None
    firmware: str | None = None
    system_name: str | None = None
    mac: str | None = None
    ip: str | None = None
    company: str | None = None
    location: str | None = None
    product_number: str | None = None


def crc16_xmodem(data: bytes) -> int:
    """Return the CRC-16/XMODEM of ``data`` (poly 0x1021, init 0, no reflection).

    §4.1: the ``:xxxx`` suffix of ``discovery_b64`` matches this CRC of the base64
    ASCII text on the one real sample checked.

    Args:
        data: The bytes to checksum.

    Returns:
        The 16-bit CRC.
    """
    # binascii.crc_hqx is the CCITT polynomial 0x1021 without reflection; seeded with
    # 0 it is exactly XMODEM.
    return binascii.crc_hqx(data, 0)


def decode_discovery_b64(value: str) -> Discovery:
    """Decode the ``discovery_b64`` value of a printer's first main-channel message.

    Args:
        value: The JSON string as sent, with or without the ``:xxxx`` suffix, padding
            or surrounding whitespace.

    Returns:
        The decoded packet. The serial is returned as found; checking its shape is the
        channel's job.

    Raises:
        DiscoveryError: Bad base64, bad magic, unknown version, a packet too short for
            its serial field, or an empty serial.
    """
    # §4.1: strip everything from the first ":" (the CRC suffix) before decoding.
    text = value.strip().split(":", 1)[0].strip()
    text += "=" * (-len(text) % 4)  # printers and copies may drop the padding
    try:
        packet = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DiscoveryError(f"discovery_b64 is not valid base64: {exc}") from exc
    if packet[:3] != MAGIC:
        raise DiscoveryError(
            f"discovery packet does not start with the magic bytes 3A 2C 2E: "
            f"{packet[:4].hex(' ')!r}"
        )
    if len(packet) < 4:
        raise DiscoveryError("discovery packet ends before its version byte")
    version = packet[3]
    if version == ADVANCED_VERSION:
        fields = _V4_FIELDS
    elif version == LEGACY_VERSION:
        fields = _V3_FIELDS
    else:
        raise DiscoveryError(
            f"unknown discovery packet version {version}; expected 3 (legacy) or 4"
        )
    serial_offset, serial_length = fields["printer_serial"]
    if len(packet) < serial_offset + serial_length:
        raise DiscoveryError(
            f"discovery packet v{version} is {len(packet)} bytes long, too short for "
            f"its serial field at offset {serial_offset} (length {serial_length})"
        )

    def field(name: str) -> str | None:
        if name not in fields:
            return None
        return _text(packet, *fields[name]) or None

    serial = field("printer_serial")
    if serial is None:
        raise DiscoveryError(f"discovery packet v{version} has an empty serial field")
    return Discovery(
        version=version,
        printer_serial=serial,
        product_name=field("product_name"),
        firmware=field("firmware"),
        system_name=field("system_name"),
        mac=_mac(packet, *fields["mac"]),
        ip=_ip(packet, *fields["ip"]),
        company=field("company"),
        location=field("location"),
        product_number=field("product_number"),
    )


def _text(packet: bytes, offset: int, length: int) -> str:
    """Return a NUL-padded ASCII field: bytes up to the first NUL, stripped."""
    field = packet[offset : offset + length].split(b"\0", 1)[0]
    return field.decode("ascii", errors="replace").strip()


def _mac(packet: bytes, offset: int, length: int) -> str | None:
    field = packet[offset : offset + length]
    if len(field) < length or not any(field):
        return None
    return ":".join(f"{byte:02x}" for byte in field)


def _ip(packet: bytes, offset: int, length: int) -> str | None:
    field = packet[offset : offset + length]
    if len(field) < length or not any(field):
        return None
    return str(ipaddress.IPv4Address(field))


def encode_discovery_b64(
    *,
    printer_serial: str,
    product_name: str = "ZTC ZD621-203dpi ZPL",
    firmware: str = "V93.21.26Z",
    system_name: str | None = None,
    mac: str = "00:07:4d:00:00:01",
    ip: str = "127.0.0.1",
    company: str = "ZBR",
    location: str = "",
    legacy: bool = False,
    with_crc: bool = True,
) -> str:
    """Build a ``discovery_b64`` value as a printer would send it (for the emulator).

    Args:
        printer_serial: Written to the device unique id field (at most 32 ASCII
            characters, 10 for a legacy packet).
        product_name: Product name field.
        firmware: Firmware version field.
        system_name: System name field; defaults to the serial, as printers do.
        mac: Hardware address, six hex bytes separated by ``:`` or ``-``.
        ip: IPv4 address, dotted quad.
        company: Company abbreviation.
        location: Location field (advanced packets only; ignored for legacy).
        legacy: Build a version 3 (legacy) packet instead of version 4 sub-version 5.
        with_crc: Append ``:`` and the CRC-16/XMODEM of the base64 text (§4.1).

    Returns:
        The base64 text, with the ``:xxxx`` suffix when ``with_crc``.

    Raises:
        ValueError: A value is not ASCII, does not fit its field, or the MAC or IP
            cannot be parsed.
    """
    if not printer_serial:
        raise ValueError("printer_serial must not be empty")
    strings = {
        "printer_serial": printer_serial,
        "product_name": product_name,
        "firmware": firmware,
        "system_name": printer_serial if system_name is None else system_name,
        "company": company,
    }
    if legacy:
        fields, packet = _V3_FIELDS, bytearray(_V3_LENGTH)
        packet[3] = LEGACY_VERSION
    else:
        fields, packet = _V4_FIELDS, bytearray(_V4_LENGTH)
        packet[3] = ADVANCED_VERSION
        packet[4] = ADVANCED_SUB_VERSION
        strings["location"] = location
    packet[0:3] = MAGIC
    for name, text in strings.items():
        offset, length = fields[name]
        raw = text.encode("ascii")
        if len(raw) > length:
            raise ValueError(
                f"{name} {text!r} is {len(raw)} bytes; the field holds {length}"
            )
        packet[offset : offset + len(raw)] = raw
    mac_bytes = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(mac_bytes) != 6:
        raise ValueError(f"mac {mac!r} is not six bytes")
    offset, _ = fields["mac"]
    packet[offset : offset + 6] = mac_bytes
    offset, _ = fields["ip"]
    packet[offset : offset + 4] = ipaddress.IPv4Address(ip).packed
    text = base64.b64encode(bytes(packet)).decode("ascii")
    if with_crc:
        text += f":{crc16_xmodem(text.encode('ascii')):04x}"
    return text
