"""The sans-I/O WebLink core: Zebra Link-OS printer protocol, no sockets, no clock.

See ``weblink-protocol.md`` for the protocol and ``style.md`` §4 for the design: one
:class:`ChannelProtocol` per WebSocket, bytes in, events and bytes out.
"""

from __future__ import annotations

from gateway.weblink.alerts import encode_alert, normalize_condition, parse_alert
from gateway.weblink.channel import ChannelProtocol
from gateway.weblink.constants import (
    CHANNEL_KINDS,
    CHANNEL_NAMES,
    DEFAULT_ALERT_SPEC,
    SUBPROTOCOL,
    ChannelKind,
    ChannelState,
    CloseCode,
    Role,
)
from gateway.weblink.discovery import (
    Discovery,
    DiscoveryError,
    crc16_xmodem,
    decode_discovery_b64,
    encode_discovery_b64,
)
from gateway.weblink.events import (
    Alert,
    AlertReceived,
    AlertsConfigured,
    ChannelOpenRequested,
    Event,
    PrinterIdentified,
    ProtocolViolation,
    QueryAnswered,
    RawDataReceived,
    SgdReplyReceived,
    SgdRequestReceived,
    UnsolicitedMessage,
)
from gateway.weblink.framing import RESPONSE_KINDS, ResponseCollector
from gateway.weblink.jsonstream import JsonStream, JsonStreamError
from gateway.weblink.labels import count_labels, format_label_count
from gateway.weblink.sgd import encode_json, encode_sgd_request, reply_matches

__all__ = [
    "CHANNEL_KINDS",
    "CHANNEL_NAMES",
    "DEFAULT_ALERT_SPEC",
    "RESPONSE_KINDS",
    "SUBPROTOCOL",
    "Alert",
    "AlertReceived",
    "AlertsConfigured",
    "ChannelKind",
    "ChannelOpenRequested",
    "ChannelProtocol",
    "ChannelState",
    "CloseCode",
    "Discovery",
    "DiscoveryError",
    "Event",
    "JsonStream",
    "JsonStreamError",
    "PrinterIdentified",
    "ProtocolViolation",
    "QueryAnswered",
    "RawDataReceived",
    "ResponseCollector",
    "Role",
    "SgdReplyReceived",
    "SgdRequestReceived",
    "UnsolicitedMessage",
    "count_labels",
    "crc16_xmodem",
    "decode_discovery_b64",
    "encode_alert",
    "encode_discovery_b64",
    "encode_json",
    "encode_sgd_request",
    "format_label_count",
    "normalize_condition",
    "parse_alert",
    "reply_matches",
]
