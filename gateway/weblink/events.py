"""Events the WebLink core reports from ``ChannelProtocol.events_received()``.

Past ``gateway/weblink/`` nothing sees Zebra's field names: ``unique_id`` becomes
``printer_serial`` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.weblink.constants import ChannelKind, CloseCode
from gateway.weblink.discovery import Discovery


@dataclass(frozen=True)
class Alert:
    """A printer alert (``{"alert": {...}}``), in our vocabulary."""

    #: The condition as the printer spelled it, e.g. ``PQ JOB COMPLETED``.
    condition_name: str
    #: Lowercased with non-alphanumerics as ``_``, e.g. ``pq_job_completed``.
    condition: str
    #: ``set`` or ``clear``.
    state: str
    printer_serial: str | None = None
    setting_name: str | None = None
    setting_value: str | None = None
    #: The printer's local ``time_stamp``, verbatim.
    printer_time: str | None = None


# -- gateway role ---------------------------------------------------------------


@dataclass(frozen=True)
class PrinterIdentified:
    """The socket's first message named its printer and channel kind."""

    kind: ChannelKind
    printer_serial: str
    #: Main channel only: the decoded discovery packet.
    discovery: Discovery | None = None
    #: Secondary channels only: the printer's ``channel_id``, verbatim.
    channel_id: str | None = None


@dataclass(frozen=True)
class AlertReceived:
    alert: Alert


@dataclass(frozen=True)
class SgdReplyReceived:
    """A complete JSON reply on the config channel, paired with the pending request."""

    reply: dict[str, Any]


@dataclass(frozen=True)
class QueryAnswered:
    """The pending raw query's answer is complete under its framing."""

    data: bytes


@dataclass(frozen=True)
class RawDataReceived:
    """Raw-channel bytes that belong to no query (gateway), or any raw bytes (printer)."""

    data: bytes


@dataclass(frozen=True)
class UnsolicitedMessage:
    """A complete JSON value nobody asked for (logged and otherwise ignored)."""

    value: Any


@dataclass(frozen=True)
class ProtocolViolation:
    """The peer broke the protocol; the socket must close with ``close_code``."""

    reason: str
    close_code: CloseCode


# -- printer role ---------------------------------------------------------------


@dataclass(frozen=True)
class ChannelOpenRequested:
    """The server sent ``{"open": "v1.raw.zebra.com"}`` (or config) on main."""

    kind: ChannelKind


@dataclass(frozen=True)
class AlertsConfigured:
    """The server sent ``{"configure_alert": spec}`` on main."""

    spec: str


@dataclass(frozen=True)
class SgdRequestReceived:
    """The server sent ``{}{...}`` on the config channel."""

    request: dict[str, Any]


Event = (
    PrinterIdentified
    | AlertReceived
    | SgdReplyReceived
    | QueryAnswered
    | RawDataReceived
    | UnsolicitedMessage
    | ProtocolViolation
    | ChannelOpenRequested
    | AlertsConfigured
    | SgdRequestReceived
)
