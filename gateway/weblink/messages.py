"""WebLink control messages on main and channel hellos: reading and building them.

``weblink-protocol.md`` §1.1 and §3: every printer socket dials the same URL, so the
gateway tells them apart only by the first JSON value on each:

* main: ``{"discovery_b64": "..."}`` (§4.1), the serial being the packet's device
  unique id;
* raw / config: ``{"channel_name": "v1.raw.zebra.com", "unique_id": "<serial>",
  "channel_id": "<id>"}``.

Anything else (an alert, other JSON, a non-object) cannot identify a socket. Here
WebLink's ``unique_id`` becomes our ``printer_serial``.

The server's messages on main (§3, §4.3) are ``{"open": "v1.raw.zebra.com"}`` (or
config) and ``{"configure_alert": "<spec>"}``; the printer sends no reply to either.
"""

from __future__ import annotations

from typing import Any

from broker.errors import WebLinkProtocolError
from broker.topology import is_valid_serial
from gateway.weblink.constants import CHANNEL_KINDS, CHANNEL_NAMES, ChannelKind
from gateway.weblink.discovery import DiscoveryError, decode_discovery_b64
from gateway.weblink.events import (
    AlertsConfigured,
    ChannelOpenRequested,
    PrinterIdentified,
    UnsolicitedMessage,
)

_REPR_LIMIT = 80


class HelloError(WebLinkProtocolError):
    """The first message of a socket does not identify a printer channel."""


def identify(value: Any) -> PrinterIdentified:
    """Identify a socket from the first JSON value it carried.

    Args:
        value: The decoded first value.

    Returns:
        The channel kind and printer serial, plus the discovery packet (main) or the
        ``channel_id`` (raw/config).

    Raises:
        HelloError: The value is neither a valid discovery nor a valid channel hello;
            the message says why (the socket should close with 1008).
    """
    if not isinstance(value, dict):
        raise HelloError(
            f"the first message must be a JSON object, not a {type(value).__name__}"
        )
    if "discovery_b64" in value:
        return _identify_main(value["discovery_b64"])
    if "channel_name" in value:
        return _identify_channel(value)
    keys = ", ".join(_short(key) for key in list(value)[:5])
    raise HelloError(
        "the first message is neither a discovery (discovery_b64) nor a channel hello "
        f"(channel_name); keys: {keys or 'none'}"
    )


def _identify_main(discovery_b64: Any) -> PrinterIdentified:
    if not isinstance(discovery_b64, str):
        raise HelloError("discovery_b64 must be a string")
    try:
        discovery = decode_discovery_b64(discovery_b64)
    except DiscoveryError as exc:
        raise HelloError(f"undecodable discovery packet: {exc}") from exc
    if not is_valid_serial(discovery.printer_serial):
        raise HelloError(
            f"invalid printer serial {_short(discovery.printer_serial)} in the "
            "discovery packet"
        )
    return PrinterIdentified(
        ChannelKind.MAIN, discovery.printer_serial, discovery=discovery
    )


def _identify_channel(hello: dict[str, Any]) -> PrinterIdentified:
    name = hello["channel_name"]
    kind = CHANNEL_KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise HelloError(f"unknown channel_name {_short(name)}")
    serial = hello.get("unique_id")
    if not isinstance(serial, str) or not is_valid_serial(serial):
        raise HelloError(f"invalid unique_id {_short(serial)} in the channel hello")
    return PrinterIdentified(
        kind, serial, channel_id=_channel_id(hello.get("channel_id"))
    )


def _channel_id(raw: Any) -> str | None:
    """Keep ``channel_id`` as a string; its format is undocumented (§3)."""
    if raw is None or isinstance(raw, str):
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    raise HelloError(f"channel_id must be a string or a number, not {_short(raw)}")


def build_hello(
    kind: ChannelKind, printer_serial: str, channel_id: str
) -> dict[str, Any]:
    """Build a raw/config channel's first message, as a printer sends it (§3).

    Args:
        kind: RAW or CONFIG.
        printer_serial: Sent as ``unique_id``.
        channel_id: The printer's id for the socket (format undocumented).

    Returns:
        ``{"channel_name": ..., "unique_id": ..., "channel_id": ...}``.
    """
    return {
        "channel_name": CHANNEL_NAMES[kind],
        "unique_id": printer_serial,
        "channel_id": channel_id,
    }


def parse_server_message(
    value: Any,
) -> ChannelOpenRequested | AlertsConfigured | UnsolicitedMessage:
    """Read a server message on the main channel (printer role).

    Args:
        value: A decoded JSON value the server sent on main.

    Returns:
        :class:`ChannelOpenRequested` for ``{"open": <known channel name>}``,
        :class:`AlertsConfigured` for ``{"configure_alert": <spec>}``, else
        :class:`UnsolicitedMessage` (an unknown channel name included).
    """
    if isinstance(value, dict):
        name = value.get("open")
        if isinstance(name, str) and name in CHANNEL_KINDS:
            return ChannelOpenRequested(CHANNEL_KINDS[name])
        spec = value.get("configure_alert")
        if isinstance(spec, str):
            return AlertsConfigured(spec)
    return UnsolicitedMessage(value)


def _short(value: Any) -> str:
    """``repr`` of a peer-supplied value, cut to a loggable length."""
    text = repr(value)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."
