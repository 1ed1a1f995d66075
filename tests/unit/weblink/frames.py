"""Canned WebLink messages, shaped like a real printer's (``weblink-protocol.md`` §9).

Printers pretty-print their JSON with two-space indents, ``" : "`` and CRLF (§2); the
gateway sends compact JSON. Discovery packets are laid out here byte by byte from the
§4.1 offset tables, independently of ``encode_discovery_b64``, so the decoder is
checked against the reference rather than against its own encoder.
"""

from __future__ import annotations

import base64

from gateway.weblink.discovery import crc16_xmodem

SERIAL = "50J000000001"

# -- discovery packets (§4.1) -------------------------------------------------------


def place(packet: bytearray, offset: int, value: bytes) -> None:
    """Write ``value`` into ``packet`` at ``offset``."""
    packet[offset : offset + len(value)] = value


def v4_packet(
    serial: bytes = SERIAL.encode(),
    *,
    length: int = 422,
    sub_version: int = 5,
) -> bytes:
    """Return an advanced (v4) discovery packet with fields at the §4.1 offsets."""
    packet = bytearray(length)
    place(packet, 0, b":,.\x04")
    packet[4] = sub_version
    place(packet, 8, b"ZBR")
    place(packet, 13, b"LINE-3-PRINTER")
    place(packet, 76, b"ZTC ZD620-203dpi ZPL")
    place(packet, 108, b"V84.20.23Z")
    place(packet, 124, b"Hall B")
    place(packet, 188, serial)
    place(packet, 220, b"example.com")
    place(packet, 324, bytes.fromhex("00074d9d1814"))
    place(packet, 332, bytes([192, 168, 1, 76]))
    place(packet, 344, (9100).to_bytes(2, "big"))
    return bytes(packet[:length])


def v3_packet(serial: bytes = b"XXJ1234567") -> bytes:
    """Return a legacy (v3) discovery packet with fields at the §4.1 offsets."""
    packet = bytearray(109)
    place(packet, 0, b":,.\x03")
    place(packet, 4, b"ZD410AB1")
    place(packet, 12, b"ZTC ZD410-203dpi")
    place(packet, 39, b"V84.20.01")
    place(packet, 49, b"ZBR")
    place(packet, 54, bytes.fromhex("00074d112233"))
    place(packet, 60, serial)
    place(packet, 72, bytes([10, 0, 0, 7]))
    place(packet, 84, b"legacy-host")
    return bytes(packet)


def b64(packet: bytes, *, crc: bool = True, padding: bool = True) -> str:
    """Return ``packet`` as a printer's ``discovery_b64`` value (§4.1)."""
    text = base64.b64encode(packet).decode("ascii")
    if not padding:
        text = text.rstrip("=")
    if crc:
        text += f":{crc16_xmodem(text.encode('ascii')):04x}"
    return text


DISCOVERY_B64 = b64(v4_packet())


def discovery_message(value: str = DISCOVERY_B64) -> bytes:
    """Return a main channel's first message, pretty-printed with CRLF like §9."""
    return b'{\r\n  "discovery_b64" : "' + value.encode("ascii") + b'"\r\n}'


MAIN_HELLO = discovery_message()

# -- channel hellos (§3) --------------------------------------------------------------

RAW_HELLO = (
    b'{"channel_name":"v1.raw.zebra.com","unique_id":"50J000000001","channel_id":"2"}'
)
CONFIG_HELLO = (
    b'{\r\n  "channel_name" : "v1.config.zebra.com",\r\n'
    b'  "unique_id" : "50J000000001",\r\n  "channel_id" : "3"\r\n}'
)

# -- server -> printer on main (§3, §4.3) ---------------------------------------------

OPEN_RAW = b'{"open":"v1.raw.zebra.com"}'
OPEN_CONFIG = b'{"open":"v1.config.zebra.com"}'
CONFIGURE_ALERT = b'{"configure_alert":"ALL MESSAGES,SDK,Y,Y,,,N"}'

# -- alerts (§4.3, §9) ----------------------------------------------------------------

ALERT_PQ_JOB_COMPLETED = (
    b'{\r\n  "alert" : {\r\n    "unique_id" : "50J000000001",\r\n'
    b'    "time_stamp" : "2024-05-02 10:15:07",\r\n    "type_id" : "ALERT",\r\n'
    b'    "condition_id" : "PQ JOB COMPLETED",\r\n    "condition_state" : "SET",\r\n'
    b'    "type" : "ALERT",\r\n    "condition" : "PQ JOB COMPLETED"\r\n  }\r\n}'
)
ALERT_SGD_SET = (
    b'{ "alert" : { "unique_id" : "50J000000001", "time_stamp" : "2018-03-15 12:27:32",'
    b'\r\n  "type_id" : "ALERT", "condition_id" : "SGD SET", "condition_state" : "SET",'
    b'\r\n  "type" : "ALERT", "condition" : "SGD SET",\r\n'
    b'  "setting_name" : "capture.channel1.data.raw",'
    b' "setting_value" : "8007500111023" } }'
)
ALERT_HEAD_OPEN_CLEAR = (
    b'{\r\n  "alert" : {\r\n    "unique_id" : "50J000000001",\r\n'
    b'    "condition_id" : "HEAD OPEN",\r\n    "condition_state" : "CLEAR"\r\n  }\r\n}'
)

# -- config channel (§5) --------------------------------------------------------------

SGD_GET = b'{}{"device.friendly_name":null,"appl.name":null}'
SGD_REPLY = (
    b'{\r\n  "device.friendly_name" : "LINE-3",\r\n  "appl.name" : "V84.20.23Z"\r\n}'
)
SGD_REPLY_VALUE = {"device.friendly_name": "LINE-3", "appl.name": "V84.20.23Z"}
SGD_BRANCH_REPLY = (
    b'{\r\n  "weblink.enable" : "on",\r\n'
    b'  "weblink.ip.conn1.location" : "https://server.example.com/zebra/weblink/"\r\n}'
)

# -- raw channel (§6) ------------------------------------------------------------------

ZPL = b"^XA^FO50,50^A0N,40,40^FDHello^FS^XZ"
HS_QUERY = b"~HS"
HS_REPLY = (
    b"\x02030,0,0,1225,000,0,0,0,000,0,0,0\x03\r\n"
    b"\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\r\n"
    b"\x021234,0\x03\r\n"
)
GETVAR_QUERY = b'! U1 getvar "device.friendly_name"\r\n'
GETVAR_REPLY = b'"LINE-3"\r\n'


def splits(data: bytes) -> list[tuple[bytes, bytes]]:
    """Return ``data`` cut in two at every byte position."""
    return [(data[:index], data[index:]) for index in range(len(data) + 1)]
