"""WebLink names and numbers (Zebra *Using Weblink*; ``docs/weblink.md``)."""

from __future__ import annotations

from enum import IntEnum, StrEnum

#: The WebSocket subprotocol a printer offers and the server must echo.
SUBPROTOCOL = "v1.weblink.zebra.com"


class Role(StrEnum):
    """Which side of a WebLink socket a protocol object plays."""

    GATEWAY = "gateway"
    PRINTER = "printer"


class ChannelKind(StrEnum):
    """The three kinds of WebLink socket."""

    MAIN = "main"
    RAW = "raw"
    CONFIG = "config"


#: ``channel_name`` on the wire for each secondary channel.
CHANNEL_NAMES: dict[ChannelKind, str] = {
    ChannelKind.RAW: "v1.raw.zebra.com",
    ChannelKind.CONFIG: "v1.config.zebra.com",
}
CHANNEL_KINDS: dict[str, ChannelKind] = {
    name: kind for kind, name in CHANNEL_NAMES.items()
}


class ChannelState(StrEnum):
    """Life of one WebLink socket as the core sees it."""

    AWAITING_HELLO = "awaiting_hello"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class CloseCode(IntEnum):
    """WebSocket close codes the gateway uses (RFC 6455 §7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011


#: Alert specification sent on main after identification: every condition, to the
#: WebLink destination (``SDK``), on set and on clear (Zebra's reference servlet).
DEFAULT_ALERT_SPEC = "ALL MESSAGES,SDK,Y,Y,,,N"
