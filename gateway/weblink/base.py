"""State, outputs and command guards shared by every WebLink channel object.

:class:`ChannelBase` holds what a :class:`~gateway.weblink.channel.ChannelProtocol`
is (role, kind, printer serial, state, close code) and what it has produced (events,
outgoing messages), plus the checks its commands make. It reads nothing from the
wire itself; ``channel.py`` adds the input handling and the commands.

``style.md`` §4: each outgoing item is exactly one **binary** WebSocket message, as
``bytes`` (``weblink-protocol.md`` §2: printers only support binary frames); bad input
is recorded as a :class:`ProtocolViolation` event and moves the state to ``CLOSING``.
"""

from __future__ import annotations

from typing import Any

from broker.errors import InvalidChannelState
from gateway.weblink.constants import ChannelKind, ChannelState, CloseCode, Role
from gateway.weblink.discovery import Discovery
from gateway.weblink.events import Event, ProtocolViolation
from gateway.weblink.framing import ResponseCollector
from gateway.weblink.jsonstream import JsonStream, JsonStreamError
from gateway.weblink.sgd import encode_json

_GATEWAY, _PRINTER = Role.GATEWAY, Role.PRINTER


class ChannelBase:
    """The state of one WebLink socket, its outputs and the guard for commands.

    Args:
        role: ``Role.GATEWAY`` (the server) or ``Role.PRINTER`` (the emulator).
        kind: Printer role only: which channel this socket is.
        printer_serial: Printer role only: the serial the printer announces.
        max_buffer_size: Most bytes held for an incomplete JSON value, or for a raw
            query's answer, before giving up.

    Raises:
        ValueError: ``kind``/``printer_serial`` missing for the printer role, or given
            for the gateway role (there the first message names them).
    """

    def __init__(
        self,
        role: Role,
        *,
        kind: ChannelKind | None = None,
        printer_serial: str | None = None,
        max_buffer_size: int = 1 << 20,
    ) -> None:
        if role is _PRINTER and (kind is None or printer_serial is None):
            raise ValueError("the printer role needs kind and printer_serial")
        if role is _GATEWAY and (kind is not None or printer_serial is not None):
            raise ValueError(
                "the gateway role learns kind and printer_serial from the peer"
            )
        self.role = role
        self.max_buffer_size = max_buffer_size
        self._kind = kind
        self._printer_serial = printer_serial
        # §3: a gateway socket is anonymous until its first message names it.
        self._state = (
            ChannelState.OPEN if role is _PRINTER else ChannelState.AWAITING_HELLO
        )
        self._discovery: Discovery | None = None
        self._channel_id: str | None = None
        self._close_code: CloseCode | None = None
        self._close_reason: str | None = None
        self._stream = JsonStream(max_buffer_size)
        self._events: list[Event] = []
        self._outgoing: list[bytes] = []
        self._pending_sgd: dict[str, Any] | None = None
        self._query: ResponseCollector | None = None
        # Printer config channel: the "{}" that prefixes a request was seen (§5).
        self._sgd_prefix_seen = False

    # -- state ----------------------------------------------------------------------

    @property
    def state(self) -> ChannelState:
        """``AWAITING_HELLO`` → ``OPEN`` → ``CLOSING`` → ``CLOSED``."""
        return self._state

    @property
    def kind(self) -> ChannelKind | None:
        """Main, raw or config; ``None`` until a gateway socket is identified."""
        return self._kind

    @property
    def printer_serial(self) -> str | None:
        """The printer's serial (WebLink's ``unique_id``), once known."""
        return self._printer_serial

    @property
    def discovery(self) -> Discovery | None:
        """Main channel, gateway role: the decoded discovery packet."""
        return self._discovery

    @property
    def channel_id(self) -> str | None:
        """Raw/config channels: the printer's ``channel_id`` (§3), as a string."""
        return self._channel_id

    @property
    def close_code(self) -> CloseCode | None:
        """The code the socket must close with, once a violation or close() set it."""
        return self._close_code

    @property
    def close_reason(self) -> str | None:
        """The reason that goes with :attr:`close_code`."""
        return self._close_reason

    @property
    def has_pending_sgd(self) -> bool:
        """Whether an SGD request sent on this config channel awaits its reply."""
        return self._pending_sgd is not None

    @property
    def has_pending_query(self) -> bool:
        """Whether a raw query sent on this channel awaits the end of its answer."""
        return self._query is not None

    def receive_closed(self) -> None:
        """Record that the socket is closed; a pending SGD request or query is dropped.

        Idempotent; later input is ignored.
        """
        self._state = ChannelState.CLOSED
        self._pending_sgd = None
        self._query = None
        self._stream.reset()

    # -- output ---------------------------------------------------------------------

    def events_received(self) -> list[Event]:
        """Return and clear the events produced since the last call."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """Return and clear the outgoing messages, each one binary WebSocket message."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def close(self, code: CloseCode, reason: str) -> None:
        """Mark the channel as closing with ``code``; the server does the actual close.

        Allowed in any state; once ``CLOSING`` or ``CLOSED`` the first code stays.
        """
        if self._state in (ChannelState.CLOSING, ChannelState.CLOSED):
            return
        self._state = ChannelState.CLOSING
        self._close_code, self._close_reason = code, reason

    # -- internals ------------------------------------------------------------------

    def _require(
        self, command: str, role: Role, *kinds: ChannelKind, any_state: bool = False
    ) -> None:
        if self.role is not role:
            raise InvalidChannelState(
                f"{command} is a {role} command; this is the {self.role} side"
            )
        if self._kind not in kinds:
            expected = " or ".join(kinds)
            actual = self._kind or "unidentified"
            raise InvalidChannelState(
                f"{command} needs a {expected} channel; this one is {actual}"
            )
        if not any_state and self._state is not ChannelState.OPEN:
            raise InvalidChannelState(
                f"{command} needs an open channel; it is {self._state}"
            )

    def _queue(self, data: object) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            # A str would go out as a text frame, which printers reject (§2).
            raise TypeError(f"WebLink payloads are bytes, not {type(data).__name__}")
        if data:
            self._outgoing.append(bytes(data))

    def _send_json(self, value: Any, *, pretty: bool = False) -> None:
        self._outgoing.append(encode_json(value, pretty=pretty))

    def _violate(self, reason: str, code: CloseCode) -> None:
        self._events.append(ProtocolViolation(reason, code))
        self._state = ChannelState.CLOSING
        self._close_code, self._close_reason = code, reason

    def _violate_stream(self, exc: JsonStreamError) -> None:
        if exc.too_big:
            self._violate(f"message too big: {exc}", CloseCode.MESSAGE_TOO_BIG)
        else:
            self._violate(f"malformed JSON: {exc}", CloseCode.INVALID_DATA)
